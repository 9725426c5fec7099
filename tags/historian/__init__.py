"""History of tag values: the backend interface, its implementations and the writer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tags.historian.base import AggRow, Historian
from tags.historian.sqlite import SqliteHistorian

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

_BACKENDS: dict[str, type[Historian]] = {"sqlite": SqliteHistorian}


def make_historian(backend: str, reactor: IReactorTime, **kwargs: Any) -> Historian:
    """Build the historian named by ``backend`` (``"sqlite"``) with ``kwargs``.

    Raises ``ValueError`` naming the backend if it is unknown.
    """
    try:
        cls = _BACKENDS[backend]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_BACKENDS))
        raise ValueError(f"unknown historian backend {backend!r} (known: {known})") from None
    return cls(reactor=reactor, **kwargs)


__all__ = ["AggRow", "Historian", "SqliteHistorian", "make_historian"]
