"""Tests for tags.historian.queue: the store-and-forward queue on disk and in memory."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tags.historian.lines import line_time
from tags.historian.queue import DiskQueue, MemoryQueue, QueueFull, cut

T0 = 1795244400  # 2026-11-21T07:00:00Z
LOGGER = "tags.historian.queue"

Queue = DiskQueue | MemoryQueue


def line(i: int, pad: int = 40) -> bytes:
    """Return queue record ``i``: unique, ``pad`` controls its length, time ``T0 + i``."""
    return f'samples,tag=dev.t{i}{"x" * pad} quality="good",value={i}.0 {(T0 + i) * 1_000_000}\n'.encode()


def lines(start: int, stop: int, pad: int = 40) -> list[bytes]:
    """Return records ``start`` to ``stop - 1``."""
    return [line(i, pad) for i in range(start, stop)]


def put(q: Queue, records: list[bytes]) -> None:
    """Append ``records`` in one call."""
    q.append(b"".join(records), len(records))


def take(q: Queue, max_count: int) -> list[bytes]:
    """Peek and commit up to ``max_count`` records; return them."""
    data, count = q.peek(max_count)
    q.commit(count)
    got = data.splitlines(keepends=True)
    assert len(got) == count
    return got


def take_all(q: Queue) -> list[bytes]:
    """Peek and commit until the queue is empty; return everything in order."""
    out: list[bytes] = []
    while q.pending:
        got = take(q, 1000)
        assert got, "peek returned nothing while records wait"
        out += got
    return out


def crash(q: DiskQueue) -> None:
    """Let the process die under ``q``: the kernel closes its file, nothing is fsynced or flushed.

    The queue is simply abandoned (no `DiskQueue.close`); only the raw file
    descriptor is closed, as the kernel would on ``kill -9``, so that
    property runs do not leak descriptors.
    """
    assert q._fd is not None
    os.close(q._fd)
    q._fd = None


def segments(directory: Path) -> list[Path]:
    """Return the segment files, oldest first."""
    return sorted(p for p in directory.glob("*.lp") if p.stem.isdigit())


def cursor(directory: Path) -> tuple[int, int]:
    """Return the cursor file's (sequence, offset)."""
    seq, offset = (directory / "cursor").read_text().split()
    return int(seq), int(offset)


def records_of(path: Path) -> list[bytes]:
    """Return the lines of a file."""
    return path.read_bytes().splitlines(keepends=True)


# -- cut ------------------------------------------------------------------------


def test_cut_whole_lines() -> None:
    """cut counts whole lines only, up to max_count, from start."""
    buf = b"a\nbb\nccc\ndd"
    assert cut(buf, 10) == (9, 3)  # the unterminated "dd" is not a line
    assert cut(buf, 2) == (5, 2)
    assert cut(buf, 0) == (0, 0)
    assert cut(b"", 5) == (0, 0)
    assert cut(b"no newline", 5) == (0, 0)
    assert cut(bytearray(buf), 1) == (2, 1)


def test_cut_with_start() -> None:
    """With a start offset the byte count is relative to start."""
    buf = b"a\nbb\nccc\ndd"
    assert cut(buf, 10, start=2) == (7, 2)
    assert cut(buf, 1, start=2) == (3, 1)
    assert cut(buf, 10, start=9) == (0, 0)
    assert cut(buf, 10, start=len(buf)) == (0, 0)
    assert cut(buf, 10, start=5) == (4, 1)


@given(
    st.lists(st.binary(max_size=8).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=20),
    st.integers(0, 25),
    st.integers(0, 20),
    st.binary(max_size=5).map(lambda b: b.replace(b"\n", b"")),
)
def test_cut_matches_model(records: list[bytes], skip: int, max_count: int, torn: bytes) -> None:
    """From any line boundary, cut returns the first max_count records and no torn one."""
    skip = min(skip, len(records))
    buf = b"".join(records) + torn
    start = len(b"".join(records[:skip]))
    want = records[skip : skip + max_count]
    assert cut(buf, max_count, start) == (len(b"".join(want)), len(want))


