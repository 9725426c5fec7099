# -*- test-case-name: tests.scada.test_cli_mbus -*-
"""``scada mbus decode`` and ``scada mbus scan``: the commissioning engineer's M-Bus tools."""

from __future__ import annotations

import json
import re
import sys

_HEX_NOISE = re.compile(r"[\s,:]+|0x", re.IGNORECASE)


def parse_hex(text: str) -> bytes:
    """Turn ``68 0b 0b …`` (spaces, commas, colons or 0x prefixes allowed) into bytes.

    Raises ``ValueError`` naming the offending character and where it is.
    """
    clean = _HEX_NOISE.sub("", text)
    for index, char in enumerate(clean):
        if char not in "0123456789abcdefABCDEF":
            raise ValueError(f"{char!r} is not a hex digit (hex digit {index + 1} of the input)")
    if not clean:
        raise ValueError("no hex bytes given")
    if len(clean) % 2:
        raise ValueError(f"odd number of hex digits ({len(clean)}): the last byte is incomplete")
    return bytes.fromhex(clean)


def decode_bytes(raw: bytes):
    """Decode a whole frame, or user data starting with its CI field."""
    from channels.mbus.telegram import MBusDecodeError, decode_frame, decode_user_data

    if raw[0] == 0x68:
        return decode_frame(raw)
    if raw[0] in (0xE5, 0x10):
        kind = "an ACK" if raw[0] == 0xE5 else "a short frame"
        raise MBusDecodeError(f"{kind} carries no data records", 0)
    return decode_user_data(raw[0], raw[1:], 1)


def cmd_decode(args) -> int:
    """Print a telegram as JSON; exit 1 with one line on stderr if it does not decode."""
    from channels.mbus.telegram import MBusDecodeError, telegram_to_json

    text = " ".join(args.hex)
    if not args.hex or text.strip() == "-":
        text = sys.stdin.read()
    try:
        raw = parse_hex(text)
        telegram = decode_bytes(raw)
    except (ValueError, MBusDecodeError) as exc:
        print(f"scada mbus decode: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(telegram_to_json(telegram), ensure_ascii=False, indent=2))
    return 0


class _Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    WIDTH = 30

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, what: str) -> None:
        total = max(total, done, 1)
        filled = self.WIDTH * done // total
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} {what}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        elif done * 10 // total != self._last_tenth or done == total:
            self._last_tenth = done * 10 // total
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def merge(primary: list, secondary: list) -> list[dict]:
    """Join the two scans by secondary address; one entry per meter."""
    meters: dict[str, dict] = {}
    for meter in [*primary, *secondary]:
        entry = meters.setdefault(meter.secondary, {**meter.as_dict(), "primary": None})
        if meter.primary is not None:
            entry["primary"] = meter.primary
    return list(meters.values())


def yaml_snippet(meters: list[dict], args) -> str:
    """Return a ready ``channels:`` entry for the site config."""
    import yaml

    primaries = [m["primary"] for m in meters if m["primary"] is not None]
    devices = []
    for meter in meters:
        device = {"name": f"{meter['manufacturer'].lower()}-{meter['id']}"}
        # Address 0 is the factory default that many meters share; a unique
        # non-zero primary address is the cheaper one to poll.
        primary = meter["primary"]
        if primary is not None and primary != 0 and primaries.count(primary) == 1:
            device["address"] = primary
        else:
            device["secondary"] = meter["secondary"]
        device["description"] = f"{meter['manufacturer']} {meter['medium']}, version {meter['version']}"
        devices.append(device)
    transport = {"serial": args.serial} if args.serial else {"tcp": args.tcp}
    transport["baudrate"] = args.baud
    channel = {"name": args.name, "type": "mbus", "transport": transport, "devices": devices}
    return yaml.safe_dump({"channels": [channel]}, allow_unicode=True, sort_keys=False)


