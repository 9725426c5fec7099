# -*- test-case-name: tests.scada.test_cli -*-
"""The ``scada`` command: run, check, schema, simulate, mbus."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from scada import installed_version

DEFAULT_CONFIGS = ("config/site.yaml", "config/demo.yaml")


def _default_config() -> str:
    for candidate in DEFAULT_CONFIGS:
        if Path(candidate).is_file():
            return candidate
    return DEFAULT_CONFIGS[-1]


def _setup_logging(verbose: bool, log_format: str | None = None) -> None:
    """Log to stderr as text or JSON lines (``--log-format``, default ``$SCADA_LOG_FORMAT`` or text)."""
    from scada import logs

    logs.setup(verbose, log_format or logs.default_format())


def _load(path: str):
    """Load a config or print its problems; return the config or None."""
    from scada.config import ConfigError, load_config

    try:
        cfg, warnings = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            _say_problem(problem)
        return None
    for problem in warnings:
        _say_problem(problem)
    return cfg


def _say_problem(problem) -> None:
    """Print a config problem to stderr; as a log line when logs are JSON (every stderr line is then JSON)."""
    from scada import logs

    if logs.active_format() == "json":
        logging.getLogger("scada.config").log(logging.ERROR if problem.is_error else logging.WARNING, "%s", problem)
    else:
        print(problem, file=sys.stderr)


def _overrides(cfg, args):
    """Return ``cfg`` with ``--simulate`` and ``--listen`` applied; ValueError naming a bad ``--listen``."""
    if args.simulate:
        cfg = cfg.model_copy(update={"simulate": True})
    if args.listen:
        from pydantic import ValidationError

        from scada.config import ApiConfig

        try:
            cfg = cfg.model_copy(update={"api": ApiConfig(**(cfg.api.model_dump() | {"listen": args.listen}))})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"--listen {args.listen!r}: {reason}") from None
    return cfg


def cmd_check(args) -> int:
    """Validate a site file: problems as FILE:LINE: message, exit 1; 'ok' and 0 when valid."""
    from scada.config import check_main

    return check_main(args.file)


def cmd_run(args) -> int:
    """Run the site: poll, keep tags and history, serve the API; SIGHUP reloads the site file."""
    _setup_logging(args.verbose, args.log_format)
    cfg = _load(args.config)
    if cfg is None:
        return 1
    try:
        cfg = _overrides(cfg, args)
    except ValueError as exc:
        logging.getLogger("scada.cli").error("%s", exc)
        return 1
    from scada.app import run

    # The reloaded file gets the same overrides as this one.
    return run(cfg, config_path=args.config, adjust=lambda reloaded: _overrides(reloaded, args))


def cmd_simulate(args) -> int:
    """Run only the simulated field for another master to poll."""
    _setup_logging(args.verbose, args.log_format)
    cfg = _load(args.config)
    if cfg is None:
        return 1
    from scada.app import install_reactor

    reactor, _loop = install_reactor()
    from channels.sim.field import SimulatedField

    field = SimulatedField(cfg, reactor)
    if args.tcp:
        endpoints = {name: f"tcp {host}:{port}" for name, (host, port) in
                     field.start_tcp(args.host, args.port).items()}
    else:
        endpoints = {name: f"serial {path}" for name, path in field.start_pty().items()}
        tcp_channels = [c for c in cfg.channels if c.type == "modbus-tcp"]
        if tcp_channels:
            endpoints.update({name: f"tcp {host}:{port}" for name, (host, port) in
                              field.start_tcp(args.host, args.port).items()
                              if name in {c.name for c in tcp_channels}})
    if field.modem_channels and cfg.modem_server is not None:
        # The simulated modems dial in to the site's modem server, wherever it runs.
        from scada.remote import _host_port, _reachable_host

        host, port = _host_port(cfg.modem_server.listen)
        host = _reachable_host(host)
        field.start_modems(host, port)
        endpoints.update({name: f"modem dialling {host}:{port}" for name in field.modem_channels})
    for channel in cfg.channels:
        devices = ", ".join(f"{d.name}@{_device_address(d)}" for d in channel.devices)
        print(f"{channel.name}: {endpoints.get(channel.name, '-')}  ({devices})", flush=True)
    _control_from_stdin(reactor, field)
    reactor.addSystemEventTrigger("before", "shutdown", field.stop)
    reactor.run()
    return 0


def _device_address(device) -> str:
    """Return how a device is reached: bus address, secondary address, EUI, NB-IoT ID or serial."""
    for key in ("address", "secondary", "dev_eui", "uplink_id", "serial"):
        value = getattr(device, key, None)
        if value is not None:
            return str(value)
    return "-"


SIM_HELP = ("commands: fault <device> <normal|silent|exception|corrupt_crc|slow>; "
            "status; help  (end of input leaves the meters running)")


def _control_from_stdin(reactor, field) -> None:
    """Let an engineer break and mend simulated meters while a master polls them."""
    import os
    import stat

    from twisted.internet import main

    from channels.sim.slave import FAULTS

    def say(text: str) -> None:
        print(text, flush=True)

    def command(line: str) -> None:
        words = line.split()
        if not words:
            return
        if words[0] == "fault" and len(words) == 3:
            name, fault = words[1], words[2]
            if name not in field.devices:
                say(f"error: unknown device {name!r}")
            elif fault not in FAULTS:
                say(f"error: unknown fault {fault!r}; one of {', '.join(FAULTS)}")
            else:
                field.set_fault(name, fault)
                say(f"ok: {name} {fault}")
        elif words[0] == "status":
            for name, device in field.devices.items():
                say(f"{name} @{device.address}: {device.fault}")
            for name in field.channels:
                c = field.counters(name)
                say(f"{name}: requests {c.requests}, answered {c.answered}, ignored {c.ignored}, "
                    f"crc_errors {c.crc_errors}")
        elif words[0] == "help":
            say(SIM_HELP)
        else:
            say(f"error: cannot parse {' '.join(words)!r}; {SIM_HELP}")

    class StdinLines:
        """A read-only descriptor on fd 0.

        Not Twisted's StandardIO: that sets O_NONBLOCK on stdin and stdout,
        which is shared with the shell's terminal and with whoever reads our
        output, and can make a later ``print`` fail with BlockingIOError.
        A read on a fd that epoll reported readable does not block anyway.
        """

        def __init__(self) -> None:
            self.buffer = b""

        def fileno(self) -> int:
            return 0

        def logPrefix(self) -> str:  # noqa: N802 - Twisted interface
            return "stdin"

        def doRead(self):  # noqa: N802 - Twisted interface
            data = os.read(0, 4096)
            if not data:
                return main.CONNECTION_DONE
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                command(line.decode("utf-8", "replace"))
            return None

        def connectionLost(self, reason) -> None:  # noqa: N802 - Twisted interface
            """End of input: the meters keep running."""

    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return  # no stdin at all
    # Only terminals and pipes: epoll refuses /dev/null and regular files.
    if stat.S_ISCHR(mode) and not os.isatty(0):
        return
    if not (os.isatty(0) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return
    reactor.addReader(StdinLines())


def cmd_schema(args) -> int:
    """Print the JSON Schema of site files (or profiles), or write config/schema/."""
    from scada.config import schema

    if args.write:
        for path in schema.write():
            print(path)
        return 0
    print(schema.render("profile.schema.json" if args.profile else "site.schema.json"), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``scada`` command."""
    parser = argparse.ArgumentParser(prog="scada", description="Metering dispatch SCADA for apartment buildings.")
    parser.add_argument("--version", action="version", version=f"scada {installed_version()}")
    log_format = {"choices": ("text", "json"),
                  "help": "log lines as text or one JSON object per line (default: $SCADA_LOG_FORMAT or text)"}
    parser.add_argument("--log-format", default=None, **log_format)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a site: poll meters, keep history, serve the API")
    p.add_argument("-c", "--config", default=_default_config(), help="site YAML (default: %(default)s)")
    p.add_argument("--simulate", action="store_true", help="poll simulated meters on ptys, whatever the file says")
    p.add_argument("--listen", help="API address host:port, overriding api.listen")
    p.add_argument("-v", "--verbose", action="store_true")
    # SUPPRESS: not given here, the value before the subcommand stands.
    p.add_argument("--log-format", default=argparse.SUPPRESS, **log_format)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a site YAML file")
    p.add_argument("file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("schema", help="print the JSON Schema of site (or profile) files")
    p.add_argument("--profile", action="store_true", help="the schema of config/profiles/<name>.yaml files")
    p.add_argument("--write", action="store_true", help="regenerate config/schema/*.json")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("simulate", help="run simulated meters for another master to poll")
    p.add_argument("-c", "--config", default=_default_config(), help="site YAML (default: %(default)s)")
    p.add_argument("--tcp", action="store_true", help="listen on TCP instead of pseudo-terminals")
    p.add_argument("--host", default="127.0.0.1", help="TCP listen address (default: %(default)s)")
    p.add_argument("--port", type=int, default=0, help="first TCP port, 0 for any (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--log-format", default=argparse.SUPPRESS, **log_format)
    p.set_defaults(func=cmd_simulate)

    from scada import cli_grafana, cli_history, cli_mbus, cli_readings, cli_users

    cli_mbus.add_parser(sub)
    cli_users.add_parser(sub)
    cli_readings.add_parser(sub)
    cli_history.add_parser(sub)
    cli_grafana.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scada`` console script."""
    args = build_parser().parse_args(argv)
    if args.log_format is None and args.func in (cmd_run, cmd_simulate):
        from scada import logs

        try:
            args.log_format = logs.default_format()
        except ValueError as exc:
            print(f"scada: {exc}", file=sys.stderr)
            return 1
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
