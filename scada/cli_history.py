# -*- test-case-name: tests.scada.test_cli_history -*-
"""``scada history simulate``: months of simulated history for a simulated site.

::

    scada history simulate -c FILE [--hourly 35d] [--daily 210d] [--until ISO] [--force]

Writes what the site's simulated meters would have stored (see
:mod:`channels.sim.history`) into the site's history database: hourly
samples over the last ``--hourly`` before ``--until`` (default now), daily
ones (local midnight) over ``--daily`` before those, monthly hand readings
of ``manual`` meters, with the gaps of the site's ``simulate_history.gaps``.
Spans default to the site's ``simulate_history:`` section, else 35 and 210
days.  A second run only adds what is new since the first (``--force``
writes everything again).  Only for sites with ``simulate: true``: simulated
samples must never mix with a real site's readings.

Stop the site first: the command writes the database and the site's
archive book (``var/archives.json``) itself.  Bad arguments get one line on
stderr and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

#: Longest span either option takes (ten years).
MAX_SPAN_S = 3650 * 86400.0


def _span(option: str, value: str) -> float:
    """Return a span option in seconds; ValueError naming the option and the value."""
    from scada.config.durations import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{option} {value!r}: {exc}") from None
    if seconds > MAX_SPAN_S:
        raise ValueError(f"{option} {value!r}: at most 3650d")
    return seconds


def _until(value: str, tz: str) -> float:
    """Return ``--until`` (ISO 8601; site local time unless it has an offset) as Unix time."""
    from channels.sim.history import parse_local

    return parse_local(value, ZoneInfo(tz), "--until", "2025-10-01 or 2025-10-01T12:00+03:00")


def cmd_simulate(args) -> int:
    """Write a simulated site's past samples into its history; print what was written."""
    import time

    from scada.cli import _load

    cfg = _load(args.config)
    if cfg is None:
        return 1
    settings = getattr(cfg, "simulate_history", None)
    if not cfg.simulate:
        print(f"{args.config}: the site has simulate: false; simulated history would mix with real "
              "readings (set simulate: true, or use a copy of the file)", file=sys.stderr)
        return 1
    try:
        hourly = _span("--hourly", args.hourly) if args.hourly is not None else (
            settings.hourly if settings is not None else 35 * 86400.0)
        daily = _span("--daily", args.daily) if args.daily is not None else (
            settings.daily if settings is not None else 210 * 86400.0)
        until = _until(args.until, cfg.site.timezone) if args.until is not None else time.time()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if until > time.time() + 60:
        print(f"--until {args.until!r} is in the future; history ends now at the latest", file=sys.stderr)
        return 1
    from scada.simhistory import run_cli

    return run_cli(cfg, Path.cwd(), until, hourly, daily, args.force,
                   lambda line: print(line, flush=True))


def add_parser(sub) -> None:
    """Add ``scada history simulate`` to the ``scada`` command's subparsers."""
    from scada.cli import _default_config

    history = sub.add_parser("history", help="work on the site's history database")
    commands = history.add_subparsers(dest="history_command", required=True)
    p = commands.add_parser(
        "simulate", help="fill a simulated site's history with months of past samples",
        description="Write what the site's simulated meters would have stored: hourly samples over the "
                    "last --hourly, daily ones over --daily before that, monthly hand readings, with the "
                    "gaps of simulate_history.gaps.  Only for sites with simulate: true.")
    p.add_argument("-c", "--config", default=_default_config(), help="site YAML (default: %(default)s)")
    p.add_argument("--hourly", help="span of hourly samples before --until, e.g. 35d "
                                    "(default: simulate_history.hourly, else 35d)")
    p.add_argument("--daily", help="span of daily samples before the hourly ones, e.g. 210d "
                                   "(default: simulate_history.daily, else 210d)")
    p.add_argument("--until", help="end of the history, ISO 8601, site local time unless it has an offset "
                                   "(default: now)")
    p.add_argument("--force", action="store_true", help="write everything again, even if an earlier run did")
    p.set_defaults(func=cmd_simulate)
