# -*- test-case-name: tests.scada.test_manual -*-
"""Hand-read meters: values typed in or imported from a hand-held reader, with quality ``manual``.

A reading names its register by tag (``b1-kv01-cold.volume_m3``) or by the
meter's serial number (a device's ``serial:`` in the site file, standing
for the device's first cumulative register), and gives the time the meter
showed the value and the value itself.  :meth:`ManualReadings.submit`
checks a whole batch before it writes anything: one bad row refuses the
batch, with every problem named (row and value), so an import is never
half done.

A cumulative register (a volume or energy counter: it only grows) refuses
a value lower than the previous known one, unless the reading is marked as
a meter replacement (the new meter starts again from its own count), and a
value higher than the next known one.  "Known" is the tag's current value
in the tag table (when usable), the manual readings already stored, and the
batch's own earlier rows.  The meters' history is not consulted: it lives in
a database that may be remote or down, and the current value is the one
that matters for the usual case, a reading taken today.

Accepted readings are stored in the operational store with who entered them
and from where (``api`` or ``import:<file name>``), committed before the
answer; written to history as ``Sample(tag, value, Quality.MANUAL, ts)``;
and put in the tag table when newer than the tag's current value.  A batch
also leaves one entry in the alarm journal (event ``manual_reading``), so
the operators' record shows who entered readings when.  Sending the same
batch again is harmless: a row equal to a stored reading (tag, time and
value) is skipped as a duplicate.

Only one process may write history and the tag table, so the command line
(``scada import readings``) sends its rows to the running site's API
instead of writing here itself (:mod:`scada.cli_readings`).
"""

from __future__ import annotations

import bisect
import difflib
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from scada.checks import checked_text
from scada.checks import shown as _shown
from scada.config.model import is_cumulative
from scada.store.ops import ManualReading
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import iso_utc

if TYPE_CHECKING:
    from scada.store.ops import OpsStore
    from tags.table import TagTable

log = logging.getLogger(__name__)

#: Readings in one batch at most (a hand-held reader's day is a few hundred).
MAX_ROWS = 10_000
#: Longest comment on a reading.
MAX_COMMENT = 500
#: Longest tag name, serial number or source accepted (anything longer is junk, not a name).
MAX_NAME = 200
#: How far in the future a reading may lie (clocks of hand-held readers and phones drift).
FUTURE_SLACK_S = 300.0
#: Readings before this time (2000-01-01) are typing errors, not meter values.
MIN_TS = 946684800.0
#: Fields a reading may have.
FIELDS = ("tag", "serial", "ts", "value", "replacement", "comment")
#: Readings named in the journal entry of one batch, at most.
JOURNAL_NAMED = 10
#: Unknown names per batch that get "did you mean" suggestions (each costs ~0.1 s on a site of 3,000 tags).
MAX_SUGGESTED = 3
#: Journal event of an accepted batch.
JOURNAL_EVENT = "manual_reading"


@dataclass(frozen=True, slots=True)
class Register:
    """A tag that may get manual readings; ``cumulative`` registers only grow."""

    tag: str
    device: str = ""
    unit: str = ""
    cumulative: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one row (``row`` is its index in the batch; None for the whole batch) is refused."""

    row: int | None
    message: str

    def __str__(self) -> str:
        """Return the problem as one line naming the row."""
        return self.message if self.row is None else f"readings[{self.row}]: {self.message}"


class ManualError(ValueError):
    """A batch was refused; ``problems`` names every bad row.  Nothing of the batch was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = len(problems) - 5
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"readings refused ({count}): {shown}" + (f"; and {more} more" if more > 0 else ""))


class _Row(NamedTuple):
    """A reading that passed the field checks."""

    index: int
    register: Register
    ts: float
    value: float
    serial: str | None
    replacement: bool
    comment: str


class _Known(NamedTuple):
    """A value of the register known before this reading: when, what, whether a new meter started, from where.

    ``origin`` is text, or the stored reading (described only if a message needs it).
    """

    ts: float
    value: float
    replacement: bool
    origin: str | ManualReading

    def described(self) -> str:
        """Say where the value comes from, for a message."""
        if isinstance(self.origin, str):
            return self.origin
        reading = self.origin
        if reading.entered is None:
            return f"manual, entered by {reading.user}"
        return f"manual, entered by {reading.user} at {show_time(reading.entered)}"


