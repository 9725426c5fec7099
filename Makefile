# The two commands of the README: `make run` and `make test`.  Everything they
# need is installed here, into .venv, from the project's own files.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/demo.yaml

.PHONY: run test test-unit bench install check clean system-deps

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

## System packages the integration tests need: influxd (Debian's influxdb,
## 1.x) for the InfluxDB historian tests.  The package's postinst may start
## a system service; the tests run their own server on free ports anyway.
system-deps:
	@command -v influxd >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y influxdb; }

## Install what the tests need and run the whole suite (influxd is required,
## not skipped).
test: install system-deps
	SCADA_REQUIRE_INFLUXD=1 $(VENV)/bin/pytest -q

test-unit: install
	$(VENV)/bin/pytest -q -m "not integration"

check: install
	$(VENV)/bin/scada check $(CONFIG)

bench: install system-deps
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/engine.py
	$(PY) bench/mbus_decode.py
	$(PY) bench/historian.py
	$(PY) bench/alarms.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
