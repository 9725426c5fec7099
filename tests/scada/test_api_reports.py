"""GET /api/v1/reports/{ipu,odpu,balance}: figures that reconcile, CSV and XLSX in two languages, 400/403/404."""

from __future__ import annotations

import io

import pytest

from tests.scada.reports_site import LOSSES, RATES, shared_site

URL = "/api/v1/reports"
OCT = "building=b1&period=2026-10"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The session's report site (shared with the billing tests)."""
    return shared_site(tmp_path_factory)


def test_ipu_report(site) -> None:
    """Per premises (2 before 10) and resource, the billing pull's figures; totals per resource."""
    body = site.get(f"{URL}/ipu?{OCT}", "viewer").json
    assert (body["kind"], body["building"], body["period"], body["complete"]) == ("ipu", "b1", "2026-10", True)
    assert [(i["premises"], i["meter"]) for i in body["items"]] == [
        ("1", "b1-kv01-cold"), ("1", "b1-kv01-el"), ("2", "b1-kv02-cold"), ("3", "b1-kv03-cold")]
    pulled = {i["meter"]: i for i in site.get("/api/v1/billing/readings?period=2026-10").json["items"]}
    for item in body["items"]:
        assert item == pulled[item["meter"]]
    cold = next(t for t in body["totals"] if t["resource"] == "cold_water")
    assert cold["meters"] == 3 and cold["measured"] == 3 and cold["consumption"] == pytest.approx(7.44 + 9.12 + 3.72)


def test_odpu_report(site) -> None:
    """Heat in kWh and Gcal, mean temperatures, abnormal hours (3 silent, 5 with an error code)."""
    items = {i["meter"]: i for i in site.get(f"{URL}/odpu?{OCT}", "operator").json["items"]}
    heat = items["b1-heat"]
    assert heat["consumption"] == pytest.approx(7440.0) and heat["consumption_kwh"] == pytest.approx(7440.0)
    assert heat["consumption_gcal"] == pytest.approx(7440.0 * 0.000859845)
    assert (heat["t_supply"], heat["t_return"]) == (70.0, 50.0)
    assert (heat["hours"], heat["hours_no_data"], heat["hours_error"], heat["hours_abnormal"]) == (744, 3, 5, 8)
    cold = items["b1-cold"]
    assert cold["consumption_gcal"] is None and cold["t_supply"] is None and cold["hours_abnormal"] == 0
    assert "account" not in cold and cold["source"] == "measured"


def test_balance_reconciles_with_the_losses(site) -> None:
    """Days with every apartment read: imbalance = the simulated 5 % losses of the building meter's volume."""
    body = site.get(f"{URL}/balance?{OCT}&interval=day", "billing").json
    cold = next(g for g in body["groups"] if g["resource"] == "cold_water")
    assert (cold["odpu"], cold["unit"], cold["ipu_meters"], len(cold["items"])) == ("b1-cold", "m3", 3, 31)
    day = 24 * sum(RATES.values())
    for item in cold["items"][:18]:  # apartment 2's meter is silent from the 20th
        assert item["odpu"] == pytest.approx(day * (1 + LOSSES), rel=1e-6)
        assert item["ipu_sum"] == pytest.approx(day, rel=1e-6)
        assert item["imbalance_pct"] == pytest.approx(100 * LOSSES / (1 + LOSSES), abs=1e-3)
        assert item["completeness"] == 1.0 and item["substituted"] == 0.0
    late = cold["items"][25]
    assert late["completeness"] == pytest.approx(2 / 3, abs=1e-4) and late["imbalance_pct"] > 30
    # Totals are the month's balance: the billing figures.
    month = site.get(f"{URL}/balance?{OCT}&interval=month", "billing").json
    month_cold = next(g for g in month["groups"] if g["resource"] == "cold_water")
    assert cold["totals"] == month_cold["totals"]
    assert {k: v for k, v in month_cold["items"][0].items() if k not in ("start", "end")} == month_cold["totals"]
    assert month_cold["totals"]["ipu_sum"] == pytest.approx(7.44 + 9.12 + 3.72)
    assert len(month_cold["items"]) == 1 and month_cold["items"][0]["start"] == "2026-09-30T21:00:00.000Z"