# -- DiskQueue basics -------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    """append, peek and commit give the records back in order, each once."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 3))
    put(q, lines(3, 5))
    assert (q.pending, q.pending_bytes) == (5, len(b"".join(lines(0, 5))))
    data, count = q.peek(10)
    assert (data, count) == (b"".join(lines(0, 5)), 5)
    assert q.peek(10) == (data, count)  # peeking again without commit gives the same
    q.commit(5)
    assert (q.pending, q.pending_bytes) == (0, 0)
    assert q.peek(10) == (b"", 0)
    put(q, lines(5, 6))
    assert take_all(q) == lines(5, 6)
    assert (q.appended_total, q.committed_total) == (6, 6)
    q.close()


def test_batches_respect_max_count(tmp_path: Path) -> None:
    """A peek returns at most max_count records, and a commit moves past exactly those."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 10))
    data, count = q.peek(3)
    assert (data, count) == (b"".join(lines(0, 3)), 3)
    q.commit(3)
    assert take(q, 4) == lines(3, 7)
    assert take(q, 100) == lines(7, 10)
    assert q.pending == 0
    q.close()


def test_commit_must_match_the_peek(tmp_path: Path) -> None:
    """Committing another count than was peeked is a programming error, not silent loss."""
    for q in (DiskQueue(tmp_path), MemoryQueue()):
        put(q, lines(0, 4))
        q.peek(2)
        with pytest.raises(RuntimeError, match="commit of 3"):
            q.commit(3)
        q.close()


def test_peek_never_splits_a_line(tmp_path: Path) -> None:
    """Long lines (longer than the read-ahead guess) come back whole."""
    q = DiskQueue(tmp_path)
    recs = [line(0, pad=20_000), line(1, pad=5), line(2, pad=9_000)]
    put(q, recs)
    data, count = q.peek(1)
    assert (data, count) == (recs[0], 1)
    q.commit(1)
    # A batch may be shorter than asked (the read-ahead is bounded) but holds only whole lines.
    assert take_all(q) == recs[1:]
    q.close()


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    """Too small a budget or an unknown policy is refused before anything is created."""
    with pytest.raises(ValueError, match="too small"):
        DiskQueue(tmp_path / "a", max_bytes=4095)
    with pytest.raises(ValueError, match="when_full"):
        DiskQueue(tmp_path / "b", when_full="drop_random")  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_append_after_close_raises(tmp_path: Path) -> None:
    """A closed queue refuses records instead of losing them."""
    q = DiskQueue(tmp_path)
    q.close()
    q.close()
    with pytest.raises(RuntimeError, match="closed"):
        put(q, lines(0, 1))


def test_empty_append_is_a_no_op(tmp_path: Path) -> None:
    """Appending zero records writes nothing."""
    q = DiskQueue(tmp_path)
    q.append(b"", 0)
    assert (q.pending, q.disk_bytes, q.appended_total) == (0, 0, 0)
    q.close()


def test_creates_the_directory(tmp_path: Path) -> None:
    """The queue directory and its parents are created."""
    q = DiskQueue(tmp_path / "var" / "queue")
    put(q, lines(0, 1))
    assert [p.name for p in segments(tmp_path / "var" / "queue")] == ["000000000001.lp"]
    q.close()


# -- surviving a crash ------------------------------------------------------------


def test_append_is_in_the_file_when_it_returns(tmp_path: Path) -> None:
    """After append returns the record is in the segment file (page cache): kill -9 cannot lose it."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 2))
    (seg,) = segments(tmp_path)
    assert records_of(seg) == lines(0, 2)
    crash(q)


def test_reopen_recovers_pending_and_cursor(tmp_path: Path) -> None:
    """A new queue on the directory of a killed one counts what waits and resumes at the cursor."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 10))
    take(q, 4)
    assert cursor(tmp_path) == (1, len(b"".join(lines(0, 4))))
    crash(q)

    again = DiskQueue(tmp_path)
    assert again.pending == 6
    assert again.pending_bytes == len(b"".join(lines(4, 10)))
    assert again.head_time() == T0 + 4
    put(again, lines(10, 12))
    assert take_all(again) == lines(4, 12)
    again.close()


def test_reopen_after_clean_close(tmp_path: Path) -> None:
    """close then reopen gives the same state as a crash."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 5))
    take(q, 2)
    q.close()
    again = DiskQueue(tmp_path)
    assert again.pending == 3
    assert take_all(again) == lines(2, 5)
    again.close()


