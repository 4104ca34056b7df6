# The two commands a new user needs: `make demo` and `make test`.
# Both create .venv on first use (scripts/bootstrap.sh).
VENV ?= .venv
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 42

.PHONY: venv demo test test-fast lint clean

venv:
	@scripts/bootstrap.sh

demo: venv
	$(VENV)/bin/reacher demo --headless --duration 60

test: venv
	$(VENV)/bin/python -m pytest

test-fast: venv
	$(VENV)/bin/python -m pytest -m "not slow"

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build install log .pytest_cache .mypy_cache
