# -*- test-case-name: tests.tags.test_queue -*-
"""The store-and-forward queue: samples on disk until the database confirmed them.

DESIGN rule 6.  A `DiskQueue` is a directory of append-only segment files
(``000000000001.lp``, ...) holding line-protocol records (`tags.historian.lines`)
and a ``cursor`` file naming the first record the database has not confirmed.

- `append` writes with one ``os.write`` before it returns, so a sample the
  historian accepted is in the kernel's page cache: ``kill -9`` of the engine
  cannot lose it.  `sync` (called by the historian once per flush interval)
  fsyncs the segment for power cuts.
- `peek` hands out the oldest records, `commit` moves the cursor past them
  once the database confirmed them (the cursor file is replaced atomically);
  a crash between the database's confirmation and the cursor update replays
  the batch on the next start, which is harmless because a sample's
  identity is (tag, time) in every backend.
- A torn last record (a crash in the middle of a write) is cut off at open.
- The queue is bounded by ``max_bytes``.  When it is full the oldest
  segment is dropped (``when_full="drop_oldest"``, as Telegraf's metric
  buffer does: the newest readings are the ones a dispatcher needs, and
  meter archives can back-fill old gaps) or new samples are refused
  (``"drop_newest"``); either way the count is kept and logged.
- Batches the database can never take are moved to ``rejected.lp`` in the
  same directory, never deleted.

`MemoryQueue` has the same interface without the disk, for throw-away
historians (``:memory:`` databases in tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Literal

from tags.historian.lines import line_time

_log = logging.getLogger(__name__)

#: Bytes read per line requested when cutting a batch; lines are ~100 bytes.
_READ_PER_LINE = 256
_SUFFIX = ".lp"

WhenFull = Literal["drop_oldest", "drop_newest"]


def cut(buf: bytes | bytearray, max_count: int, start: int = 0) -> tuple[int, int]:
    """Return ``(nbytes, count)`` of the first ``max_count`` whole lines of ``buf[start:]``."""
    end = start - 1
    count = 0
    find = buf.find
    while count < max_count:
        nxt = find(b"\n", end + 1)
        if nxt < 0:
            break
        end = nxt
        count += 1
    return end + 1 - start, count


class QueueFull(Exception):
    """The queue's disk budget is used up and it refuses new samples (``drop_newest``)."""


class _Counters:
    """What a queue has seen since it was opened."""

    def __init__(self) -> None:
        self.appended_total = 0
        self.committed_total = 0
        self.dropped_total = 0
        self.rejected_total = 0

    def commit(self, count: int) -> None:
        """Move past the records of the last peek; see the subclasses."""
        raise NotImplementedError

    def _pass_rejected(self, count: int) -> None:
        """Move past the last peeked records as rejected, not written."""
        self.commit(count)
        self.committed_total -= count
        self.rejected_total += count


