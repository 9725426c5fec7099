# -*- test-case-name: tests.tags.test_table -*-
"""Current value of every tag, and subscriptions to what changes.

Every poll of every device passes through `TagTable.update_many`, so the
per-sample path does one dict lookup, three attribute stores and a loop over
a precomputed tuple of matching subscribers; everything that depends only on
names (prefix matching, change filters) is worked out when a tag is defined
or a subscription is added or removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.timefmt import iso_utc

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class TagState:
    """The latest known value of one tag; ``ts`` stays ``None`` until the first sample."""

    definition: TagDef
    value: float | None
    quality: Quality
    ts: float | None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object the API shows for this tag (ISO 8601 UTC time)."""
        return {
            "name": self.definition.name,
            "value": self.value,
            "unit": self.definition.unit,
            "quality": self.quality.value,
            "ts": None if self.ts is None else iso_utc(self.ts),
        }


class _Subscription:
    """One subscriber, and the error types already logged for it."""

    __slots__ = ("callback", "prefix", "changes_only", "logged")

    def __init__(self, callback: Callable[[Sample], None], prefix: str, changes_only: bool) -> None:
        self.callback = callback
        self.prefix = prefix
        self.changes_only = changes_only
        self.logged: set[type[BaseException]] = set()

    def deliver(self, sample: Sample) -> None:
        """Call the subscriber; an error is logged, once per type, and goes no further."""
        try:
            self.callback(sample)
        except Exception as exc:
            # A broken consumer (alarm rule, WebSocket) must not stop the
            # others nor the poll that produced the sample; logging every
            # occurrence would flood the log at poll rate.
            if type(exc) not in self.logged:
                self.logged.add(type(exc))
                _log.exception(
                    "tag subscriber %r failed on %s (further %s errors from it are not logged)",
                    self.callback,
                    sample.name,
                    type(exc).__name__,
                )


class _Entry:
    """A tag's state with the subscribers to notify on a change and on a repeat."""

    __slots__ = ("state", "on_change", "on_repeat")

    def __init__(self, state: TagState) -> None:
        self.state = state
        self.on_change: tuple[_Subscription, ...] = ()
        self.on_repeat: tuple[_Subscription, ...] = ()