class _Stored:
    """The stored manual readings of one tag around a batch's times: one query instead of three per row.

    Holds every reading of ``tag`` with ``lo <= ts <= hi``, plus the last one
    before ``lo`` and the first one after ``hi``: enough to answer every
    question about a time in ``[lo, hi]`` exactly.
    """

    def __init__(self, store: OpsStore, tag: str, lo: float, hi: float) -> None:
        found = {r.id: r for r in store.manual_readings(tag, lo, math.nextafter(hi, math.inf), limit=2**62)}
        for edge in (store.last_manual_before(tag, lo), store.first_manual_after(tag, hi)):
            if edge is not None:
                found[edge.id] = edge
        self.readings = sorted(found.values(), key=lambda r: (r.ts, r.id))
        self._times = [r.ts for r in self.readings]

    def at(self, ts: float) -> list[ManualReading]:
        """Return the readings taken at exactly ``ts``."""
        return self.readings[bisect.bisect_left(self._times, ts):bisect.bisect_right(self._times, ts)]

    def before(self, ts: float) -> ManualReading | None:
        """Return the latest reading at or before ``ts`` (the last entered of equal times)."""
        where = bisect.bisect_right(self._times, ts)
        return self.readings[where - 1] if where else None

    def after(self, ts: float) -> ManualReading | None:
        """Return the earliest reading strictly after ``ts``."""
        where = bisect.bisect_right(self._times, ts)
        return self.readings[where] if where < len(self.readings) else None


class _Batch:
    """The rows of a batch accepted so far, found by tag and time in O(log n) (a batch has up to 10,000)."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []
        self._times: dict[str, list[float]] = {}
        self._by_tag: dict[str, list[_Row]] = {}
        self._at: dict[tuple[str, float], _Row] = {}

    def add(self, row: _Row) -> None:
        """Take an accepted row."""
        tag = row.register.tag
        times = self._times.setdefault(tag, [])
        where = bisect.bisect_right(times, row.ts)
        times.insert(where, row.ts)
        self._by_tag.setdefault(tag, []).insert(where, row)
        self._at[tag, row.ts] = row
        self.rows.append(row)

    def at(self, tag: str, ts: float) -> _Row | None:
        """Return the accepted row of ``tag`` at exactly ``ts``, if any."""
        return self._at.get((tag, ts))

    def around(self, tag: str, ts: float) -> list[_Known]:
        """Return the accepted rows of ``tag`` just at-or-before and just after ``ts`` (as known readings)."""
        times = self._times.get(tag)
        if not times:
            return []
        rows = self._by_tag[tag]
        where = bisect.bisect_right(times, ts)
        found = [rows[where - 1]] if where else []
        if where < len(rows):
            found.append(rows[where])
        return [_Known(r.ts, r.value, r.replacement, f"readings[{r.index}] of this batch") for r in found]


def show_time(ts: float) -> str:
    """Return ``ts`` as ISO 8601 UTC text, or as the number when it is out of any calendar's range."""
    try:
        return iso_utc(ts)
    except ValueError:
        return repr(ts)


def _number(value: float) -> str:
    """Return a value as people write it: 130.0 stays 130.0, 123.40000001 stays as it is."""
    return repr(float(value))


