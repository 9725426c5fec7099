"""Integration: the demo site as a real process, with months of simulated history — issue 7's "done when".

The demo starts with its ``simulate_history`` (about eight months, written in
the background at start).  Then, through the API with real tokens:

- the billing pull of the last full month returns every account exactly once
  across pages, with end − start = consumption for measured items and the
  ПП 354 substitutions (the demo's gap and its expired verification) marked
  ``calculated`` with their rule and explanation;
- the month's balance report shows the simulator's losses (3 % of the
  apartments' water, 2 % of their electricity, as a share of the building
  meter: 2.91 % and 1.96 %);
- the balance service publishes the same losses as calculated tags;
- the 1C CSV export is UTF-8 with a BOM and ``;``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.integration.demo_site import demo_copy, start_demo, stop_demo
from tests.integration.test_alarms_demo import token
from tests.integration.test_run import wait_for

pytestmark = pytest.mark.integration

#: The simulator's losses as a share of the building meter's volume, in %.
WATER_PCT = 100 * 0.03 / 1.03
ELECTRICITY_PCT = 100 * 0.02 / 1.02


def fetch(base: str, path: str, token: str) -> tuple[int, bytes, str]:
    """GET ``path`` with a bearer token; return (status, body bytes, content type)."""
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def get(base: str, path: str, token: str) -> dict:
    """GET a JSON answer that must be a 200."""
    status, body, _ = fetch(base, path, token)
    assert status == 200, (path, body[:500])
    return json.loads(body)


def last_full_month() -> str:
    """Return the last full billing period in the demo's time zone."""
    now = datetime.now(ZoneInfo("Europe/Moscow"))
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Run the demo with its simulated history; yield (base URL, tokens); stop it with SIGTERM."""
    tmp = tmp_path_factory.mktemp("billing-demo")
    demo_copy(tmp, mqtt=False, history=True)
    tokens = {role: token(tmp, role) for role in ("billing", "viewer")}
    proc, base = start_demo(tmp)

    def history_done() -> bool:
        status, body, _ = fetch(base, "/health", tokens["viewer"])
        state = json.loads(body).get("services", {}).get("simulated history", {}).get("state")
        assert state not in ("failed", "stopped"), body
        return status == 200 and state in ("done", "up_to_date")

    try:
        wait_for(history_done, 240, step=1.0)
        yield base, tokens
    finally:
        stop_demo(proc)
    assert proc.returncode == 0


def test_billing_pull_pages_every_account_once(site):
    base, tokens = site
    period = last_full_month()
    items, cursor, pages = [], None, 0
    while True:
        body = get(base, f"/billing/readings?period={period}&limit=7" + (f"&cursor={cursor}" if cursor else ""),
                   tokens["billing"])
        assert body["period"] == period
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages > 3
    keys = [(i["account"], i["meter"]) for i in items]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)
    accounts = set()
    for building in get(base, "/registry/buildings", tokens["viewer"])["items"]:
        detail = get(base, f"/registry/buildings/{building['id']}", tokens["viewer"])
        accounts |= {p["account"] for p in detail["premises"] if p["meters"]}
    assert {i["account"] for i in items} == accounts
    sources = {i["source"] for i in items}
    assert {"measured", "calculated"} <= sources
    for item in items:
        if item["source"] == "calculated":
            assert item["rule"].startswith("pp354-") and item["note"], item
        else:
            assert item["consumption"] == pytest.approx(item["end"] - item["start"], abs=1e-6), item
            assert item["consumption"] >= 0
    substituted = {i["meter"]: i for i in items if i["source"] == "calculated"}
    # The demo's gap (no reading for the last full month) and its expired verification.
    assert "b1-kv02-cold" in substituted and "b1-kv03-hot" in substituted
    assert substituted["b1-kv03-hot"]["reason"] == "verification-expired"

    status, csv, kind = fetch(base, f"/billing/readings?period={period}&format=csv", tokens["billing"])
    assert status == 200 and csv.startswith(b"\xef\xbb\xbf") and "csv" in kind
    lines = csv.decode("utf-8-sig").splitlines()
    assert ";" in lines[0] and len(lines) == len(items) + 1


def test_balance_report_shows_the_simulators_losses(site):
    base, tokens = site
    period = last_full_month()
    exact = 0
    for building in ("b1", "b2"):
        report = get(base, f"/reports/balance?building={building}&period={period}&interval=month",
                     tokens["viewer"])
        for group in report["groups"]:
            totals = group["totals"]
            if totals["substituted"] == 0 and totals["completeness"] == 1.0:
                # Every apartment measured: Σ ИПУ + losses = ОДПУ.
                losses = ELECTRICITY_PCT if group["resource"] == "electricity" else WATER_PCT
                assert totals["imbalance_pct"] == pytest.approx(losses, abs=0.05), (building, group)
                exact += 1
            else:
                # A ПП 354 volume stands in for a meter's real one: the balance says so.
                assert totals["substituted"] > 0 and totals["completeness"] < 1.0, (building, group)
    assert exact >= 4
    b1 = {g["resource"]: g["totals"]
          for g in get(base, f"/reports/balance?building=b1&period={period}&interval=month",
                       tokens["viewer"])["groups"]}
    # Apartment 2's missing cold water and apartment 3's expired hot water meter are substituted.
    assert b1["cold_water"]["substituted"] > 0 and b1["hot_water"]["substituted"] > 0
    days = get(base, f"/reports/balance?building=b2&period={period}&interval=day", tokens["viewer"])
    electricity = next(g for g in days["groups"] if g["resource"] == "electricity")
    assert len(electricity["items"]) >= 28
    assert all(i["imbalance_pct"] == pytest.approx(ELECTRICITY_PCT, abs=0.3) for i in electricity["items"])


def test_balance_service_publishes_the_losses_as_tags(site):
    base, tokens = site

    def published():
        status, body, _ = fetch(base, "/tags/balance-b1.electricity_imbalance_pct", tokens["viewer"])
        tag = json.loads(body)
        return tag if status == 200 and tag.get("value") is not None else None

    tag = wait_for(published, 60, step=1.0)
    assert tag["quality"] == "calculated"
    assert tag["value"] == pytest.approx(ELECTRICITY_PCT, abs=0.3)