class TagTable:
    """Current values of all defined tags, with change subscriptions.

    Subscribers are called synchronously, in subscription order, from
    `update` / `update_many`, after the state is stored.
    """

    def __init__(self) -> None:
        """Create an empty table."""
        self._entries: dict[str, _Entry] = {}
        self._subscriptions: list[_Subscription] = []
        self._batch_ends: list[Callable[[], None]] = []
        self._in_batch = False

    def define(self, tagdef: TagDef) -> None:
        """Add a tag; it starts with no value and quality ``NOT_YET_READ``.

        Raises ``ValueError`` naming the tag if it is already defined.
        """
        if tagdef.name in self._entries:
            raise ValueError(f"tag {tagdef.name!r} is already defined")
        entry = _Entry(TagState(tagdef, None, Quality.NOT_YET_READ, None))
        self._route(tagdef.name, entry)
        self._entries[tagdef.name] = entry

    def remove(self, name: str) -> bool:
        """Forget a tag (its channel was removed); return whether it was defined.

        Subscriptions stay as they are: they are kept by prefix, not by
        tag, so a tag defined again later under the same name reaches the
        same subscribers.  A sample for a removed tag raises ``KeyError``
        like any unknown tag.
        """
        return self._entries.pop(name, None) is not None

    def remove_device(self, device: str) -> list[str]:
        """Forget every tag of ``device`` (by definition, or named ``<device>.<point>``); return their names."""
        prefix = f"{device}."
        return self._remove_where(lambda name, entry: entry.state.definition.device == device
                                  or name.startswith(prefix))

    def remove_prefix(self, prefix: str) -> list[str]:
        """Forget every tag whose name starts with ``prefix`` (not "": that would empty the table); return them."""
        if not prefix:
            raise ValueError("remove_prefix needs a non-empty prefix")
        return self._remove_where(lambda name, _entry: name.startswith(prefix))

    def _remove_where(self, chosen: Callable[[str, _Entry], bool]) -> list[str]:
        """Forget every tag for which ``chosen(name, entry)`` holds; return their names, sorted."""
        names = [name for name, entry in self._entries.items() if chosen(name, entry)]
        for name in names:
            del self._entries[name]
        return sorted(names)

    def update(self, sample: Sample) -> bool:
        """Store a sample and notify subscribers; return whether value or quality changed.

        Raises ``KeyError`` naming the tag if it is not defined.
        """
        try:
            entry = self._entries[sample.name]
        except KeyError:
            raise KeyError(f"unknown tag {sample.name!r}") from None
        state = entry.state
        value = sample.value
        old = state.value
        # NaN != NaN, so a meter stuck on NaN would count as changing on
        # every poll; two NaNs are the same value here.
        changed = state.quality is not sample.quality or (
            value != old and (value == value or old == old)
        )
        state.value = value
        state.quality = sample.quality
        state.ts = sample.ts
        for subscription in entry.on_change if changed else entry.on_repeat:
            subscription.deliver(sample)
        if not self._in_batch and self._batch_ends:
            self._end_batch()
        return changed

    def update_many(self, samples: Iterable[Sample]) -> None:
        """Store samples in order, as `update` does for each, then tell batch listeners once."""
        update = self.update
        self._in_batch = True
        try:
            for sample in samples:
                update(sample)
        finally:
            self._in_batch = False
            if self._batch_ends:
                self._end_batch()

    def on_batch_end(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after every `update_many` (and lone `update`); return the undo function.

        Subscribers that gather samples (the history writer) act on a
        whole poll at once here instead of once per sample.
        """
        self._batch_ends.append(callback)

        def remove() -> None:
            if callback in self._batch_ends:
                self._batch_ends.remove(callback)

        return remove

    def _end_batch(self) -> None:
        for callback in tuple(self._batch_ends):
            try:
                callback()
            except Exception:  # noqa: BLE001 - one listener must not break polling
                _log.exception("batch listener %r failed", callback)

    def get(self, name: str) -> TagState | None:
        """Return the state of a tag, or ``None`` if it is not defined.

        The object is live: later updates change it in place.
        """
        entry = self._entries.get(name)
        return None if entry is None else entry.state

    def states(self, prefix: str = "") -> list[TagState]:
        """Return the states of the tags whose name starts with ``prefix``, sorted by name."""
        return [self._entries[name].state for name in self.names() if name.startswith(prefix)]

    def names(self) -> list[str]:
        """Return all tag names, sorted."""
        return sorted(self._entries)

    def subscribe(
        self,
        callback: Callable[[Sample], None],
        prefix: str = "",
        changes_only: bool = True,
    ) -> Callable[[], None]:
        """Call ``callback`` with samples of tags whose name starts with ``prefix``.

        With ``changes_only`` only samples whose value or quality differs from
        the tag's previous state are delivered; otherwise every stored sample
        is.  Returns a function that ends the subscription (calling it again
        does nothing).
        """
        subscription = _Subscription(callback, prefix, changes_only)
        self._subscriptions.append(subscription)
        self._reroute(prefix)

        def unsubscribe() -> None:
            """End this subscription."""
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
                self._reroute(prefix)

        return unsubscribe

    def __len__(self) -> int:
        """Return the number of defined tags."""
        return len(self._entries)

    def _reroute(self, prefix: str) -> None:
        """Recompute the subscriber tuples of the tags a subscription with ``prefix`` can reach."""
        for name, entry in self._entries.items():
            if name.startswith(prefix):
                self._route(name, entry)

    def _route(self, name: str, entry: _Entry) -> None:
        """Work out which subscribers a tag's samples go to, keeping subscription order."""
        matching = tuple(s for s in self._subscriptions if name.startswith(s.prefix))
        entry.on_change = matching
        entry.on_repeat = tuple(s for s in matching if not s.changes_only)