def test_uncommitted_peek_is_replayed(tmp_path: Path) -> None:
    """A batch peeked but not committed before the crash comes back first."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 5))
    take(q, 1)
    q.peek(3)
    crash(q)
    again = DiskQueue(tmp_path)
    assert take(again, 3) == lines(1, 4)
    again.close()


def test_torn_tail_is_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A half-written last record is cut off at open, with a warning; the rest is intact."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 3))
    crash(q)
    (seg,) = segments(tmp_path)
    good_size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b'samples,tag=dev.torn quality="go')

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = DiskQueue(tmp_path)
    assert again.pending == 3
    assert seg.stat().st_size == good_size
    assert any("torn" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    put(again, lines(3, 4))
    assert take_all(again) == lines(0, 4)
    again.close()


def test_torn_tail_only_garbage(tmp_path: Path) -> None:
    """A tail segment with no whole record at all is emptied."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 2))
    take(q, 2)
    crash(q)
    (seg,) = segments(tmp_path)
    seg.write_bytes(b"garbage without newline")
    again = DiskQueue(tmp_path)
    assert (again.pending, again.pending_bytes) == (0, 0)
    assert seg.stat().st_size == 0
    put(again, lines(2, 3))
    assert take_all(again) == lines(2, 3)
    again.close()


def test_torn_tail_in_a_later_segment(tmp_path: Path) -> None:
    """Only the last segment can be torn; the earlier ones keep their records."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    for i in range(60):
        put(q, [line(i)])
    assert len(segments(tmp_path)) >= 2
    crash(q)
    with open(segments(tmp_path)[-1], "ab") as f:
        f.write(b"samples,tag")
    again = DiskQueue(tmp_path)
    assert again.pending == 60
    assert take_all(again) == lines(0, 60)
    again.close()


def test_missing_cursor_replays_everything(tmp_path: Path) -> None:
    """Without a cursor every record on disk is sent again (harmless: (tag, ts) is the identity)."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 5))
    take(q, 3)
    crash(q)
    (tmp_path / "cursor").unlink()
    again = DiskQueue(tmp_path)
    assert again.pending == 5
    assert take_all(again) == lines(0, 5)
    again.close()


@pytest.mark.parametrize("text", ["", "garbage", "1", "1 2 3", "x 5", "\xff\xfe"])
def test_corrupt_cursor_replays_everything(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str) -> None:
    """An unreadable cursor is reported and every segment is replayed."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 5))
    take(q, 3)
    crash(q)
    (tmp_path / "cursor").write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        again = DiskQueue(tmp_path)
    assert again.pending == 5
    assert any("cursor" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert take_all(again) == lines(0, 5)
    again.close()


def test_cursor_beyond_the_end_is_clamped(tmp_path: Path) -> None:
    """A cursor past the end of its segment (the tail was cut) means nothing waits there."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 2))
    crash(q)
    (tmp_path / "cursor").write_text("1 999999\n")
    again = DiskQueue(tmp_path)
    assert again.pending == 0
    put(again, lines(2, 3))
    assert take_all(again) == lines(2, 3)
    again.close()


def test_crash_between_cursor_and_unlink(tmp_path: Path) -> None:
    """A confirmed segment left behind by a crash before its unlink is deleted at open, not replayed."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    n = 0
    while len(segments(tmp_path)) < 2:
        put(q, [line(n)])
        n += 1
    first = segments(tmp_path)[0]
    first_bytes = first.read_bytes()
    in_first = len(records_of(first))
    assert take(q, 1000) == lines(0, in_first)  # the whole first segment
    assert not first.exists()
    assert cursor(tmp_path) == (2, 0)
    crash(q)
    first.write_bytes(first_bytes)  # as if the unlink had not happened

    again = DiskQueue(tmp_path)
    assert not first.exists()
    assert again.pending == n - in_first
    assert take_all(again) == lines(in_first, n)
    again.close()


def test_crash_in_drop_between_unlink_and_cursor(tmp_path: Path) -> None:
    """A cursor naming a segment that no longer exists starts at the next segment's beginning."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    n = 0
    while len(segments(tmp_path)) < 3:
        put(q, [line(n)])
        n += 1
    take(q, 2)
    crash(q)
    first = segments(tmp_path)[0]
    in_first = len(records_of(first))
    first.unlink()  # the cursor still says (1, offset of record 2)
    again = DiskQueue(tmp_path)
    assert again.pending == n - in_first
    assert take_all(again) == lines(in_first, n)
    again.close()


# -- segments -------------------------------------------------------------------