def cmd_scan(args) -> int:
    """Scan a bus by primary and/or secondary address and print what answers."""
    from twisted.internet import defer, task

    from channels.mbus.link import BAUDRATES
    from channels.mbus.scan import Scanner, ScanAborted

    if args.baud not in BAUDRATES:
        print(f"scada mbus scan: --baud {args.baud} is not an M-Bus rate "
              f"({', '.join(map(str, BAUDRATES))})", file=sys.stderr)
        return 1
    if args.tcp:
        from scada.config.model import _parse_host_port

        try:
            host, port = _parse_host_port(args.tcp)
        except ValueError as exc:
            print(f"scada mbus scan: --tcp: {exc}", file=sys.stderr)
            return 1
    do_primary = args.primary or not args.secondary
    do_secondary = args.secondary or not args.primary
    result: dict = {}

    @defer.inlineCallbacks
    def scan(reactor):
        from channels.transports.serial import SerialLink
        from channels.transports.tcp import TcpLink

        progress = _Progress()
        scanner = Scanner(reactor, args.baud, args.timeout, args.retries, progress)
        if args.serial:
            link = SerialLink(reactor, scanner, args.serial, args.baud, args.parity, 1)
        else:
            link = TcpLink(reactor, scanner, host, port)
        link.start()
        try:
            try:
                yield scanner.wait_link(args.connect_timeout)
            except defer.TimeoutError:
                result["error"] = f"cannot open {link.endpoint}: {link.health().get('last_error') or 'timeout'}"
                return
            primary = (yield scanner.scan_primary(range(args.first, args.last + 1))) if do_primary else []
            secondary = (yield scanner.scan_secondary()) if do_secondary else []
            result["meters"] = merge(primary, secondary)
            result["collisions"] = [c.where for c in scanner.collisions]
            result["probes"] = scanner.probes
        except ScanAborted as exc:
            result["error"] = str(exc)
        finally:
            progress.end()
            link.stop()

    try:
        task.react(scan)
    except SystemExit:
        pass  # react() always exits; the result is reported below
    return _report(result, args)


def _report(result: dict, args) -> int:
    if "error" in result:
        print(f"scada mbus scan: {result['error']}", file=sys.stderr)
        return 1
    meters = result["meters"]
    for line in result["collisions"]:
        print(f"collision: {line}", file=sys.stderr)
    if args.yaml:
        print(yaml_snippet(meters, args), end="")
    elif args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{'primary':>7}  {'secondary':16}  {'id':8}  man  {'medium':20}  version")
        for m in meters:
            primary = "-" if m["primary"] is None else str(m["primary"])
            print(f"{primary:>7}  {m['secondary']:16}  {m['id']:8}  {m['manufacturer']:3}  {m['medium']:20}  "
                  f"{m['version']}")
        print(f"{len(meters)} meters found with {result['probes']} probes", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    """Add ``scada mbus decode|scan`` to the command's subparsers."""
    mbus = sub.add_parser("mbus", help="M-Bus tools: decode a telegram, scan a bus")
    mbus_sub = mbus.add_subparsers(dest="mbus_command", required=True)

    p = mbus_sub.add_parser("decode", help="decode an RSP_UD telegram given in hex (or '-' for stdin)")
    p.add_argument("hex", nargs="*", help="hex bytes, with or without spaces; none or '-' reads stdin")
    p.set_defaults(func=cmd_decode)

    p = mbus_sub.add_parser("scan", help="find the meters on a bus by primary and secondary address")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="PORT", help="serial port of the M-Bus master, e.g. /dev/ttyUSB0")
    where.add_argument("--tcp", metavar="HOST:PORT", help="transparent TCP gateway to the bus")
    p.add_argument("--baud", type=int, default=2400, help="baud rate (default: %(default)s)")
    p.add_argument("--parity", choices=("E", "N", "O"), default="E", help="parity (M-Bus is 8E1; default: %(default)s)")
    p.add_argument("--primary", action="store_true", help="primary scan only (default: both)")
    p.add_argument("--secondary", action="store_true", help="secondary wildcard search only (default: both)")
    p.add_argument("--first", type=int, default=0, choices=range(0, 251), metavar="0-250",
                   help="first primary address (default: %(default)s)")
    p.add_argument("--last", type=int, default=250, choices=range(0, 251), metavar="0-250",
                   help="last primary address (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=0.1,
                   help="allowance on top of the M-Bus response window, seconds (default: %(default)s)")
    p.add_argument("--retries", type=int, default=1, help="repeats of an unanswered probe (default: %(default)s)")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to open the port (default: %(default)s)")
    p.add_argument("--name", default="mbus1", help="channel name in the --yaml snippet (default: %(default)s)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--yaml", action="store_true", help="print a channel snippet for the site config")
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_scan)
