"""Primary scan and secondary wildcard search against simulated meters on task.Clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from channels.mbus import link
from channels.mbus.scan import Scanner, ScanAborted
from tests.channels.mbus.wire import NOW, Wire, heat_meter, water_meter


def run(clock: Clock, deferred, limit: float = NOW + 100_000.0):
    """Advance the clock until ``deferred`` fires; return its result (or raise its failure)."""
    results = []
    deferred.addBoth(results.append)
    while not results and clock.seconds() < limit:
        calls = clock.getDelayedCalls()
        assert calls, "nothing scheduled and the scan has not finished"
        clock.advance(max(0.0, min(c.getTime() for c in calls) - clock.seconds()))
    assert results, "the scan did not finish"
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def scanner_on(meters, **kw):
    clock = Clock()
    clock.advance(NOW)
    wire = Wire(clock, meters)
    progress = []
    scanner = Scanner(clock, baud=2400, allowance=0.05, progress=lambda *a: progress.append(a), **kw)
    wire.attach(scanner)
    return clock, wire, scanner, progress


def test_primary_scan_finds_every_meter_at_its_address():
    meters = [heat_meter("h", primary=1, ident=11111111), water_meter("w1", primary=7, ident=22222222),
              water_meter("w2", primary=250, ident=33333333), heat_meter("sec-only", primary=None, ident=44444444)]
    clock, wire, scanner, progress = scanner_on(meters)
    found = run(clock, scanner.scan_primary())
    assert [(m.primary, m.id, m.manufacturer, m.medium) for m in found] == [
        (1, "11111111", "KRT", "heat_outlet"), (7, "22222222", "KRT", "cold_water"),
        (250, "33333333", "KRT", "cold_water")]
    assert found[0].secondary == "11111111" + "2E54" + "01" + "04"
    assert scanner.collisions == []
    assert progress[-1][:2] == (251, 251)
    # Silent addresses are asked twice (one retry); a found meter costs SND_NKE + REQ_UD2.
    assert scanner.probes == 2 * 248 + 3 * 2


def test_primary_scan_reports_two_meters_at_one_address():
    clock, wire, scanner, _ = scanner_on([heat_meter("a", primary=5, ident=1), water_meter("b", primary=5, ident=2)])
    found = run(clock, scanner.scan_primary(range(0, 10)))
    assert found == []
    assert len(scanner.collisions) == 1 and "primary address 5" in scanner.collisions[0].where


IDS = [12345678, 12345679, 12340000, 99999999, 10000000, 55555555]


def test_secondary_search_finds_every_meter():
    meters = [water_meter(f"m{i}", primary=0, ident=ident) for i, ident in enumerate(IDS)]
    clock, wire, scanner, _ = scanner_on(meters)
    found = run(clock, scanner.scan_secondary())
    assert sorted(int(m.id) for m in found) == sorted(IDS)
    assert all(m.primary is None for m in found)
    assert scanner.collisions == []
    # Far fewer probes than trying every id: the search only descends under collisions.
    assert scanner.probes < 200


def test_secondary_search_with_one_meter_needs_no_descent():
    clock, wire, scanner, _ = scanner_on([heat_meter(ident=31415926)])
    found = run(clock, scanner.scan_secondary())
    assert [m.id for m in found] == ["31415926"]
    assert scanner.probes == 2  # the all-wildcard select and the read


def test_secondary_search_on_an_empty_bus():
    clock, wire, scanner, _ = scanner_on([])
    assert run(clock, scanner.scan_secondary()) == []
    assert scanner.probes == 2  # one select, retried once


def test_identical_ids_are_reported_not_looped_over():
    meters = [water_meter("a", ident=12345678), heat_meter("b", ident=12345678)]
    clock, wire, scanner, _ = scanner_on(meters)
    assert run(clock, scanner.scan_secondary()) == []
    assert [c.where for c in scanner.collisions] == ["secondary 12345678: several meters share this id"]


def test_a_silent_probe_costs_the_response_window_not_a_whole_frame():
    clock, wire, scanner, _ = scanner_on([], retries=0)
    run(clock, scanner.probe(link.snd_nke(3)))
    expected = link.frame_time(5, 2400) + link.response_window(2400) + 0.05
    assert clock.seconds() - NOW == pytest.approx(expected)


def test_link_down_aborts_the_scan():
    clock, wire, scanner, _ = scanner_on([])
    deferred = scanner.scan_primary()
    clock.advance(0.01)
    scanner.link_down("unplugged")
    with pytest.raises(ScanAborted, match="unplugged"):
        run(clock, deferred)