def test_segments_rotate_and_confirmed_ones_are_deleted(tmp_path: Path) -> None:
    """A new segment starts once the tail reaches segment_bytes; a confirmed one is deleted."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    assert q.segment_bytes == 4096
    recs = lines(0, 100)
    for rec in recs:
        put(q, [rec])
    segs = segments(tmp_path)
    assert len(segs) >= 3
    assert [int(p.stem) for p in segs] == list(range(1, len(segs) + 1))
    for seg in segs[:-1]:
        assert 4096 <= seg.stat().st_size < 4096 + len(recs[0])
    assert q.disk_bytes == sum(p.stat().st_size for p in segs)

    # A peek never crosses into the next segment.
    in_first = len(records_of(segs[0]))
    data, count = q.peek(1000)
    assert (data, count) == (segs[0].read_bytes(), in_first)
    q.commit(count)
    assert not segs[0].exists()
    assert cursor(tmp_path) == (2, 0)
    assert take_all(q) == recs[in_first:]
    assert segments(tmp_path) == segs[-1:]  # the tail stays, empty of waiting records
    q.close()


def test_segment_size_is_bounded_by_the_budget(tmp_path: Path) -> None:
    """A segment is at most an eighth of the budget, at least 4 KiB."""
    assert DiskQueue(tmp_path / "a", max_bytes=1 << 20, segment_bytes=16 << 20).segment_bytes == 128 << 10
    assert DiskQueue(tmp_path / "b", max_bytes=8192, segment_bytes=100).segment_bytes == 4096
    assert DiskQueue(tmp_path / "c").segment_bytes == 16 << 20


def test_consumed_tail_segment_is_reused_until_it_is_full(tmp_path: Path) -> None:
    """A fully confirmed single segment stays (it is the tail) and takes new records."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    put(q, lines(0, 3))
    take_all(q)
    put(q, lines(3, 4))
    assert len(segments(tmp_path)) == 1
    assert take_all(q) == lines(3, 4)
    q.close()


# -- the budget -------------------------------------------------------------------


def fill_until_drop(q: DiskQueue, start: int) -> int:
    """Append records one by one from ``start`` until something was dropped; return the next index."""
    i = start
    while not q.dropped_total:
        put(q, [line(i)])
        i += 1
        assert i < start + 10_000
    return i


