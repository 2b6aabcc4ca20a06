# One entry point for humans and CI. `make test` needs nothing installed beforehand
# except Python 3.11+, Node 20 (for the certified OpenID provider) and kubectl.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := tests/idp/node_modules/.installed

.PHONY: test lint fmt venv node bench clean demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(NODE_STAMP): tests/idp/package.json tests/idp/package-lock.json
	cd tests/idp && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node: $(NODE_STAMP)

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks
	$(PY) -m ruff format --check src tests scripts benchmarks
	$(PY) -m mypy

fmt: $(STAMP)
	$(PY) -m ruff check --fix src tests scripts benchmarks
	$(PY) -m ruff format src tests scripts benchmarks

test: lint node
	$(PY) -m pytest -n auto --dist loadgroup

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

demo: $(STAMP)
	$(VENV)/bin/jitkube demo

clean:
	rm -rf $(VENV) tests/idp/node_modules .pytest_cache .mypy_cache .ruff_cache
