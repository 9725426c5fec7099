"""GET /api/v1/billing/readings: pages, cursors, CSV for 1C, XLSX, the ГИС ЖКХ layout, 400/403/404."""

from __future__ import annotations

import io

import pytest

from scada.billing import pull
from tests.scada.reports_site import FIAS, shared_site

URL = "/api/v1/billing/readings"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The session's report site (building one takes a fraction of a second: shared with the report tests)."""
    return shared_site(tmp_path_factory)


def _sheets(reply) -> dict[str, list[tuple]]:
    from openpyxl import load_workbook

    assert reply.status == 200, reply.text
    book = load_workbook(io.BytesIO(reply.body))
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book}


def test_one_page(site) -> None:
    """Every account's meters, ordered by (account, meter), measured and manual sources; period bounds in UTC."""
    body = site.get(f"{URL}?period=2026-10").json
    assert (body["period"], body["from"], body["to"], body["complete"]) == (
        "2026-10", "2026-09-30T21:00:00.000Z", "2026-10-31T21:00:00.000Z", True)
    keys = [(i["account"], i["meter"]) for i in body["items"]]
    assert keys == [("7700000101", "b1-kv01-cold"), ("7700000101", "b1-kv01-el"), ("7700000102", "b1-kv02-cold"),
                    ("7700000103", "b1-kv03-cold"), ("7700000201", "b2-kv01-cold")]
    first = body["items"][0]
    assert {k: first[k] for k in ("premises", "building", "serial", "resource", "unit", "source")} == {
        "premises": "1", "building": "b1", "serial": "12345678", "resource": "cold_water", "unit": "m3",
        "source": "measured"}
    assert first["consumption"] == pytest.approx(first["end"] - first["start"]) == pytest.approx(7.44)
    assert body["items"][3]["source"] == "manual" and body["next_cursor"] is None


def test_current_period_and_substitution(site) -> None:
    """November is under way (complete false); apartment 2's silent meter is billed by ПП 354, with the rule."""
    body = site.get(f"{URL}?period=2026-11&lang=en").json
    assert body["complete"] is False
    kv2 = next(i for i in body["items"] if i["meter"] == "b1-kv02-cold")
    assert kv2["source"] == "calculated" and kv2["problem"] == "no-end-reading" and kv2["end"] is None
    assert kv2["rule"] == "pp354-59-insufficient-history-norm" and kv2["consumption"] == pytest.approx(4.745)
    assert "norm" in kv2["note"]


def test_pages_and_cursor(site) -> None:
    """limit=2: three pages, each item once; the cursor is opaque base64url and bound to the period."""
    seen, cursor = [], None
    for _ in range(5):
        reply = site.get(f"{URL}?period=2026-10&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert reply.status == 200, reply.text
        seen += [(i["account"], i["meter"]) for i in reply.json["items"]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen)) and seen == sorted(seen)
    other = pull.encode_cursor("2026-09", ("7700000101", "b1-kv01-cold"))
    reply = site.get(f"{URL}?period=2026-10&cursor={other}")
    assert reply.status == 400 and "belongs to period 2026-09" in reply.json["error"]
    reply = site.get(f"{URL}?period=2026-10&building=b2")
    assert [i["account"] for i in reply.json["items"]] == ["7700000201"]


@pytest.mark.parametrize(("query", "status", "text"), [
    ("", 400, "period is required"),
    ("?period=2026-13", 400, "'2026-13'"),
    ("?period=oct", 400, "'oct'"),
    ("?period=2027-01", 400, "has not begun"),
    ("?period=1900-05", 400, "1899"),
    ("?period=2026-10&limit=0", 400, "limit='0'"),
    ("?period=2026-10&limit=10001", 400, "limit='10001'"),
    ("?period=2026-10&cursor=nonsense", 400, "cursor 'nonsense'"),
    ("?period=2026-10&format=pdf", 400, "format='pdf'"),
    ("?period=2026-10&format=csv&limit=5", 400, "no cursor or limit"),
    ("?period=2026-10&decimal=dot", 400, "decimal='dot'"),
    ("?period=2026-10&colour=red", 400, "'colour'"),
    ("?period=2026-10&building=b9", 404, "'b9'"),
])
def test_bad_requests_name_the_value(site, query, status, text) -> None:
    """Every bad parameter is a 4xx JSON error naming it."""
    reply = site.get(URL + query)
    assert reply.status == status and text in reply.json["error"], reply.json