class MemoryQueue(_Counters):
    """The queue interface in memory: for throw-away historians only (nothing survives the process)."""

    durable = False

    def __init__(self) -> None:
        """Start empty."""
        super().__init__()
        self._buf = bytearray()
        self._pos = 0
        self._pending = 0
        self._peeked: tuple[int, int] | None = None

    @property
    def pending(self) -> int:
        """Return how many records wait for the database."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        """Return the bytes of the records that wait."""
        return len(self._buf) - self._pos

    def append(self, data: bytes, count: int) -> None:
        """Add ``count`` records (whole lines)."""
        self._buf += data
        self._pending += count
        self.appended_total += count

    def peek(self, max_count: int) -> tuple[bytes, int]:
        """Return up to ``max_count`` of the oldest records and their number."""
        nbytes, count = cut(self._buf, max_count, self._pos)
        self._peeked = (nbytes, count)
        return bytes(self._buf[self._pos : self._pos + nbytes]), count

    def commit(self, count: int) -> None:
        """Forget the records of the last `peek`: the database has them."""
        nbytes, peeked = self._take(count)
        self._pos += nbytes
        self._pending -= peeked
        self.committed_total += peeked
        if self._pos > 1 << 20 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0

    def reject(self, count: int, reason: str) -> None:
        """Drop the last peeked records the database refused for good (kept nowhere: memory)."""
        _log.error("history: %d samples refused by the database and dropped: %s", count, reason)
        self._pass_rejected(count)

    def head_time(self) -> float | None:
        """Return the sample time of the oldest waiting record."""
        if not self._pending:
            return None
        end = self._buf.find(b"\n", self._pos)
        return line_time(bytes(self._buf[self._pos : end]))

    def sync(self) -> None:
        """Nothing to make durable."""

    def close(self) -> None:
        """Nothing to release."""

    def stats(self) -> dict[str, Any]:
        """Return counters and sizes."""
        return _stats(self, None, None)

    def _take(self, count: int) -> tuple[int, int]:
        if self._peeked is None or self._peeked[1] != count:
            raise RuntimeError(f"commit of {count} records without a matching peek ({self._peeked})")
        peeked, self._peeked = self._peeked, None
        return peeked


class DiskQueue(_Counters):
    """Append-only segment files plus a cursor; see the module docstring."""

    durable = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        when_full: WhenFull = "drop_oldest",
    ) -> None:
        """Open (creating if needed) the queue in ``directory`` and recover its state."""
        if max_bytes < 4096:
            raise ValueError(f"queue budget of {max_bytes} bytes is too small (at least 4096)")
        if when_full not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"when_full must be drop_oldest or drop_newest, not {when_full!r}")
        super().__init__()
        self.path = Path(directory)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # A budget must hold several segments, or dropping one would empty it.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 8))
        self.when_full = when_full
        # Oldest first: [sequence, size in bytes]; the last one is written to.
        self._segments: list[list[int]] = []
        self._offset = 0  # cursor within self._segments[0]
        self._pending = 0
        self._peeked: tuple[int, int, int] | None = None  # (sequence, nbytes, count)
        self._fd: int | None = None
        self._full = False
        self._unsynced = False
        self._recover()

    # -- state -----------------------------------------------------------

    @property
    def pending(self) -> int:
        """Return how many records wait for the database."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        """Return the bytes of the records that wait."""
        return sum(size for _, size in self._segments) - self._offset

    @property
    def disk_bytes(self) -> int:
        """Return the bytes the segment files take."""
        return sum(size for _, size in self._segments)

    def _file(self, seq: int) -> Path:
        return self.path / f"{seq:012d}{_SUFFIX}"

    def _recover(self) -> None:
        """Find the segments and the cursor, cut a torn tail, count what waits."""
        seqs = sorted(int(p.stem) for p in self.path.glob(f"*{_SUFFIX}") if p.stem.isdigit())
        cursor_seq, offset = self._read_cursor()
        for seq in seqs:
            if cursor_seq is not None and seq < cursor_seq:
                # Confirmed entirely; a crash came between the cursor and the unlink.
                with contextlib.suppress(FileNotFoundError):
                    self._file(seq).unlink()
                continue
            self._segments.append([seq, self._file(seq).stat().st_size])
        if self._segments and self._segments[0][0] == cursor_seq:
            self._offset = min(offset, self._segments[0][1])
        if self._segments:
            self._cut_torn_tail(self._segments[-1])
            self._offset = min(self._offset, self._segments[0][1])
        else:
            self._segments.append([(cursor_seq or 0) + 1, 0])
        self._open_tail()
        self._pending = self._count_lines()

    def _read_cursor(self) -> tuple[int | None, int]:
        try:
            text = (self.path / "cursor").read_text()
            seq, offset = (int(part) for part in text.split())
        except FileNotFoundError:
            return None, 0
        except (OSError, ValueError):
            _log.error("history queue %s: unreadable cursor file; replaying every segment", self.path)
            return None, 0
        return seq, offset

    def _cut_torn_tail(self, segment: list[int]) -> None:
        seq, size = segment
        if not size:
            return
        with open(self._file(seq), "r+b") as f:
            back = min(size, 64 << 10)
            f.seek(size - back)
            tail = f.read(back)
            last = tail.rfind(b"\n")
            keep = size - back + last + 1 if last >= 0 else (0 if back == size else size)
            if keep != size:
                _log.warning("history queue %s: cut %d bytes of a torn record at the end of %s",
                             self.path, size - keep, self._file(seq).name)
                f.truncate(keep)
                segment[1] = keep

    def _count_lines(self) -> int:
        total = 0
        for i, (seq, size) in enumerate(self._segments):
            start = self._offset if i == 0 else 0
            with open(self._file(seq), "rb") as f:
                f.seek(start)
                while chunk := f.read(1 << 20):
                    total += chunk.count(b"\n")
            del size
        return total

    def _open_tail(self) -> None:
        seq = self._segments[-1][0]
        self._fd = os.open(self._file(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write_cursor(self) -> None:
        tmp = self.path / "cursor.tmp"
        tmp.write_text(f"{self._segments[0][0]} {self._offset}\n")
        os.replace(tmp, self.path / "cursor")

    # -- writing ---------------------------------------------------------

    def append(self, data: bytes, count: int) -> None:
        """Write ``count`` records (whole lines) to the tail segment.

        Raises `QueueFull` when the budget is used up and ``when_full`` is
        ``drop_newest``; with ``drop_oldest`` the oldest segments make room.
        """
        if self._fd is None:
            raise RuntimeError(f"history queue {self.path} is closed")
        if not count:
            return
        if self.disk_bytes + len(data) > self.max_bytes and not self._make_room(len(data), count):
            raise QueueFull(f"history queue {self.path} is full ({self.max_bytes} bytes); "
                            f"{count} samples refused")
        tail = self._segments[-1]
        if tail[1] >= self.segment_bytes:
            self._rotate()
            tail = self._segments[-1]
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # only on a full disk or a signal
                written += os.write(self._fd, data[written:])
        except OSError:
            # Take back a partial record, or the next append would be glued to it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, tail[1])
            raise
        tail[1] += len(data)
        self._pending += count
        self.appended_total += count
        self._unsynced = True

    def _rotate(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._segments.append([self._segments[-1][0] + 1, 0])
        self._open_tail()

    def _make_room(self, nbytes: int, count: int) -> bool:
        """Free space for ``nbytes`` under the budget; return whether there is room now."""
        head_seq, head_size = self._segments[0]
        if head_size and self._offset >= head_size:
            # The database has every record on disk in the head segment: its bytes are free.
            if len(self._segments) == 1:
                self._rotate()
            if self._peeked is not None and self._peeked[0] == head_seq:
                self._peeked = None
            self._advance_segment()
            if self.disk_bytes + nbytes <= self.max_bytes:
                return True
        if nbytes > self.max_bytes:
            self.dropped_total += count
            _log.error("history queue %s: %d samples (%d bytes) refused: more than the whole budget (%d bytes)",
                       self.path, count, nbytes, self.max_bytes)
            return False
        if self.when_full == "drop_newest":
            self.dropped_total += count
            if not self._full:
                self._full = True
                _log.error("history queue %s is full (%d bytes): new samples are dropped until the "
                           "database takes the backlog", self.path, self.max_bytes)
            return False
        while self.disk_bytes + nbytes > self.max_bytes and len(self._segments) > 1:
            seq, size = self._segments[0]
            with open(self._file(seq), "rb") as f:
                f.seek(self._offset)
                lost = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            self._file(seq).unlink()
            del self._segments[0]
            self._offset = 0
            self._pending -= lost
            self.dropped_total += lost
            self._peeked = None  # a batch in flight from the dropped segment is gone
            self._write_cursor()
            _log.error("history queue %s is full (%d bytes): dropped the oldest %d samples",
                       self.path, self.max_bytes, lost)
        if self.disk_bytes + nbytes > self.max_bytes:
            # The tail segment alone fills the budget: start a new one.
            self._rotate()
            return self._make_room(nbytes, count) if len(self._segments) > 1 else True
        return True

    def sync(self) -> None:
        """Fsync the tail segment if anything was written since the last sync."""
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
            self._unsynced = False

    # -- reading ---------------------------------------------------------

    def peek(self, max_count: int) -> tuple[bytes, int]:
        """Return up to ``max_count`` of the oldest records (never across segments) and their number."""
        while True:
            seq, size = self._segments[0]
            if self._offset < size or len(self._segments) == 1:
                break
            # The head segment is used up: go on with the next one.
            self._advance_segment()
        want = max(4096, max_count * _READ_PER_LINE)
        with open(self._file(seq), "rb") as f:
            while True:
                f.seek(self._offset)
                chunk = f.read(min(want, size - self._offset))
                nbytes, count = cut(chunk, max_count)
                if count or self._offset + len(chunk) >= size:
                    break
                want *= 4  # a line longer than the guess
        self._peeked = (seq, nbytes, count)
        return chunk[:nbytes], count

    def commit(self, count: int) -> None:
        """Move the cursor past the records of the last `peek`: the database has them."""
        peeked, self._peeked = self._peeked, None
        if peeked is None:
            # The batch's segment was dropped for room meanwhile: nothing to move.
            return
        seq, nbytes, peeked_count = peeked
        if peeked_count != count or seq != self._segments[0][0]:
            raise RuntimeError(f"commit of {count} records does not match the peek ({peeked_count})")
        self._offset += nbytes
        self._pending -= count
        self.committed_total += count
        if self._offset >= self._segments[0][1] and len(self._segments) > 1:
            self._advance_segment()
        else:
            self._write_cursor()
        self._full = False

    def _advance_segment(self) -> None:
        seq = self._segments.pop(0)[0]
        self._offset = 0
        self._write_cursor()
        with contextlib.suppress(FileNotFoundError):
            self._file(seq).unlink()

    def reject(self, count: int, reason: str) -> None:
        """Move the last peeked records to ``rejected.lp`` and go past them."""
        if self._peeked is None:
            return
        seq, nbytes, _ = self._peeked
        with open(self._file(seq), "rb") as f:
            f.seek(self._offset)
            data = f.read(nbytes)
        with open(self.path / "rejected.lp", "ab") as f:
            f.write(f"# {count} samples refused: {reason}\n".replace("\n", " ").encode() + b"\n" + data)
            f.flush()
            os.fsync(f.fileno())
        _log.error("history: the database refused %d samples for good (%s); kept in %s",
                   count, reason, self.path / "rejected.lp")
        self._pass_rejected(count)

    def head_time(self) -> float | None:
        """Return the sample time of the oldest waiting record."""
        if not self._pending:
            return None
        for i, (seq, size) in enumerate(self._segments):
            start = self._offset if i == 0 else 0
            if start < size:
                with open(self._file(seq), "rb") as f:
                    f.seek(start)
                    return line_time(f.readline(64 << 10))
        return None

    def close(self) -> None:
        """Fsync and close the tail segment."""
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None

    def stats(self) -> dict[str, Any]:
        """Return counters, sizes and the budget."""
        return _stats(self, str(self.path), self.max_bytes)


def _stats(queue: Any, path: str | None, budget: int | None) -> dict[str, Any]:
    return {
        "path": path,
        "durable": queue.durable,
        "pending": queue.pending,
        "pending_bytes": queue.pending_bytes,
        "budget_bytes": budget,
        "appended_total": queue.appended_total,
        "committed_total": queue.committed_total,
        "dropped_total": queue.dropped_total,
        "rejected_total": queue.rejected_total,
    }
