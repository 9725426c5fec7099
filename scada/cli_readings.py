# -*- test-case-name: tests.scada.test_cli_readings -*-
"""``scada import readings FILE.csv``: send a hand-held reader's export to the running site.

The file is read and checked here, whole: every bad line is reported as
``FILE:LINE: message`` and nothing is sent (exit 1).  A good file goes in
one request to ``POST /api/v1/readings/manual`` of the running site, which
checks the readings against what it knows (a register that only grows, a
reading already stored) and stores all of them or none.  The command does
not write the store or history itself: the running site owns the history
queue and the tag table, and a second writer would corrupt them.

What the file may look like (what hand-held readers and spreadsheets export):

- UTF-8 with or without a BOM, UTF-16 with a BOM, or Windows-1251;
- ``;``, ``,`` or tab between fields (told from the header row);
- a header row naming the columns, in English or Russian, in any order:
  the meter (``serial``/``серийный номер``/``заводской номер``/``номер
  счетчика``, or ``tag``/``тег``), the time (``timestamp``/``time``/``date``/
  ``дата``/``дата и время``/``время``; separate date and time columns are
  joined), the value (``value``/``reading``/``показание``/``значение``),
  optionally ``replacement``/``замена`` (yes/да/1/x) and
  ``comment``/``комментарий``; other columns are ignored;
- decimal comma or point, blanks as thousands separators;
- times as ISO 8601 (with an offset, or else in the site's time zone) or
  ``DD.MM.YYYY HH:MM[:SS]`` in the site's time zone (``site.timezone`` of
  ``-c SITE.yaml``, default Europe/Moscow).
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

#: Time zone of times without an offset when no site file is given.
DEFAULT_TIMEZONE = "Europe/Moscow"
#: Where the site's API is when neither --url nor -c says.
DEFAULT_LISTEN = "127.0.0.1:8080"
#: Environment variable holding the API token when --token is not given.
TOKEN_ENV = "SCADA_TOKEN"
#: Seconds to wait for the site's answer (10,000 readings take well under one).
TIMEOUT_S = 60.0
#: Readings one file may hold (the API's limit for one batch).
MAX_ROWS = 10_000
MAX_COMMENT = 500
PATH = "/api/v1/readings/manual"

#: Header names (lower case, single blanks, ё as е) of each column.
COLUMNS = {
    "serial": ("serial", "serial number", "serial no", "serial_number", "meter serial", "серийный номер",
               "заводской номер", "зав. номер", "зав номер", "номер счетчика", "номер прибора учета"),
    "tag": ("tag", "тег"),
    "ts": ("timestamp", "time", "date", "datetime", "date and time", "дата", "дата и время", "время",
           "дата/время", "дата время"),
    "value": ("value", "reading", "показание", "показания", "значение"),
    "replacement": ("replacement", "meter replacement", "замена", "замена счетчика"),
    "comment": ("comment", "комментарий", "примечание"),
}
_HEADER = {name: key for key, names in COLUMNS.items() for name in names}
_YES = frozenset({"1", "yes", "y", "true", "x", "+", "да", "д"})
_NO = frozenset({"", "0", "no", "n", "false", "-", "нет", "н"})
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}),?(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?")


@dataclass
class Parsed:
    """What a file gave: readings to send, the line each came from, and the problems found."""

    readings: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Return the file's text: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1251.

    Raises ValueError if it is none of them (a binary file, a spreadsheet).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError("not UTF-16 text, although it starts like it") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            # Russian Windows and most hand-held reader software write this.
            text = data.decode("cp1251")
        except UnicodeDecodeError:
            raise ValueError("not a text file in UTF-8 or Windows-1251 (save the export as CSV)") from None
    if "\x00" in text:
        raise ValueError("not a CSV text file (it holds NUL bytes; save the export as CSV)")
    return text


def _delimiter(header: str) -> str:
    """Tell the field separator from the header row (names hold no decimal commas): ``;``, tab or ``,``."""
    counts = {sep: header.count(sep) for sep in (";", "\t", ",")}
    best = max(counts, key=lambda sep: counts[sep])  # ties go to ';' then tab: they are listed first
    return best if counts[best] else ";"


def _name(cell: str) -> str:
    return " ".join(cell.strip().strip('"').replace("ё", "е").replace("Ё", "Е").split()).casefold()


def parse_value(text: str) -> float:
    """Return a number written with a decimal comma or point (blanks between thousands allowed)."""
    cleaned = "".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())
    if "," in cleaned and "." in cleaned:
        raise ValueError(f"value {text.strip()!r} has both a comma and a point: write one decimal separator")
    cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"value {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {text.strip()!r} is not a finite number")
    return value


def parse_time(text: str, tz: ZoneInfo) -> str:
    """Return ISO 8601 UTC text for a time as exports write it; raise ValueError naming the text.

    ISO 8601 with an offset keeps it; without one, and ``DD.MM.YYYY
    HH:MM[:SS]``, are times in ``tz``.  A date alone is refused: which
    moment of the day the meter showed the value matters.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("no time given")
    match = _DOTTED.fullmatch(raw)
    try:
        if match:
            day, month, year, hour, minute, second, fraction = match.groups()
            if hour is None:
                raise ValueError(f"time {raw!r} is a date without a time of day: write DD.MM.YYYY HH:MM")
            micro = int((fraction or "0").ljust(6, "0"))
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
        else:
            moment = datetime.fromisoformat(raw)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                raise ValueError(f"time {raw!r} is a date without a time of day: write YYYY-MM-DDTHH:MM")
    except ValueError as exc:
        if "without a time of day" in str(exc):
            raise
        raise ValueError(f"time {raw!r} is not a date and time such as 20.11.2026 10:00 "
                         "or 2026-11-20T10:00:00+03:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"time {raw!r} is out of range") from None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_flag(text: str) -> bool:
    """Return a yes/no column's value (``да``/``yes``/``1``/``x`` or ``нет``/``no``/``0``/blank)."""
    word = text.strip().casefold()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise ValueError(f"replacement {text.strip()!r} is not yes or no (да/нет, 1/0)")


def parse_readings(data: bytes, name: str, tz: ZoneInfo, replacement: bool = False) -> Parsed:
    """Read a hand-held reader's export; return its readings (API rows) and every problem as ``NAME:LINE: ...``.

    ``replacement`` marks every reading as a meter replacement.
    """
    parsed = Parsed()
    try:
        text = decode(data)
    except ValueError as exc:
        parsed.problems.append(f"{name}: {exc}")
        return parsed
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        parsed.problems.append(f"{name}: the file is empty")
        return parsed
    reader = csv.reader(lines[first:], delimiter=_delimiter(lines[first]))
    try:
        header = next(reader)
    except csv.Error as exc:
        parsed.problems.append(f"{name}:{first + 1}: {exc}")
        return parsed
    columns: dict[str, list[int]] = {}
    for index, cell in enumerate(header):
        key = _HEADER.get(_name(cell))
        if key is not None:
            columns.setdefault(key, []).append(index)
    missing = []
    if "serial" not in columns and "tag" not in columns:
        missing.append("the meter (serial / серийный номер / заводской номер / номер счетчика, or tag / тег)")
    if "ts" not in columns:
        missing.append("the time (timestamp / date / time / дата / дата и время / время)")
    if "value" not in columns:
        missing.append("the value (value / reading / показание / значение)")
    if missing:
        shown = ", ".join(repr(c.strip()) for c in header if c.strip())
        parsed.problems.append(f"{name}:{first + 1}: the header row ({shown or 'empty'}) names no column for "
                               + "; no column for ".join(missing))
        return parsed
    for key in ("serial", "tag", "value", "replacement", "comment"):
        if len(columns.get(key, ())) > 1:
            parsed.problems.append(f"{name}:{first + 1}: more than one {key} column")
    if parsed.problems:
        return parsed

    def cell(row: list[str], key: str) -> str:
        return " ".join(row[i].strip() for i in columns.get(key, ()) if i < len(row) and row[i].strip())

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.problems.append(f"{name}:{first + reader.line_num}: {exc}")
            break
        line = first + reader.line_num
        if not any(c.strip() for c in row):
            continue
        problems = []
        reading: dict = {}
        serial, tag = cell(row, "serial"), cell(row, "tag")
        if serial and tag:
            problems.append(f"both a serial number ({serial!r}) and a tag ({tag!r}): give one")
        elif serial:
            reading["serial"] = serial
        elif tag:
            reading["tag"] = tag
        else:
            problems.append("no serial number or tag")
        try:
            reading["ts"] = parse_time(cell(row, "ts"), tz)
        except ValueError as exc:
            problems.append(str(exc))
        value = cell(row, "value")
        if not value:
            problems.append("no value")
        else:
            try:
                reading["value"] = parse_value(value)
            except ValueError as exc:
                problems.append(str(exc))
        try:
            if replacement or parse_flag(cell(row, "replacement")):
                reading["replacement"] = True
        except ValueError as exc:
            problems.append(str(exc))
        comment = cell(row, "comment")
        if len(comment) > MAX_COMMENT:
            problems.append(f"the comment is longer than {MAX_COMMENT} characters")
        elif comment:
            reading["comment"] = comment
        if problems:
            parsed.problems.append(f"{name}:{line}: " + "; ".join(problems))
        else:
            parsed.readings.append(reading)
            parsed.lines.append(line)
    if not parsed.readings and not parsed.problems:
        parsed.problems.append(f"{name}: no readings below the header row")
    if len(parsed.readings) > MAX_ROWS:
        parsed.problems.append(f"{name}: {len(parsed.readings)} readings; at most {MAX_ROWS} in one import: "
                               "split the file")
    return parsed


# --------------------------------------------------------------------------
# Sending


class _Fail(Exception):
    """A problem to report as one line, exit status 1."""


def post(url: str, token: str | None, body: dict, timeout: float = TIMEOUT_S) -> tuple[int, dict]:
    """POST ``body`` as JSON to ``url``; return ``(status, JSON answer)``; raise :class:`_Fail` saying why not."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except urllib.error.URLError as exc:
        reason = getattr(exc, "reason", exc)
        raise _Fail(f"cannot reach the site at {url}: {reason}; is 'scada run' running there?") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise _Fail(f"cannot reach the site at {url}: {exc}") from None
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise _Fail(f"{url} answered HTTP {status} with something that is not this API's JSON; check --url")
    return status, answer


def _site(args) -> tuple[str, ZoneInfo]:
    """Return the API's base URL and the site's time zone, from --url and -c."""
    tz_name, listen = DEFAULT_TIMEZONE, DEFAULT_LISTEN
    if args.config is not None:
        from scada.cli import _load

        cfg = _load(args.config)
        if cfg is None:
            raise _Fail("")  # the loader has printed the file's problems
        tz_name, listen = cfg.site.timezone, cfg.api.listen
    if args.url:
        base = args.url.rstrip("/")
        if not re.match(r"https?://", base):
            raise _Fail(f"--url {args.url!r} must start with http:// or https://")
        if base.endswith(PATH):
            base = base[: -len(PATH)]
    else:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"  # the wildcard the server listens on is reached through loopback
        base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    return base, ZoneInfo(tz_name)


def cmd_import_readings(args) -> int:
    """Check a hand-held reader's CSV export, then send it to the running site (unless --dry-run)."""
    name = args.file
    try:
        base, tz = _site(args)
        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            raise _Fail(f"cannot read {name}: {exc.strerror or exc}") from None
        parsed = parse_readings(data, name, tz, args.replacement)
        if parsed.problems:
            for problem in parsed.problems:
                print(problem, file=sys.stderr)
            print(f"{name}: {len(parsed.problems)} bad line(s); nothing sent", file=sys.stderr)
            return 1
        if args.dry_run:
            print(f"{name}: {len(parsed.readings)} readings ok (dry run: not sent)")
            return 0
        token = args.token or os.environ.get(TOKEN_ENV) or None
        source = f"import:{Path(args.file).name}"
        url = base + PATH
        status, answer = post(url, token, {"readings": parsed.readings, "source": source})
    except _Fail as exc:
        if str(exc):
            print(f"scada import readings: {exc}", file=sys.stderr)
        return 1
    if status == 200:
        accepted, duplicates = answer.get("accepted", 0), answer.get("duplicates", 0)
        print(f"{name}: {accepted} readings accepted, {duplicates} already stored (skipped); sent to {base}")
        return 0
    problems = answer.get("problems")
    if status == 400 and isinstance(problems, list) and problems:
        for problem in problems:
            row = problem.get("row") if isinstance(problem, dict) else None
            message = problem.get("message", problem) if isinstance(problem, dict) else problem
            where = (f"{name}:{parsed.lines[row]}" if isinstance(row, int) and 0 <= row < len(parsed.lines)
                     else name)
            print(f"{where}: {message}", file=sys.stderr)
        print(f"{name}: the site refused the file ({len(problems)} problem(s)); nothing was stored", file=sys.stderr)
        return 1
    message = answer.get("error") or f"HTTP {status}"
    hint = ""
    if status == 401:
        hint = f"; give an operator's or engineer's API token with --token or {TOKEN_ENV}"
    elif status == 403:
        hint = "; use an operator's or engineer's API token"
    print(f"scada import readings: {url} answered {status}: {message}{hint}", file=sys.stderr)
    return 1


def add_parser(sub) -> None:
    """Add ``scada import readings`` to the ``scada`` command's subparsers."""
    imp = sub.add_parser("import", help="import data into the running site",
                         description="Import data into the running site through its API.")
    kinds = imp.add_subparsers(dest="import_command", required=True)
    p = kinds.add_parser(
        "readings", help="send hand-read meter values (a CSV export) to the running site",
        description="Check a hand-held reader's CSV export (serial or tag, time, value; English or Russian "
                    "headers; ';', ',' or tab; decimal comma) and send it to the running site's API, where "
                    "every reading gets quality 'manual'. Bad lines are reported as FILE:LINE: message and "
                    "nothing is sent.")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("-c", "--config", help="site YAML: its api.listen and site.timezone "
                                          f"(default: {DEFAULT_LISTEN}, {DEFAULT_TIMEZONE})")
    p.add_argument("--url", help="the site's API, e.g. http://10.0.0.2:8080 (default: from -c)")
    p.add_argument("--token", help=f"API token of an operator or engineer (default: ${TOKEN_ENV})")
    p.add_argument("--replacement", action="store_true",
                   help="every reading is the first of a new meter (it may be lower than the old one's last)")
    p.add_argument("--dry-run", action="store_true", help="only check the file; send nothing")
    p.set_defaults(func=cmd_import_readings)
