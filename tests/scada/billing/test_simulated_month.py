"""The demo site with two months of simulated history: the pull is complete and consistent, balances reconcile.

History comes from F's simulator (`channels.sim.history`: the same meter
models and codecs as the live values, building meters = Σ members × (1 +
losses)), daily at local midnight for 65 days up to 1 November 2026, with
the demo's gaps; it goes straight into an in-memory SQLite store.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from channels.sim.history import HistorySimulator, history_times, resolve_gaps
from scada.billing import pull
from scada.billing.readings import PeriodReader
from scada.config import load_config
from scada.registry import Registry
from scada.reports.balance import balance_report
from tests.scada.billing.fixtures import history, run

UNTIL = datetime(2026, 11, 1, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()


@pytest.fixture(scope="module")
def demo():
    """The demo's simulated field, its registry, and 65 days of its simulated history in SQLite."""
    cfg, _ = load_config("config/demo.yaml")
    tz = cfg.site.timezone
    simulator = HistorySimulator(cfg, resolve_gaps(cfg.simulate_history.gaps, UNTIL, tz))
    samples = [s for batch in simulator.batches(history_times(UNTIL, 0, 65 * 86400, tz)) for s in batch]
    store = history((s.name, s.ts, s.value, s.quality) for s in samples)
    return simulator.field, Registry.from_config(cfg), store


def test_pull_pages_cover_every_account_once_and_chain(demo) -> None:
    """Pages of 5: every account's meters once; October starts where September ended; end − start = consumption."""
    _, registry, store = demo
    months = {}
    for period in ("2026-09", "2026-10"):
        reader = PeriodReader(registry, store)
        items, after = [], None
        while True:
            page, after = run(pull.page(reader, period, after=after, limit=5))
            items += page
            if after is None:
                break
        keys = [(r.account, r.meter.id) for r in items]
        assert len(keys) == len(set(keys)) == pull.count(reader, period) and keys == sorted(keys)
        assert {p.account for p in registry.premises()} == {r.account for r in items}
        months[period] = {r.meter.id: r for r in items}
    measured = 0
    for meter_id, october in months["2026-10"].items():
        september = months["2026-09"][meter_id]
        if october.start is not None and september.end is not None:
            assert october.start == september.end, meter_id
        if october.measured:
            measured += 1
            assert october.consumption == pytest.approx(october.end.value - october.start.value, abs=1e-6)
        else:
            assert october.source == 4 and october.substitution is not None and october.substitution.rule
    assert measured >= 30
    # The demo's gap: apartment 2's cold water has no reading after 1 October; an expired verification (kv03 hot).
    assert months["2026-10"]["b1-kv02-cold"].problem == "no-end-reading"
    assert months["2026-10"]["b1-kv03-hot"].problem == "verification-expired"


def _losses(field, tag: str) -> float:
    """Return the losses of the simulated building meter behind ``tag`` (Modbus, M-Bus or a pulse input)."""
    device, _, point = tag.partition(".")
    if device in field.devices:
        return field.devices[device].model.losses
    _, inputs = field.uplink_devices[device]
    return inputs[point][0].losses


def test_balance_shows_the_simulators_losses(demo) -> None:
    """Where every apartment meter was read, ОДПУ − ΣИПУ is the simulator's losses: losses / (1 + losses) of ОДПУ."""
    field, registry, store = demo
    checked = 0
    for building in registry.buildings:
        report = run(balance_report(PeriodReader(registry, store), building, "2026-10", "month"))
        for group in report["groups"]:
            totals = group["totals"]
            if not group["ipu_meters"] or totals["completeness"] != 1.0:
                continue
            losses = _losses(field, registry.meter(group["odpu"]).tag)
            assert totals["substituted"] == 0.0
            assert totals["imbalance"] == pytest.approx(totals["ipu_sum"] * losses, rel=2e-3, abs=0.01), group
            assert totals["imbalance_pct"] == pytest.approx(100 * losses / (1 + losses), abs=0.05), group
            checked += 1
    assert checked >= 5