def parse_time(value: Any) -> float:
    """Return Unix seconds (rounded to the millisecond) for an ISO 8601 time with an offset, or Unix seconds.

    Raises ValueError naming the value.  A time without an offset (or a
    date alone) is refused: a hand-typed ``10:00`` may be UTC or the site's
    time, and guessing wrong shifts the reading by hours.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'"ts" must be an ISO 8601 time with an offset or Unix seconds, not {_shown(value)}')
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f'"ts" {_shown(value)} is not an ISO 8601 time such as 2026-11-20T10:00:00Z') from None
        if moment.tzinfo is None:
            raise ValueError(f'"ts" {_shown(value)} has no UTC offset: add Z (UTC) or the offset, such as +03:00')
        try:
            ts = moment.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ValueError(f'"ts" {_shown(value)} is out of range') from None
    else:
        try:
            ts = float(value)
        except OverflowError:
            raise ValueError(f'"ts" {_shown(value)} is out of range') from None
        if not math.isfinite(ts):
            raise ValueError(f'"ts" {_shown(value)} is not a finite number of seconds')
    if ts < MIN_TS:
        raise ValueError(f'"ts" {_shown(value)} is before 2000-01-01: not a reading time')
    return round(ts, 3)


def _text(raw: dict, key: str, max_length: int) -> str | None:
    """Return ``raw[key]`` as stripped text (None if absent or null); raise ValueError naming the key."""
    value = raw.get(key)
    if value is None:
        return None
    return checked_text(value, f'"{key}"', max_length)


def check_source(source: Any) -> str:
    """Return ``source`` if it is ``api`` or ``import:<file name>``; raise ValueError otherwise."""
    if source == "api":
        return source
    if isinstance(source, str) and source.startswith("import:") and source[7:].strip() and len(source) <= MAX_NAME:
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError('"source" is not valid UTF-8 text') from None
        return source
    raise ValueError(f'"source" must be "api" or "import:<file name>", not {_shown(source)}')


class _Suggestions:
    """"Did you mean" for unknown names, worked out once per name and for a few names per batch.

    difflib compares a name with every known one; a batch of 10,000 rows
    naming a thousand unknown tags on a site of thousands must not stall
    the loop for that.
    """

    def __init__(self, known: Callable[[], list[str]], limit: int = MAX_SUGGESTED) -> None:
        self._known = known
        self._pool: list[str] | None = None
        self._found: dict[str, str] = {}
        self._limit = limit

    def __call__(self, name: str) -> str:
        """Return ``; did you mean ...?`` naming known names close to ``name``, or ``""``."""
        if name not in self._found:
            if len(self._found) >= self._limit:
                return ""
            if self._pool is None:
                self._pool = self._known()
            close = difflib.get_close_matches(name, self._pool, n=3, cutoff=0.6)
            self._found[name] = f"; did you mean {', '.join(close)}?" if close else ""
        return self._found[name]


class ManualReadings:
    """Check, store and publish manual readings of a site's registers.

    ``tags`` is the runtime's tag table; ``write_history(samples)`` hands
    samples to the historian (past values, straight to history);
    ``store`` keeps the readings (:class:`scada.store.OpsStore`);
    ``registers`` maps tag names to :class:`Register`; ``serials`` maps
    meter serial numbers to the tag they stand for; ``clock`` returns Unix
    seconds (the reactor's), to refuse readings from the future.  Tags
    defined later (an M-Bus meter's records once it answered) are taken
    from the tag table, cumulative by their unit.
    """

    def __init__(self, tags: TagTable, write_history: Callable[[list[Sample]], None], store: OpsStore,
                 registers: dict[str, Register], serials: dict[str, str], clock: Callable[[], float]) -> None:
        self.tags = tags
        self.write_history = write_history
        self.store = store
        self.registers = dict(registers)
        self.serials = dict(serials)
        # Hand-held exports and people vary in letter case and stray blanks.
        self._serial_keys = {_serial_key(s): tag for s, tag in self.serials.items()}
        self.clock = clock

    # ------------------------------------------------------------------
    # What a reading names

    def register(self, tag: str) -> Register | None:
        """Return the register of ``tag``, or None if the site has no such tag."""
        found = self.registers.get(tag)
        if found is not None:
            return found
        state = self.tags.get(tag)
        if state is None or not state.definition.device:
            return None  # not a meter's tag (historian_backlog and the like)
        unit = state.definition.unit
        return Register(tag, state.definition.device, unit, is_cumulative(unit, None))

    def _known_tags(self) -> list[str]:
        return sorted(set(self.registers) | {s.definition.name for s in self.tags.states() if s.definition.device})

    def _resolve(self, raw: dict, suggest_tag: _Suggestions, suggest_serial: _Suggestions
                 ) -> tuple[Register, str | None]:
        tag = _text(raw, "tag", MAX_NAME)
        serial = _text(raw, "serial", MAX_NAME)
        if tag is None and serial is None:
            raise ValueError('give "tag" or "serial"')
        if tag is not None and serial is not None:
            raise ValueError('give "tag" or "serial", not both')
        if not (tag or serial):
            raise ValueError(f'"{"tag" if tag is not None else "serial"}" is empty')
        if tag is not None:
            register = self.register(tag)
            if register is None:
                raise ValueError(f"unknown tag {tag!r}{suggest_tag(tag)}")
            return register, None
        target = self._serial_keys.get(_serial_key(serial))
        if target is None:
            if not self.serials:
                raise ValueError(f"unknown serial number {serial!r}: no device of this site has a 'serial'")
            raise ValueError(f"unknown serial number {serial!r}{suggest_serial(serial)}")
        register = self.register(target)
        if register is None:
            raise ValueError(f"serial number {serial!r} stands for {target!r}, which is not defined (yet)")
        return register, serial

    def _parse(self, index: int, raw: Any, now: float, suggest_tag: _Suggestions,
               suggest_serial: _Suggestions) -> _Row:
        """Check one row's fields; raise ValueError saying what is wrong (all of it that can be told)."""
        if not isinstance(raw, dict):
            raise ValueError(f'a reading must be an object with "tag" or "serial", "ts" and "value", '
                             f"not {_shown(raw)}")
        unknown = [k for k in raw if k not in FIELDS]
        if unknown:
            raise ValueError(f"unknown field {_shown(str(unknown[0]))}; a reading has {', '.join(FIELDS)}")
        problems: list[str] = []
        register = serial = ts = value = None
        try:
            register, serial = self._resolve(raw, suggest_tag, suggest_serial)
        except ValueError as exc:
            problems.append(str(exc))
        if "ts" not in raw:
            problems.append('"ts" is required')
        else:
            try:
                ts = parse_time(raw["ts"])
                if ts > now + FUTURE_SLACK_S:
                    raise ValueError(f'"ts" {show_time(ts)} is in the future (now it is {show_time(now)})')
            except ValueError as exc:
                problems.append(str(exc))
        raw_value = raw.get("value")
        if "value" not in raw:
            problems.append('"value" is required')
        elif isinstance(raw_value, bool) or not isinstance(raw_value, (int, float)):
            problems.append(f'"value" must be a number, not {_shown(raw_value)}')
        else:
            try:
                value = float(raw_value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                problems.append(f'"value" {_shown(raw_value)} is not a finite number')
                value = None
            elif value < 0 and register is not None and register.cumulative:
                problems.append(f"{register.tag}: {_number(value)} is negative; a cumulative register is never below 0")
        replacement = raw.get("replacement", False)
        if replacement is None:
            replacement = False
        if not isinstance(replacement, bool):
            problems.append(f'"replacement" must be true or false, not {_shown(replacement)}')
        comment = ""
        try:
            comment = _text(raw, "comment", MAX_COMMENT) or ""
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return _Row(index, register, ts, value, serial, replacement, comment)

    # ------------------------------------------------------------------
    # What is known of a register

    def _current(self, tag: str) -> _Known | None:
        """Return the tag table's current value as known, if usable."""
        state = self.tags.get(tag)
        if state is None or state.ts is None or state.value is None or not state.quality.usable:
            return None
        if not math.isfinite(state.value):
            return None
        return _Known(state.ts, state.value, False, f"current value, quality {state.quality.value}")

    @staticmethod
    def _stored(reading: ManualReading | None) -> _Known | None:
        if reading is None:
            return None
        return _Known(reading.ts, reading.value, reading.replacement, reading)

    def _neighbours(self, row: _Row, stored: _Stored, batch: _Batch) -> tuple[_Known | None, _Known | None]:
        """Return the known readings just before (or at) and just after the row's time."""
        tag = row.register.tag
        before: list[_Known] = []
        after: list[_Known] = []
        for known in (self._stored(stored.before(row.ts)), self._stored(stored.after(row.ts)), self._current(tag),
                      *batch.around(tag, row.ts)):
            if known is not None:
                (before if known.ts <= row.ts else after).append(known)
        previous = max(before, key=lambda k: k.ts, default=None)
        following = min(after, key=lambda k: k.ts, default=None)
        return previous, following

    def _check_order(self, row: _Row, stored: _Stored, batch: _Batch) -> str | None:
        """Return why a cumulative register cannot take this value at this time, or None."""
        if not row.register.cumulative:
            return None
        previous, following = self._neighbours(row, stored, batch)
        tag, value = row.register.tag, _number(row.value)
        if previous is not None and row.value < previous.value and not row.replacement:
            at = show_time(row.ts)
            return (f"{tag}: {value} at {at} is lower than the previous reading {_number(previous.value)} at "
                    f"{show_time(previous.ts)} ({previous.described()}); mark it as a meter replacement if the meter "
                    "was replaced")
        if following is not None and row.value > following.value and not following.replacement:
            at = show_time(row.ts)
            return (f"{tag}: {value} at {at} is higher than the later reading {_number(following.value)} at "
                    f"{show_time(following.ts)} ({following.described()}); a cumulative register only grows: "
                    "check the value and the time")
        return None

    def _duplicate(self, row: _Row, stored: _Stored, batch: _Batch) -> tuple[bool, str | None]:
        """Return ``(True, None)`` for a reading already stored or earlier in the batch, or a conflict."""
        tag = row.register.tag
        same_time = stored.at(row.ts)
        if any(_same(reading.value, row.value) for reading in same_time):
            return True, None
        for reading in same_time:
            return False, (f"{tag} already has the manual reading {_number(reading.value)} at {show_time(row.ts)} "
                           f"(entered by {reading.user}); a different value for the same time is refused")
        other = batch.at(tag, row.ts)
        if other is not None:
            if _same(other.value, row.value):
                return True, None
            return False, (f"{tag}: {_number(row.value)} at {show_time(row.ts)} contradicts "
                           f"readings[{other.index}] ({_number(other.value)} at the same time)")
        return False, None

    # ------------------------------------------------------------------
    # The batch

    def submit(self, readings: list[dict], user: str, source: str = "api") -> list[dict]:
        """Check every reading, then store, publish and journal the new ones; return one result per reading.

        Raises :class:`ManualError` naming every bad row, having written
        nothing, when any row is bad.  A result is ``{"row", "tag", "ts"
        (ISO 8601 UTC), "value", "replacement", "status"}`` plus ``serial``
        when the row named the meter by serial number and ``id`` (the stored
        reading's) for status ``accepted``; status ``duplicate`` means the
        same reading (tag, time, value) was stored before and is skipped.
        Raises ``sqlite3.Error`` if the store cannot write (nothing
        published then).
        """
        try:
            source = check_source(source)
        except ValueError as exc:
            raise ManualError([Problem(None, str(exc))]) from None
        if not isinstance(readings, list) or not readings:
            raise ManualError([Problem(None, "no readings given")])
        if len(readings) > MAX_ROWS:
            raise ManualError([Problem(None, f"{len(readings)} readings in one batch; at most {MAX_ROWS}: "
                                             "split the file")])
        now = self.clock()
        problems: list[Problem] = []
        rows: list[_Row] = []
        suggest_tag, suggest_serial = _Suggestions(self._known_tags), _Suggestions(lambda: sorted(self.serials))
        for index, raw in enumerate(readings):
            try:
                rows.append(self._parse(index, raw, now, suggest_tag, suggest_serial))
            except ValueError as exc:
                problems.append(Problem(index, str(exc)))
        spans: dict[str, tuple[float, float]] = {}
        for row in rows:
            lo, hi = spans.get(row.register.tag, (row.ts, row.ts))
            spans[row.register.tag] = (min(lo, row.ts), max(hi, row.ts))
        stored = {tag: _Stored(self.store, tag, lo, hi) for tag, (lo, hi) in spans.items()}
        batch = _Batch()
        duplicates: set[int] = set()
        for row in rows:
            known = stored[row.register.tag]
            duplicate, conflict = self._duplicate(row, known, batch)
            if duplicate:
                duplicates.add(row.index)
                continue
            why = conflict or self._check_order(row, known, batch)
            if why is not None:
                problems.append(Problem(row.index, why))
            else:
                batch.add(row)
        accepted = batch.rows
        if problems:
            problems.sort(key=lambda p: -1 if p.row is None else p.row)
            raise ManualError(problems)
        stored = self.store.add_manual_readings([
            ManualReading(row.register.tag, row.ts, row.value, user, source, row.serial, row.replacement,
                          row.comment, entered=now) for row in accepted])
        ids = {row.index: reading.id for row, reading in zip(accepted, stored)}
        history_problem = self._publish(accepted)
        if accepted:
            self._journal(accepted, user, source, now)
        results = []
        for row in rows:
            result = {"row": row.index, "tag": row.register.tag, "ts": show_time(row.ts), "value": row.value,
                      "replacement": row.replacement,
                      "status": "duplicate" if row.index in duplicates else "accepted"}
            if row.serial is not None:
                result["serial"] = row.serial
            if row.index in ids:
                result["id"] = ids[row.index]
                if history_problem:
                    result["warning"] = history_problem
            results.append(result)
        return results

    def _publish(self, accepted: list[_Row]) -> str | None:
        """Write accepted readings to history and the newest per tag to the tag table; return a history problem."""
        if not accepted:
            return None
        problem = None
        samples = [Sample(row.register.tag, row.value, Quality.MANUAL, row.ts) for row in accepted]
        try:
            self.write_history(samples)
        except Exception as exc:  # noqa: BLE001 - the readings are stored; history is told of the failure
            log.error("manual readings stored but not written to history: %s", exc)
            problem = f"stored, but not written to history: {exc}"
        newest: dict[str, Sample] = {}
        for sample in samples:
            if sample.name not in newest or sample.ts >= newest[sample.name].ts:
                newest[sample.name] = sample
        current = []
        for sample in newest.values():
            state = self.tags.get(sample.name)
            # An older reading belongs to history only: the table shows the latest value.
            if state is not None and (state.ts is None or sample.ts > state.ts):
                current.append(sample)
        if current:
            self.tags.update_many(current)
        return problem

    def _journal(self, accepted: list[_Row], user: str, source: str, now: float) -> None:
        """Leave one alarm journal entry saying who entered which readings from where."""
        record = getattr(self.store, "record", None)
        if record is None:
            return
        from alarms.model import JournalEntry

        named = ", ".join(f"{row.register.tag} = {_number(row.value)} at {show_time(row.ts)}"
                          + (" (meter replacement)" if row.replacement else "") for row in accepted[:JOURNAL_NAMED])
        more = len(accepted) - JOURNAL_NAMED
        count = f"{len(accepted)} manual reading{'s' if len(accepted) != 1 else ''}"
        comment = f"{count} from {source}: {named}" + (f" and {more} more" if more > 0 else "")
        one = accepted[0] if len(accepted) == 1 else None
        tags = {row.register.tag for row in accepted}
        try:
            record(JournalEntry(ts=now, alarm_id="", event=JOURNAL_EVENT, user=user, comment=comment,
                                tag=next(iter(tags)) if len(tags) == 1 else "",
                                value=one.value if one is not None else None,
                                message=f"{count} entered"))
        except Exception:  # noqa: BLE001 - the readings stand whether or not the journal took the note
            log.exception("cannot journal %s entered by %s", count, user)


def _same(a: float, b: float) -> bool:
    """Tell whether two readings are the same value (a decimal comma parsed twice gives the same float)."""
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def _serial_key(serial: str) -> str:
    """Return the form serial numbers are compared in: no blanks, one letter case."""
    return "".join(str(serial).split()).casefold()


# --------------------------------------------------------------------------
# Wiring


def _point_flag(device, tag: str) -> bool | None:
    """Return the ``cumulative:`` a device config gives the point of ``tag``, None if it says nothing."""
    for point in getattr(device, "points", None) or ():
        if f"{device.name}.{getattr(point, 'name', '')}" == tag:
            return getattr(point, "cumulative", None)
    return None


def build_manual(runtime) -> ManualReadings:
    """Return the manual readings of a :class:`scada.app.Runtime`: its tags, store, history and serials.

    Every tag of a device is a register; it is cumulative by its point's
    ``cumulative:`` or else by its unit (:func:`scada.config.model.is_cumulative`).
    A device's ``serial:`` stands for its first cumulative register, in
    configuration order.
    """
    devices = {}
    for channel in runtime.cfg.channels:
        for device in getattr(channel, "devices", None) or ():
            devices[device.name] = device
    registers: dict[str, Register] = {}
    for state in runtime.tags.states():
        tagdef = state.definition
        if not tagdef.device:
            continue  # the runtime's own tags (historian_backlog) are nobody's meter
        flag = getattr(tagdef, "cumulative", None)
        if flag is None:
            flag = _point_flag(devices.get(tagdef.device), tagdef.name)
        registers[tagdef.name] = Register(tagdef.name, tagdef.device, tagdef.unit, is_cumulative(tagdef.unit, flag))
    order = {tagdef.name: i for i, tagdef in enumerate(
        t for channel in getattr(runtime, "channels", ()) for t in getattr(channel, "tagdefs", ()))}
    serials: dict[str, str] = {}
    for name, device in devices.items():
        serial = getattr(device, "serial", None)
        if not serial:
            continue
        counters = sorted((r for r in registers.values() if r.device == name and r.cumulative),
                          key=lambda r: (order.get(r.tag, len(order)), r.tag))
        if counters:
            serials[str(serial)] = counters[0].tag
        else:
            log.warning("device %s has serial %r but no cumulative register: readings by that serial are refused",
                        name, serial)
    write_history = getattr(runtime, "_write_history", None)
    if write_history is None:
        write_history = runtime.historian.write
    return ManualReadings(runtime.tags, write_history, runtime.store, registers, serials, runtime.reactor.seconds)
