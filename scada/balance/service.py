# -*- test-case-name: tests.scada.balance.test_service -*-
"""The balance service: every building meter (ОДПУ) against its apartment meters (ИПУ), all the time.

Reports compute a balance when someone asks; dispatchers need to see an
imbalance as it develops, and the alarm engine needs a figure to judge.
Every ``every`` seconds (``balance.every``, default 1 h) this service
takes the ``window`` (default 24 h) that ended at the last whole ``every``
at least ``settle`` ago, computes every balance group of the registry at
once (:func:`scada.reports.balance.interval_balance`: boundary readings
from the historian, the numba kernel) and publishes the figures as tags of
quality ``calculated``, stamped with the window's end:

``balance-<building>.<resource>_<figure>`` for the figures of
:data:`scada.config.alarms.BALANCE_FIGURES` (``odpu``, ``ipu_sum``,
``imbalance``, ``imbalance_pct``, ``completeness_pct``, ``substituted``).

A figure that cannot be computed (the building meter has no reading) is
published without a value, so nobody mistakes the previous window's figure
for this one's.  The tags go to history like any other, which makes the
balance a trend in the HMI and Grafana.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from twisted.internet import defer

from scada.config.alarms import BALANCE_FIGURES, balance_device, balance_tag
from tags.model import Sample, TagDef
from tags.quality import Quality

log = logging.getLogger(__name__)

_PERCENT = ("imbalance_pct", "completeness_pct")
_DESCRIPTIONS = {
    "odpu": "объём по ОДПУ за окно",
    "ipu_sum": "сумма ИПУ за окно",
    "imbalance": "небаланс (ОДПУ − ΣИПУ)",
    "imbalance_pct": "небаланс, % от ОДПУ",
    "completeness_pct": "полнота данных ИПУ, %",
    "substituted": "объём расчётных значений ИПУ",
}


class BalanceService:
    """Compute every balance group over a rolling window on a schedule and publish the figures as tags.

    ``registry`` is a :class:`scada.registry.RegistryService` (its
    ``current()`` is read at every run, so lifecycle events count at once);
    ``historian`` answers ``query_at_many``; ``publish`` takes a list of
    samples (the tag table's ``update_many``).  Times are injected through
    ``reactor``.
    """

    def __init__(self, reactor: Any, registry: Any, historian: Any, publish: Any, tz: Any, *,
                 every: float = 3600.0, window: float = 86400.0, settle: float = 300.0) -> None:
        """Prepare the service; nothing runs before :meth:`start`."""
        if not every > 0 or not window > 0 or settle < 0:
            raise ValueError(f"balance: every ({every!r}) and window ({window!r}) must be positive, "
                             f"settle ({settle!r}) not negative")
        self._reactor = reactor
        self._registry = registry
        self._historian = historian
        self._publish = publish
        self._tz = tz
        self.every = float(every)
        self.window = float(window)
        self.settle = float(settle)
        self._call: Any = None
        self._running: defer.Deferred | None = None
        self._stopped = False
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_end: float | None = None
        self.last_took: float | None = None

    def tagdefs(self) -> list[TagDef]:
        """Return the definitions of every figure tag of the registry's balance groups."""
        out = []
        for group in self._registry.current().balance_groups():
            for figure in BALANCE_FIGURES:
                unit = "%" if figure in _PERCENT else group.odpu.unit
                out.append(TagDef(balance_tag(group.building, group.resource, figure), unit=unit,
                                  device=balance_device(group.building),
                                  description=f"{group.building} {group.resource}: {_DESCRIPTIONS[figure]}"))
        return out

    # -- schedule ------------------------------------------------------------------------

    def window_end(self, now: float) -> float:
        """Return the end of the window judged at ``now``: the last whole ``every`` at least ``settle`` ago."""
        return math.floor((now - self.settle) / self.every) * self.every

    def start(self) -> None:
        """Judge the latest window now, then at every ``every`` (plus ``settle``)."""
        self._stopped = False
        self._run()

    def stop(self) -> None:
        """Cancel the next run (a run in progress finishes and publishes nothing)."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _arm(self) -> None:
        now = self._reactor.seconds()
        due = self.window_end(now) + self.every + self.settle
        self._call = self._reactor.callLater(max(0.0, due - now), self._run)

    def _run(self) -> None:
        self._call = None
        if self._stopped:
            return
        if self._running is None:
            end = self.window_end(self._reactor.seconds())
            self._running = defer.ensureDeferred(self.run_once(end))
            self._running.addBoth(self._done)
        self._arm()

    def _done(self, _: Any) -> None:
        self._running = None  # run_once catches its own errors

    # -- one run -------------------------------------------------------------------------

    async def run_once(self, end: float) -> list[Sample]:
        """Compute every group over ``[end - window, end]``, publish and return the samples.

        A failure (history unreachable, a broken registry) is counted, logged
        once per kind and reported in :meth:`health`; it never escapes.
        """
        from scada.billing.readings import PeriodReader
        from scada.reports.balance import interval_balance

        began = self._reactor.seconds()
        try:
            registry = self._registry.current()
            groups = registry.balance_groups()
            samples: list[Sample] = []
            if groups:
                reader = PeriodReader(registry, self._historian, self._tz)
                result = await interval_balance(reader, groups, [end - self.window, end])
                for g, group in enumerate(groups):
                    for figure in BALANCE_FIGURES:
                        if figure == "completeness_pct":  # the kernel's share, 0..1
                            value = 100.0 * float(result.completeness[g, 0])
                        else:
                            value = float(getattr(result, figure)[g, 0])
                        shown = round(value, 6) if math.isfinite(value) else None
                        samples.append(Sample(balance_tag(group.building, group.resource, figure), shown,
                                              Quality.CALCULATED, end))
        except Exception as exc:  # noqa: BLE001 - the engine goes on; health says what failed
            self.errors += 1
            if str(exc) != self.last_error:
                log.error("balance: cannot compute the window ending %s: %s", end, exc,
                          exc_info=log.isEnabledFor(logging.DEBUG))
            self.last_error = str(exc)
            return []
        if self._stopped:
            return samples
        if samples:
            self._publish(samples)
        self.runs += 1
        self.last_error = None
        self.last_end = end
        self.last_took = self._reactor.seconds() - began
        return samples

    def health(self) -> dict[str, Any]:
        """Return the service's state for ``/health`` → ``services``."""
        from tags.timefmt import iso_utc

        return {"every_s": self.every, "window_s": self.window, "runs": self.runs, "errors": self.errors,
                "last_error": self.last_error, "last_window_end": iso_utc(self.last_end) if self.last_end else None,
                "groups": len(self._registry.current().balance_groups())}
