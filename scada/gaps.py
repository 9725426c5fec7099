# -*- test-case-name: tests.scada.test_gaps -*-
"""Where a device's archives have no data in history: the slots of each archive without a usable sample.

A *slot* of an archive is one interval starting at a boundary ``B``
(``[B, B + interval)``): whole hours, days from local midnight, months
from 00:00 on the 1st, in the site's standard time
(:mod:`channels.archive`).  The meter's record closing at ``B`` is stamped
``B``: it is the reading at the slot's start, so a slot is covered when
any of the archive's tags has a sample of usable quality (good, manual,
calculated, backfilled) at a time inside it, live or back-filled.

Slots whose start lies in ``[start, end)`` and not after ``now`` are
counted (a slot that has not begun cannot have data).  Coverage is read
through the :class:`~tags.historian.Historian` interface only, so it works
on every backend: ``query_agg`` buckets with a count, of the largest size
that divides both the interval and the slots' offset from the epoch
(an hour for hourly slots; three hours for Moscow days, which begin at
21:00 UTC), each bucket falling inside one slot.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Sequence

from channels.archive import DAY, MONTH, ArchiveSpec, boundaries, interval_seconds, interval_text, step_boundary
from tags.timefmt import iso_utc

#: Most slots one request may ask for, over all of a device's archives.
MAX_SLOTS = 10_000
#: Most history buckets one request may read per tag.
MAX_BUCKETS = 200_000


def slot_starts(spec: ArchiveSpec, start: float, end: float, now: float, offset: float) -> list[float]:
    """Return the starts of the slots counted for ``[start, end)``, oldest first."""
    return boundaries(start, min(end, now + 1e-6), spec.interval, offset)


def bucket_size(interval, offset: float) -> float:
    """Return the history bucket that divides both the slots and their offset from the epoch."""
    size = DAY if interval == MONTH else float(interval)
    whole = int(round(size))
    if whole != size or whole <= 0:
        return size
    shift = int(round(offset)) % whole
    return float(math.gcd(whole, shift) if shift else whole)


def count_work(specs: Sequence[ArchiveSpec], start: float, end: float, now: float,
               offset: float) -> tuple[int, int]:
    """Return (slots, history buckets per tag) a request would need, without reading history.

    A span far beyond the limits is estimated rather than enumerated, so
    that a request for centuries of hours cannot hold the engine's loop.
    """
    slots = buckets = 0
    span = max(0.0, min(end, now) - start)
    for spec in specs:
        shortest = 28 * DAY if spec.interval == MONTH else float(spec.interval)
        if span / shortest > MAX_SLOTS + 2 or span / bucket_size(spec.interval, offset) > MAX_BUCKETS + 2:
            slots += int(span / shortest)
            buckets = max(buckets, int(span / bucket_size(spec.interval, offset)))
            continue
        starts = slot_starts(spec, start, end, now, offset)
        slots += len(starts)
        if starts:
            stop = step_boundary(starts[-1], spec.interval, offset, 1)
            buckets = max(buckets, round((stop - starts[0]) / bucket_size(spec.interval, offset)))
    return slots, buckets


async def archive_gaps(historian, spec: ArchiveSpec, start: float, end: float, now: float,
                       offset: float) -> dict:
    """Return one archive's slots, how many have no usable sample, and those merged into gaps."""
    starts = slot_starts(spec, start, end, now, offset)
    covered = [False] * len(starts)
    if starts:
        edges = starts + [step_boundary(starts[-1], spec.interval, offset, 1)]
        every = bucket_size(spec.interval, offset)
        for tag in spec.tags:
            for row in await historian.query_agg(tag, edges[0], edges[-1], every):
                if row.count > 0:
                    slot = bisect_right(edges, row.ts) - 1
                    if 0 <= slot < len(starts):
                        covered[slot] = True
            if all(covered):
                break
    gaps = []
    run_start = None
    for i, is_covered in enumerate(covered + [True]):
        if not is_covered and run_start is None:
            run_start = i
        elif is_covered and run_start is not None:
            stop = step_boundary(starts[i - 1], spec.interval, offset, 1)
            gaps.append({"from": iso_utc(starts[run_start]), "to": iso_utc(stop), "missing": i - run_start})
            run_start = None
    return {"name": spec.name, "interval": interval_text(spec.interval),
            "interval_s": interval_seconds(spec.interval), "tags": list(spec.tags),
            "expected": len(starts), "missing": covered.count(False), "gaps": gaps}


async def device_gaps(historian, specs: Sequence[ArchiveSpec], start: float, end: float, now: float,
                      offset: float) -> list[dict]:
    """Return :func:`archive_gaps` for each of a device's archives."""
    return [await archive_gaps(historian, spec, start, end, now, offset) for spec in specs]
