"""History of tag values: the store-and-forward historian, its stores and the writer."""

from __future__ import annotations

from tags.historian.base import AggRow, Historian, Store, StoreRejected, StoreUnavailable
from tags.historian.forward import ForwardingHistorian
from tags.historian.queue import DiskQueue, MemoryQueue, QueueFull
from tags.historian.sqlite import SqliteHistorian, SqliteStore

__all__ = [
    "AggRow",
    "DiskQueue",
    "ForwardingHistorian",
    "Historian",
    "MemoryQueue",
    "QueueFull",
    "SqliteHistorian",
    "SqliteStore",
    "Store",
    "StoreRejected",
    "StoreUnavailable",
]
