# -*- test-case-name: tests.scada.test_history -*-
"""Build the site's historian from the ``history:`` section, and the backlog tag it feeds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tags.historian import DiskQueue, ForwardingHistorian, SqliteStore
from tags.model import Sample, TagDef
from tags.quality import Quality

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from scada.config import HistoryConfig
    from tags.historian import Store

#: The system tag that shows how many samples wait for the history database.
#: System tags have no device, so their names have no ``.`` and never clash
#: with ``<device>.<point>`` tags.
BACKLOG_TAG = TagDef(
    "historian_backlog",
    unit="samples",
    description="Samples accepted but not yet confirmed by the history database",
)


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def queue_dir(hist: HistoryConfig, base: Path) -> Path:
    """Return where the store-and-forward queue of ``hist`` lives."""
    if hist.queue.path:
        return _resolve(hist.queue.path, base)
    if hist.backend == "sqlite":
        return _resolve(hist.path + ".queue", base)
    return _resolve("var/history-queue", base)


def build_store(hist: HistoryConfig, reactor: IReactorTime, base: Path) -> Store:
    """Return the database ``hist`` names (not opened yet for InfluxDB)."""
    if hist.backend == "sqlite":
        path = _resolve(hist.path, base)
        try:
            return SqliteStore(path)
        except Exception as exc:
            raise ValueError(f"history.path {os.fspath(path)!r}: {exc}") from exc
    from tags.historian.influx import InfluxStore

    return InfluxStore(
        reactor,
        url=hist.url,
        database=hist.database,
        measurement=hist.measurement,
        username=hist.username,
        password=hist.password,
        token=hist.token,
        org=hist.org,
        bucket=hist.bucket,
        retention_policy=hist.retention_policy,
        timeout=hist.timeout,
        create_database=hist.create_database,
    )


def build_historian(hist: HistoryConfig, reactor: IReactorTime, base: Path) -> ForwardingHistorian:
    """Return the store-and-forward historian of the ``history:`` section ``hist``.

    Raises ``ValueError`` naming the path when the queue directory or the
    SQLite file cannot be opened.
    """
    qdir = queue_dir(hist, base)
    try:
        queue = DiskQueue(qdir, max_bytes=hist.queue.max_size, when_full=hist.queue.when_full)
    except Exception as exc:
        raise ValueError(f"history.queue.path {os.fspath(qdir)!r}: {exc}") from exc
    try:
        store = build_store(hist, reactor, base)
    except BaseException:
        queue.close()
        raise
    return ForwardingHistorian(
        store,
        reactor,
        queue,
        flush_interval=hist.flush_interval,
        batch_size=hist.effective_batch_size,
        measurement=hist.measurement,
        backlog_alarm=hist.queue.alarm_backlog,
    )


def backlog_sample(historian: ForwardingHistorian, now: float) -> Sample:
    """Return the current value of `BACKLOG_TAG`."""
    return Sample(BACKLOG_TAG.name, float(historian.backlog), Quality.GOOD, now)
