# The two commands of the README: `make run` and `make test`.  Everything they
# need is installed here, into .venv, from the project's own files.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/demo.yaml

.PHONY: run test test-unit bench install check clean system-deps demo-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(STAMP)

## Start the demo site: simulated meters on ptys, SQLite history, API on :8080.
run: install demo-deps
	$(VENV)/bin/scada run -c $(CONFIG)

## The demo's LoRaWAN meters publish through their own mosquitto when it is
## installed; without it (no root, no network) they use the HTTP integration.
demo-deps:
	@{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=; fi; \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } \
	  || echo "mosquitto could not be installed: the demo's LoRaWAN meters will use the HTTP integration"; }

## System packages the integration tests need: influxd (Debian's influxdb,
## 1.x) for the InfluxDB historian tests, mosquitto for the LoRaWAN MQTT
## tests and chromium for the HMI browser tests (Playwright drives Debian's
## /usr/bin/chromium; it never downloads a browser of its own).  The
## packages' postinst may start system services; the tests run their own
## servers on free ports anyway.  docker-compose (1.29) validates
## docker-compose.yml; it is installed without its recommended docker.io,
## as no container engine is needed (or started) to check a compose file.
system-deps:
	@missing=; command -v influxd >/dev/null || missing="$$missing influxdb"; \
	  { command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } || missing="$$missing mosquitto"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  bare=; command -v docker-compose >/dev/null || bare="docker-compose"; \
	  if [ -n "$$missing$$bare" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
	    $$SUDO apt-get update \
	    && { [ -z "$$missing" ] || $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; } \
	    && { [ -z "$$bare" ] || $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$bare; }; fi

REQUIRE := SCADA_REQUIRE_INFLUXD=1 SCADA_REQUIRE_MOSQUITTO=1 SCADA_REQUIRE_CHROMIUM=1 SCADA_REQUIRE_DOCKER_COMPOSE=1

## Install what the tests need and run the whole suite (influxd, mosquitto,
## chromium and docker-compose are required, not skipped): the unit tests
## on both cores, then the integration tests (real servers, ptys, ports,
## subprocesses) one at a time.  The HMI tests leave screenshots of every
## view in test-output/hmi/.
test: install system-deps
	$(REQUIRE) $(VENV)/bin/pytest -q -n 2 -m "not integration"
	$(REQUIRE) $(VENV)/bin/pytest -q -m integration

test-unit: install
	$(VENV)/bin/pytest -q -n 2 -m "not integration"

check: install
	$(VENV)/bin/scada check $(CONFIG)

bench: install system-deps
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/engine.py
	$(PY) bench/mbus_decode.py
	$(PY) bench/historian.py
	$(PY) bench/alarms.py
	$(PY) bench/modems.py
	$(PY) bench/balance.py
	$(PY) bench/hmi.py
	$(PY) bench/metrics.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
