"""Lint as tests, as ament_flake8 / ament_pep257 / ament_mypy do in ROS packages.

The tools come from requirements/dev.txt (scripts/bootstrap.sh); where they are not
installed (``colcon test`` on a ROS install without them) the tests skip and say so.
"""

from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str) -> str:
    """The tool beside this Python (the venv's bin/) or on PATH; skip when it is neither."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f'{name} is not installed: pip install -r requirements/dev.txt')
    return found


def test_ruff():
    """pycodestyle, pyflakes, pep257 docstrings, import order, quotes (pyproject.toml)."""
    result = subprocess.run([tool('ruff'), 'check', '--no-cache', '.'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    """Type hints of the package's public code hold together."""
    result = subprocess.run([tool('mypy'), '--no-incremental'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers():
    """Every import arrow points down the layers, and the runtime never imports training
    (.importlinter's contracts, checked by import-linter)."""
    result = subprocess.run([tool('lint-imports'), '--no-cache'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
