# The SCADA engine as a container: `scada run -c /etc/scada/site.yaml`.
#
#   docker build -t scada-metering:local .        (docker compose builds it for you)
#   docker run --rm scada-metering:local --version
#
# Volumes: /etc/scada (the site file and site-specific profiles/, read-only) and
# /var/lib/scada (the working directory: history queue, operational store,
# archive book, SQLite history if the site uses it). See README, "Production set-up".
FROM python:3.11.11-slim-bookworm

# The service user. It belongs to `dialout`, the group that owns serial ports
# on Debian hosts (gid 20), so passed-through RS-485 adapters can be opened; a
# fixed uid keeps file ownership in the data volume stable across rebuilds.
RUN groupadd --gid 10001 scada \
 && useradd --uid 10001 --gid scada --groups dialout \
      --home-dir /var/lib/scada --no-create-home --shell /usr/sbin/nologin scada

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/scada/.venv \
    PATH=/opt/scada/.venv/bin:$PATH \
    NUMBA_CACHE_DIR=/var/cache/scada/numba \
    SCADA_LOG_FORMAT=json

WORKDIR /opt/scada

# Dependencies first, in their own layer: it is rebuilt only when
# pyproject.toml changes, not on every change of the code. The `grafana`
# extra comes too, so `scada grafana push` works from the container.
COPY pyproject.toml README.md ./
RUN python -m venv "$VIRTUAL_ENV" \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["grafana"]))' \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir --requirement /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The code, installed in place (editable): the loader finds the built-in
# device profiles at <checkout>/config/profiles, next to the packages, as in a
# development checkout and the systemd install (/opt/scada). The tree stays
# owned by root: the service cannot change its own code. Bytecode is compiled
# now because the service user may not write it later.
COPY scada ./scada
COPY channels ./channels
COPY tags ./tags
COPY alarms ./alarms
COPY hmi ./hmi
COPY config/profiles ./config/profiles
COPY config/schema ./config/schema
RUN pip install --no-cache-dir --no-deps --editable . \
 && python -m compileall -q scada channels tags alarms hmi \
 && scada --version

# Writable places, owned by the service user. A fresh named volume mounted at
# one of them takes over this ownership: /var/lib/scada (data) and
# /etc/grafana/provisioning (where the one-shot grafana-provisioning service of
# docker-compose.yml writes). numba caches its compiled balance kernels in
# NUMBA_CACHE_DIR, because the code tree is read-only for the user.
RUN mkdir -p /var/lib/scada /var/cache/scada/numba /etc/scada /etc/grafana/provisioning \
 && chown scada:scada /var/lib/scada /var/cache/scada /var/cache/scada/numba /etc/grafana/provisioning

# The example site, used when no config volume is mounted over /etc/scada.
COPY config/deploy/site.yaml /etc/scada/site.yaml

# By number (runtimes that check "not root" need one); the uid alone, so the
# supplementary group dialout still comes from /etc/group.
USER 10001
WORKDIR /var/lib/scada
VOLUME ["/var/lib/scada"]

# HTTP API and HMI (api.listen); the modem server GPRS modems dial in to (modem_server.listen).
EXPOSE 8080 5020

# /api/v1/health answers 200 while the engine runs. The slim image has no curl:
# the check is Python's urllib. SCADA_HEALTH_URL follows a changed api.listen.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('SCADA_HEALTH_URL', 'http://127.0.0.1:8080/api/v1/health'), timeout=4)"]

# SIGTERM stops polling, drains history to the database (up to 3 s) and closes ports.
STOPSIGNAL SIGTERM
ENTRYPOINT ["scada"]
CMD ["run", "-c", "/etc/scada/site.yaml"]