def test_drop_oldest_drops_whole_segments(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Over budget, the oldest segment goes; a batch peeked from it is gone too (commit is a no-op)."""
    q = DiskQueue(tmp_path, max_bytes=16384, segment_bytes=4096)
    put(q, lines(0, 3))
    take(q, 2)  # two confirmed: not counted as dropped
    data, count = q.peek(5)  # a batch in flight from segment 1
    assert count == 1
    first = segments(tmp_path)[0]
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        n = fill_until_drop(q, 3)
    in_first = int(q.head_time() - T0)  # the first record of segment 2
    assert not first.exists()
    assert q.dropped_total == in_first - 2
    assert q.pending == n - in_first
    assert q.disk_bytes <= q.max_bytes
    assert any("dropped the oldest" in r.getMessage() for r in caplog.records)

    q.commit(count)  # the answer for the dropped batch: nothing moves
    assert q.pending == n - in_first
    assert q.committed_total == 2
    assert q.head_time() == T0 + in_first
    assert take_all(q) == lines(in_first, n)
    q.close()

    again = DiskQueue(tmp_path, max_bytes=16384, segment_bytes=4096)
    assert again.pending == 0
    again.close()


def test_drop_oldest_keeps_the_budget_over_time(tmp_path: Path) -> None:
    """Appending far more than the budget keeps the disk use under it and the newest records."""
    q = DiskQueue(tmp_path, max_bytes=16384, segment_bytes=4096)
    for i in range(1000):
        put(q, [line(i)])
        assert q.disk_bytes <= q.max_bytes
    assert q.appended_total == 1000
    assert q.pending + q.dropped_total == 1000
    got = take_all(q)
    assert got == lines(1000 - len(got), 1000)
    q.close()


def test_drop_newest_refuses_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Over budget with drop_newest, append raises QueueFull, counts, logs once, and keeps the old."""
    q = DiskQueue(tmp_path, max_bytes=16384, segment_bytes=4096, when_full="drop_newest")
    i = 0
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        with pytest.raises(QueueFull, match="full"):
            while True:
                put(q, [line(i)])
                i += 1
        size = q.disk_bytes
        with pytest.raises(QueueFull):
            put(q, lines(i, i + 3))
    assert q.dropped_total == 4
    assert q.pending == i
    assert q.disk_bytes == size <= q.max_bytes
    assert len([r for r in caplog.records if "full" in r.getMessage()]) == 1

    # Once the database took a whole segment there is room again.
    in_first = len(records_of(segments(tmp_path)[0]))
    assert take(q, 1000) == lines(0, in_first)
    put(q, [line(i)])
    assert q.pending == i - in_first + 1
    assert take_all(q) == lines(in_first, i + 1)
    q.close()


def test_drop_newest_room_after_everything_is_confirmed(tmp_path: Path) -> None:
    """With the smallest budget, a queue the database emptied takes records again."""
    q = DiskQueue(tmp_path, max_bytes=4096, when_full="drop_newest")
    i = 0
    with pytest.raises(QueueFull):
        while True:
            put(q, [line(i)])
            i += 1
    assert take_all(q) == lines(0, i)
    put(q, [line(i)])  # nothing waits: the confirmed bytes must not keep the queue full
    assert take_all(q) == [line(i)]
    q.close()


def test_append_larger_than_the_budget(tmp_path: Path) -> None:
    """One append bigger than the whole budget is refused and counted, without dropping the rest."""
    q = DiskQueue(tmp_path, max_bytes=4096)
    put(q, lines(0, 2))
    with pytest.raises(QueueFull):
        put(q, lines(2, 100))
    assert q.dropped_total == 98
    assert q.pending == 2
    assert take_all(q) == lines(0, 2)
    assert q.disk_bytes <= 4096
    q.close()


def test_failed_write_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write cut short by a full disk raises and leaves the queue exactly as it was."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 2))
    real_write = os.write

    def short_then_enospc(fd: int, data: bytes) -> int:
        if len(data) > 10:
            return real_write(fd, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_enospc)
    with pytest.raises(OSError, match="No space"):
        put(q, lines(2, 4))
    monkeypatch.undo()
    assert q.pending == 2
    put(q, lines(4, 5))
    assert take_all(q) == lines(0, 2) + lines(4, 5)
    q.close()
    again = DiskQueue(tmp_path)
    assert again.pending == 0
    again.close()


# -- reject, head_time, sync, stats -------------------------------------------------------


def test_reject_moves_batch_to_rejected_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A refused batch goes to rejected.lp with the reason, and the queue moves past it."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 6))
    data, count = q.peek(3)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        q.reject(count, "field type conflict:\nvalue is integer")
    rejected = tmp_path / "rejected.lp"
    text = rejected.read_bytes()
    header, rest = text.split(b"\n", 1)
    assert header.startswith(b"# 3 samples refused: field type conflict: value is integer")
    assert rest == data == b"".join(lines(0, 3))
    assert (q.pending, q.rejected_total, q.committed_total) == (3, 3, 0)
    assert any("rejected.lp" in r.getMessage() for r in caplog.records)

    q.peek(1)
    q.reject(1, "again")
    assert rejected.read_bytes().startswith(text)  # appended, never overwritten
    assert rejected.read_bytes().endswith(b"# 1 samples refused: again \n" + line(3))
    assert take_all(q) == lines(4, 6)
    assert (q.rejected_total, q.committed_total) == (4, 2)
    q.close()

    again = DiskQueue(tmp_path)  # rejected.lp is not mistaken for a segment
    assert again.pending == 0
    assert segments(tmp_path) != [] and rejected.exists()
    again.close()


def test_reject_without_peek_does_nothing(tmp_path: Path) -> None:
    """Rejecting with nothing peeked writes nothing and moves nothing."""
    q = DiskQueue(tmp_path)
    put(q, lines(0, 2))
    q.reject(2, "nothing peeked")
    assert q.pending == 2 and not (tmp_path / "rejected.lp").exists()
    q.close()


def test_memory_reject_counts(caplog: pytest.LogCaptureFixture) -> None:
    """The in-memory queue logs and counts a refused batch (there is no file to keep it in)."""
    q = MemoryQueue()
    put(q, lines(0, 4))
    q.peek(3)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        q.reject(3, "bad batch")
    assert (q.pending, q.rejected_total, q.committed_total) == (1, 3, 0)
    assert any("bad batch" in r.getMessage() for r in caplog.records)
    assert take_all(q) == lines(3, 4)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_head_time(tmp_path: Path, kind: str) -> None:
    """head_time is the time of the oldest waiting record, None when none waits."""
    q: Queue = DiskQueue(tmp_path, segment_bytes=4096) if kind == "disk" else MemoryQueue()
    assert q.head_time() is None
    for i in range(80):
        put(q, [line(i)])
    assert q.head_time() == T0
    take(q, 5)
    assert q.head_time() == T0 + 5
    while q.pending > 1:
        take(q, 1)
        assert q.head_time() == line_time(q.peek(1)[0])
    take(q, 1)
    assert q.head_time() is None
    q.close()


def test_sync_fsyncs_only_when_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sync fsyncs the tail after writes, and not again while nothing new was written."""
    q = DiskQueue(tmp_path)
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    q.sync()
    assert calls == []
    put(q, lines(0, 1))
    q.sync()
    assert len(calls) == 1
    q.sync()
    assert len(calls) == 1
    put(q, lines(1, 2))
    q.close()
    assert len(calls) == 2
    q.sync()  # closed: nothing to do
    assert len(calls) == 2


def test_rotation_fsyncs_the_finished_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment is made durable when the queue moves on to the next one."""
    q = DiskQueue(tmp_path, segment_bytes=4096)
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    while len(segments(tmp_path)) < 2:
        put(q, [line(q.appended_total)])
    assert len(calls) == 1
    q.close()


def test_stats(tmp_path: Path) -> None:
    """stats names the path, the budget, sizes and counters."""
    q = DiskQueue(tmp_path, max_bytes=1 << 20)
    put(q, lines(0, 3))
    take(q, 1)
    assert q.stats() == {
        "path": str(tmp_path),
        "durable": True,
        "pending": 2,
        "pending_bytes": len(b"".join(lines(1, 3))),
        "budget_bytes": 1 << 20,
        "appended_total": 3,
        "committed_total": 1,
        "dropped_total": 0,
        "rejected_total": 0,
    }
    q.close()
    m = MemoryQueue()
    put(m, lines(0, 3))
    take(m, 1)
    assert m.stats() == {**q.stats(), "path": None, "durable": False, "budget_bytes": None}


def test_memory_queue_compacts() -> None:
    """The in-memory buffer forgets confirmed records once they are most of it."""
    q = MemoryQueue()
    big = lines(0, 20, pad=100_000)
    put(q, big)
    assert take(q, 15) == big[:15]
    assert len(q._buf) == len(b"".join(big[15:]))
    assert take_all(q) == big[15:]


# -- the property: nothing lost, nothing duplicated ---------------------------------

_op = st.one_of(
    st.tuples(st.just("append"), st.lists(st.integers(0, 400), min_size=1, max_size=12)),
    st.tuples(st.just("peek"), st.integers(1, 25)),
    st.tuples(st.just("commit"), st.none()),
    st.tuples(st.just("reject"), st.none()),
    st.tuples(st.just("reopen"), st.booleans()),
)
_ops = st.lists(_op, max_size=50)


class Model:
    """What the queue must hold: records accepted and not yet confirmed, in order."""

    def __init__(self) -> None:
        """Start empty."""
        self.waiting: list[bytes] = []
        self.appended: list[bytes] = []
        self.consumed: list[bytes] = []  # confirmed or rejected, in order
        self.rejected: list[bytes] = []
        self.dropped: list[bytes] = []
        self.peeked: int | None = None
        self.next = 0


def check(q: Queue, m: Model) -> None:
    """The queue's counts and head agree with the model."""
    assert q.pending == len(m.waiting)
    assert q.pending_bytes == sum(map(len, m.waiting))
    assert q.head_time() == (line_time(m.waiting[0]) if m.waiting else None)
    if isinstance(q, DiskQueue):
        assert q.disk_bytes <= q.max_bytes


def run_ops(ops: list[tuple[str, Any]], open_queue: Callable[[], Queue], directory: Path | None) -> Model:
    """Apply ``ops`` to a queue and to the model, checking after each; drain at the end."""
    q = open_queue()
    m = Model()
    for op, arg in ops:
        if op == "append":
            recs = [line(m.next + k, pad) for k, pad in enumerate(arg)]
            m.next += len(recs)
            m.appended += recs
            dropped_before = q.dropped_total
            try:
                put(q, recs)
            except QueueFull:
                assert q.dropped_total - dropped_before == len(recs)
                m.dropped += recs
            else:
                lost = q.dropped_total - dropped_before
                if lost:
                    # Whole oldest records went, and any batch peeked from them.
                    m.dropped += m.waiting[:lost]
                    del m.waiting[:lost]
                    m.peeked = None
                m.waiting += recs
        elif op == "peek":
            data, count = q.peek(arg)
            got = data.splitlines(keepends=True)
            assert len(got) == count <= arg
            assert got == m.waiting[:count]
            assert count or not m.waiting, "nothing handed out while records wait"
            if directory is not None and count:
                # Never across a segment: the batch lies in one file.
                assert any(data in p.read_bytes() for p in segments(directory))
            m.peeked = count
        elif op in ("commit", "reject") and m.peeked is not None:
            count, m.peeked = m.peeked, None
            if op == "commit":
                q.commit(count)
            else:
                q.reject(count, "refused")
                m.rejected += m.waiting[:count]
            m.consumed += m.waiting[:count]
            del m.waiting[:count]
        elif op == "reopen" and isinstance(q, DiskQueue):
            if arg:
                q.close()
            else:
                crash(q)
            q = open_queue()
            m.peeked = None
        check(q, m)
    m.consumed += take_all(q)
    assert sorted(m.consumed + m.dropped) == sorted(m.appended)
    kept = set(m.consumed)
    assert m.consumed == [r for r in m.appended if r in kept]  # in order, each once
    if directory is not None:
        rejected = directory / "rejected.lp"
        kept_lines = [r for r in records_of(rejected) if not r.startswith(b"#")] if rejected.exists() else []
        assert kept_lines == m.rejected
    q.close()
    return m


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_disk_queue_never_loses_or_duplicates(ops: list[tuple[str, Any]]) -> None:
    """Random append/peek/commit/reject/reopen (clean or killed): every record comes out exactly once, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        m = run_ops(ops, lambda: DiskQueue(directory, segment_bytes=4096), directory)
    assert m.consumed == m.appended and not m.dropped


# Long records and mostly appends, so that a 12 KiB budget (three segments) overflows often.
_big_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.integers(200, 1500), min_size=2, max_size=8)),
        st.tuples(st.just("append"), st.lists(st.integers(200, 1500), min_size=2, max_size=8)),
        _op,
    ),
    min_size=12,
    max_size=40,
)


@settings(max_examples=20, deadline=None)
@given(_big_ops, st.sampled_from(["drop_oldest", "drop_newest"]))
def test_disk_queue_within_budget(ops: list[tuple[str, Any]], when_full: str) -> None:
    """Over a small budget, records are dropped as counted (oldest first or newest), never duplicated."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        run_ops(ops, lambda: DiskQueue(directory, max_bytes=12288, when_full=when_full), directory)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_memory_queue_never_loses_or_duplicates(ops: list[tuple[str, Any]]) -> None:
    """The same property for the in-memory queue (reopen does not apply)."""
    m = run_ops(ops, MemoryQueue, None)
    assert m.consumed == m.appended and not m.dropped


# Records shorter than the disk queue's read-ahead guess (256 bytes a record), so that
# its batches are not shortened by the guess either.
_short_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.integers(0, 150), min_size=1, max_size=12)),
        st.tuples(st.just("peek"), st.integers(1, 25)),
        st.tuples(st.just("commit"), st.none()),
        st.tuples(st.just("reject"), st.none()),
    ),
    max_size=50,
)


@settings(max_examples=40, deadline=None)
@given(_short_ops)
def test_memory_and_disk_queues_agree(ops: list[tuple[str, Any]]) -> None:
    """With one segment and short records, both queues hand out the same batches and report the same state."""
    with tempfile.TemporaryDirectory() as tmp:
        disk = DiskQueue(tmp)
        mem = MemoryQueue()
        peeked = False
        for op, arg in ops:
            if op == "append":
                recs = [line(disk.appended_total + k, pad) for k, pad in enumerate(arg)]
                put(disk, recs)
                put(mem, recs)
            elif op == "peek":
                assert disk.peek(arg) == mem.peek(arg)
                peeked = True
            elif op in ("commit", "reject") and peeked:
                count = mem._peeked[1] if mem._peeked else 0
                getattr(disk, op)(count, *(["refused"] if op == "reject" else []))
                getattr(mem, op)(count, *(["refused"] if op == "reject" else []))
                peeked = False
            dstats, mstats = disk.stats(), mem.stats()
            for key in ("path", "durable", "budget_bytes"):
                del dstats[key], mstats[key]
            assert dstats == mstats
            assert disk.head_time() == mem.head_time()
        disk.close()
