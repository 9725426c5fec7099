# The two commands of the README: `make run` and `make test`.  Everything they
# need is installed here, into .venv, from the project's own files.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/demo.yaml

.PHONY: run test test-unit bench install check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(STAMP)

## Start the demo site: simulated meters on ptys, SQLite history, API on :8080.
run: install
	$(VENV)/bin/scada run -c $(CONFIG)

## Install what the tests need and run the whole suite.
test: install
	$(VENV)/bin/pytest -q

test-unit: install
	$(VENV)/bin/pytest -q -m "not integration"

check: install
	$(VENV)/bin/scada check $(CONFIG)

bench: install
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/engine.py
	$(PY) bench/mbus_decode.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
