"""Tests for scada.balance.service: the rolling-window balance published as calculated tags."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from scada.balance.service import BalanceService
from scada.registry import Premises
from tags.quality import Quality
from tests.scada.billing.fixtures import building, history, local, meter, registry

GOOD = Quality.GOOD
PREMISES = [Premises("b1", "1", "7700000101", 54.2, 2), Premises("b1", "2", "7700000102", 40.0, 1)]
END = local(2026, 11, 21, 10)  # a whole hour
START = END - 86400.0


class _Registry:
    """What the service needs of a RegistryService."""

    def __init__(self, reg):
        self.reg = reg

    def current(self):
        return self.reg


def _service(rows, clock=None, **kw):
    reg = registry([building("b1", PREMISES, [meter("b1-cold", None), meter("kv1", "1"), meter("kv2", "2"),
                                              meter("b1-heat", None, resource="heat")])])
    published = []
    clock = clock or Clock()
    service = BalanceService(clock, _Registry(reg), history(rows), published.extend, "Europe/Moscow", **kw)
    return service, published, clock


def _figures(published):
    return {s.name.split(".")[1]: s.value for s in published}


def _drive(clock, service, end):
    """Run one window on the test clock (SQLite history never suspends)."""
    from twisted.internet import defer

    d = defer.ensureDeferred(service.run_once(end))
    out = []
    d.addCallback(out.append)
    assert out, "run_once suspended"
    return out[0]


def test_publishes_every_figure_of_each_group_as_calculated() -> None:
    rows = [("b1-cold.volume_m3", START, 100.0, GOOD), ("b1-cold.volume_m3", END, 110.0, GOOD),
            ("kv1.volume_m3", START, 10.0, GOOD), ("kv1.volume_m3", END, 14.0, GOOD),
            ("kv2.volume_m3", START, 20.0, GOOD), ("kv2.volume_m3", END, 25.0, GOOD)]
    service, published, clock = _service(rows)
    # The heat ОДПУ has no apartment heat meters: no group, no tags.
    assert {t.name for t in service.tagdefs()} == {f"balance-b1.cold_water_{f}" for f in
                                                   ("odpu", "ipu_sum", "imbalance", "imbalance_pct",
                                                    "completeness_pct", "substituted")}
    samples = _drive(clock, service, END)
    assert samples == published and {s.quality for s in samples} == {Quality.CALCULATED}
    assert {s.ts for s in samples} == {END}
    assert _figures(samples) == pytest.approx({"cold_water_odpu": 10.0, "cold_water_ipu_sum": 9.0,
                                               "cold_water_imbalance": 1.0, "cold_water_imbalance_pct": 10.0,
                                               "cold_water_completeness_pct": 100.0, "cold_water_substituted": 0.0})


def test_missing_readings_lower_completeness_and_blank_the_figure() -> None:
    rows = [("kv1.volume_m3", START, 10.0, GOOD), ("kv1.volume_m3", END, 14.0, GOOD)]
    service, published, clock = _service(rows)
    figures = _figures(_drive(clock, service, END))
    assert figures["cold_water_completeness_pct"] == 50.0
    assert figures["cold_water_odpu"] is None and figures["cold_water_imbalance_pct"] is None


def test_schedule_and_failures() -> None:
    clock = Clock()
    clock.advance(END + 200.0)  # inside the settle time: the window before is judged
    service, published, clock = _service([], clock, every=3600.0, window=86400.0, settle=300.0)
    assert service.window_end(clock.seconds()) == END - 3600.0
    service.start()
    assert service.runs == 1 and service.health()["last_window_end"].startswith("2026-11-21T06:00")
    clock.advance(100.0 + 300.0)  # END + 300: the window ending at END
    assert service.runs == 2 and service.last_end == END
    service._historian = None  # history gone: counted, reported, the schedule goes on
    clock.advance(3600.0)
    assert service.errors == 1 and service.health()["last_error"]
    service.stop()
    assert not clock.getDelayedCalls()
    with pytest.raises(ValueError, match="every"):
        BalanceService(clock, None, None, None, "UTC", every=0)
