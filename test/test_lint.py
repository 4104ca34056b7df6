"""Lint as tests, as ament_flake8 / ament_pep257 / ament_mypy do in ROS packages."""

from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff():
    """pycodestyle, pyflakes, pep257 docstrings, import order, quotes (pyproject.toml)."""
    result = subprocess.run([str(BIN / 'ruff'), 'check', '--no-cache', '.'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    """Type hints of the package's public code hold together."""
    result = subprocess.run([str(BIN / 'mypy'), '--no-incremental'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers():
    """Every import arrow points down the layers, and the runtime never imports training
    (.importlinter's contracts, checked by import-linter)."""
    result = subprocess.run([str(BIN / 'lint-imports'), '--no-cache'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