def test_roles(site) -> None:
    """billing and admin only: metering roles that are not billing get a 403."""
    assert site.get(f"{URL}?period=2026-10", "admin").status == 200
    for role in ("viewer", "operator", "engineer", "crew"):
        assert site.get(f"{URL}?period=2026-10", role).status == 403


def test_csv_for_1c(site) -> None:
    """UTF-8 with BOM, ';', CRLF, Russian headers and decimal comma; formula-looking text quoted; en: point, ISO."""
    reply = site.get(f"{URL}?period=2026-10&format=csv")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    assert 'filename="billing-2026-10.csv"' in reply.headers["content-disposition"]
    assert reply.body.startswith(b"\xef\xbb\xbf")
    lines = reply.body.decode("utf-8-sig").split("\r\n")
    assert lines[0].split(";")[:3] == ["Лицевой счёт", "Помещение", "Дом"] and lines[-1] == ""
    row = lines[1].split(";")
    assert row[0] == "7700000101" and row[6] == "Холодная вода" and row[8] == "107,2" and row[12] == "7,44"
    assert row[9] == "01.10.2026 00:00:00" and row[13] == "измерено"
    assert "'=12345680" in lines[4]  # a serial starting with '=' is not a formula
    assert len(lines) == 7
    en = site.get(f"{URL}?period=2026-10&format=csv&lang=en").body.decode("utf-8-sig").split("\r\n")
    assert en[0].startswith("Account;Premises;Building") and ";107.2;2026-09-30T21:00:00.000Z;" in en[1]
    comma = site.get(f"{URL}?period=2026-10&format=csv&lang=en&decimal=comma").body.decode("utf-8-sig")
    assert ";107,2;" in comma


def test_xlsx_headers(site) -> None:
    """XLSX: Russian headers by default, English with lang=en; numbers stay numbers."""
    ru = _sheets(site.get(f"{URL}?period=2026-10&format=xlsx"))
    (title, rows), = ru.items()
    assert title == "Показания" and rows[0][:2] == ("Лицевой счёт", "Помещение") and len(rows) == 6
    assert rows[1][8] == 107.2 and rows[4][5] == "=12345680"
    en = _sheets(site.get(f"{URL}?period=2026-10&format=xlsx&lang=en"))
    assert en["Readings"][0][:3] == ("Account", "Premises", "Building")


def test_xlsx_cap(site, monkeypatch) -> None:
    """Past MAX_XLSX_ROWS meters an XLSX export is a 400 suggesting building= or CSV."""
    monkeypatch.setattr(pull, "MAX_XLSX_ROWS", 3)
    reply = site.get(f"{URL}?period=2026-10&format=gis")
    assert reply.status == 400 and "building=" in reply.json["error"] and "csv" in reply.json["error"]
    assert site.get(f"{URL}?period=2026-10&format=gis&building=b2").status == 200


def test_gis_gkh_layout(site) -> None:
    """One row per meter with an end reading: FIAS, premises, serial, resource, date, T1..T3, OKEI; the rest listed."""
    sheets = _sheets(site.get(f"{URL}?period=2026-11&format=gis&lang=en"))
    rows = sheets["Показания ПУ"]
    assert rows[0] == pull.GIS_COLUMNS
    cold = rows[1]
    assert cold[:6] == (FIAS, "1", "7700000101", "12345678", "Холодная вода", "19.11.2026") and cold[9] == "113"
    el = rows[2]
    assert el[3] == "Э-0001" and el[4] == "Электрическая энергия" and el[9] == "245"
    assert el[6] == pytest.approx(300 + 0.3 * 1902) and el[7] == pytest.approx(200 + 0.2 * 1902) and el[8] is None
    assert [r[3] for r in rows[1:]] == ["12345678", "Э-0001", "=12345680", "22345678"]
    skipped = sheets["Не выгружено"]
    assert skipped[1][:2] == ("7700000102", "2") and skipped[1][6] == "pp354-59-insufficient-history-norm"