def test_balance_per_hour(site) -> None:
    """744 hours in October; each full hour shows the losses."""
    body = site.get(f"{URL}/balance?{OCT}&interval=hour", "engineer").json
    cold = next(g for g in body["groups"] if g["resource"] == "cold_water")
    assert len(cold["items"]) == 744
    hour = sum(RATES.values()) - RATES["b1-kv03-cold"]  # apartment 3 is read by hand once a day
    first = cold["items"][1]
    assert first["completeness"] == pytest.approx(2 / 3, abs=1e-4)
    assert first["ipu_sum"] == pytest.approx(hour, rel=1e-6)


def test_csv_and_xlsx(site) -> None:
    """CSV with BOM, ';', decimal comma in Russian; XLSX with Russian or English headers."""
    from openpyxl import load_workbook

    reply = site.get(f"{URL}/ipu?{OCT}&format=csv", "viewer")
    assert reply.status == 200 and reply.body.startswith(b"\xef\xbb\xbf")
    lines = reply.body.decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("Помещение;Лицевой счёт;Прибор учёта") and ";7,44;" in lines[1]
    assert 'filename="ipu-b1-2026-10.csv"' in reply.headers["content-disposition"]
    for kind, title, header in (("ipu", "ИПУ", "Помещение"), ("odpu", "ОДПУ", "Прибор учёта"),
                                ("balance", "Баланс", "Ресурс")):
        book = load_workbook(io.BytesIO(site.get(f"{URL}/{kind}?{OCT}&format=xlsx", "viewer").body))
        sheet = book[title]
        assert next(sheet.iter_rows(values_only=True))[0] == header
    book = load_workbook(io.BytesIO(site.get(f"{URL}/odpu?{OCT}&format=xlsx&lang=en", "viewer").body))
    rows = list(book["Building meters"].iter_rows(values_only=True))
    assert rows[0][:3] == ("Meter", "Serial number", "Resource") and rows[1][2] == "Heat"
    assert rows[0][-1] == "Hours of abnormal operation" and rows[1][-1] == 8
    en = site.get(f"{URL}/balance?{OCT}&format=csv&lang=en&interval=month", "viewer").body.decode("utf-8-sig")
    assert en.startswith("Resource;Unit;Interval start") and "Cold water;m3;2026-09-30T21:00:00.000Z" in en


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/nothing?" + OCT, 404, "'nothing'"),
    ("/ipu?building=b9&period=2026-10", 404, "'b9'"),
    ("/ipu?period=2026-10", 400, "building is required"),
    ("/ipu?building=b1", 400, "period is required"),
    ("/ipu?building=b1&period=2026-1", 400, "'2026-1'"),
    ("/odpu?building=b1&period=2030-01", 400, "has not begun"),
    ("/balance?" + OCT + "&interval=week", 400, "interval='week'"),
    ("/ipu?" + OCT + "&interval=day", 400, "'interval'"),
    ("/ipu?" + OCT + "&format=pdf", 400, "format='pdf'"),
])
def test_bad_requests(site, path, status, text) -> None:
    """Unknown kind or building: 404; a bad or missing parameter: 400; each names the value."""
    reply = site.get(URL + path, "viewer")
    assert reply.status == status and text in reply.json["error"], reply.json


def test_roles(site) -> None:
    """Every role that reads metering data may read reports; the integration role may not."""
    for role in ("viewer", "operator", "crew", "engineer", "billing", "admin"):
        assert site.get(f"{URL}/ipu?{OCT}", role).status == 200
    assert site.get(f"{URL}/ipu?{OCT}", "integration").status == 403
