"""A small metered site for the billing and report API tests: two buildings, a month of hourly history.

The runtime runs on ``task.Clock`` at 2026-11-19 11:00 (no ports); history
goes straight into its SQLite historian.  October 2026 (Moscow time) has
hourly samples of every meter (every 6 hours in September and November);
the building's cold-water meter (ОДПУ) reads the apartments' sum plus 5 %
losses.  Apartment 2's meter stops on 20 October (billed up to its last
reading in October, substituted by ПП 354 in November); apartment 3's
meter has daily manual readings.  A token per role.
"""

from __future__ import annotations

import asyncio
import atexit
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from scada.api import build_app
from tags.model import Sample
from tags.quality import Quality
from tests.scada.api_site import RoleSite, clock_runtime, role_tokens, start_app
from tests.scada.asgi import Reply

TZ = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 19, 11, 0, tzinfo=TZ).timestamp()
OCT = datetime(2026, 10, 1, tzinfo=TZ).timestamp()
NOV = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
SEP = datetime(2026, 9, 1, tzinfo=TZ).timestamp()
HOUR = 3600.0
#: Hourly consumption (m3) of each apartment's cold water, and the building meter's losses.
RATES = {"b1-kv01-cold": 0.010, "b1-kv02-cold": 0.020, "b1-kv03-cold": 0.005}
LOSSES = 0.05
FIAS = "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"

SITE = textwrap.dedent("""\
    site: {name: reports test, timezone: Europe/Moscow}
    history: {backend: sqlite, path: history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: b1-cold, address: 1, profile: generic_water_meter, poll: 10s}
          - {name: b1-kv01-cold, address: 11, profile: generic_water_meter, poll: 10s}
          - {name: b1-kv02-cold, address: 12, profile: generic_water_meter, poll: 10s}
          - {name: b1-kv03-cold, address: 13, profile: generic_water_meter, poll: 10s}
          - {name: b1-heat, address: 2, profile: generic_heat_meter, poll: 10s}
          - {name: b1-kv01-el, address: 21, profile: generic_electricity_meter, poll: 10s}
          - {name: b2-kv01-cold, address: 31, profile: generic_water_meter, poll: 10s}
    registry:
      buildings:
        - id: b1
          address: "г. Москва, ул. Ленина, д. 10"
          fias: "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
          norms:
            cold_water: {per_person: 4.745}
            electricity: {per_person: 90}
          premises:
            - {number: "1", account: "7700000101", area: 54.2, residents: 2}
            - {number: "2", account: "7700000102", area: 40.0, residents: 1}
            - {number: "3", account: "7700000103", area: 35.5, residents: 3}
          meters:
            - {id: b1-cold, serial: "ВСХН-0001", model: "ВСХН-40", resource: cold_water, tag: b1-cold.volume_m3,
               role: odpu, installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-heat, serial: "ТВ7-0001", model: "ТВ7", resource: heat, tag: b1-heat.energy_kwh,
               role: odpu, installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-kv01-cold, serial: "12345678", model: "СГВ-15", resource: cold_water,
               tag: b1-kv01-cold.volume_m3, role: ipu, premises: "1", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-kv02-cold, serial: "12345679", model: "СГВ-15", resource: cold_water,
               tag: b1-kv02-cold.volume_m3, role: ipu, premises: "2", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-kv03-cold, serial: "=12345680", model: "СГВ-15", resource: cold_water,
               tag: b1-kv03-cold.volume_m3, role: ipu, premises: "3", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-kv01-el, serial: "Э-0001", model: "Меркурий 201", resource: electricity,
               tag: b1-kv01-el.energy_kwh, role: ipu, premises: "1", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2037-03-01}
        - id: b2
          address: "г. Москва, ул. Мира, д. 2"
          premises:
            - {number: "1", account: "7700000201", area: 60, residents: 2}
          meters:
            - {id: b2-kv01-cold, serial: "22345678", model: "СГВ-15", resource: cold_water,
               tag: b2-kv01-cold.volume_m3, role: ipu, premises: "1", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2027-03-01}
    """)


def history() -> list[Sample]:
    """Hourly samples from 1 September to 19 November 2026 (Moscow), as described in the module docstring."""
    out: list[Sample] = []
    hours = int((NOW - SEP) // HOUR)
    kv2_stop = datetime(2026, 10, 20, tzinfo=TZ).timestamp()
    for h in range(hours + 1):
        ts = SEP + h * HOUR
        if not OCT <= ts <= NOV and h % 6:
            continue  # hourly in October, every 6 hours around it: enough for the boundaries, and quick
        total = 0.0
        for name, rate in RATES.items():
            value = 100.0 + rate * h
            total += rate * h
            if name == "b1-kv02-cold" and ts > kv2_stop:
                continue
            quality = Quality.MANUAL if name == "b1-kv03-cold" else Quality.GOOD
            if name == "b1-kv03-cold" and h % 24:
                continue  # a hand reading a day
            out.append(Sample(f"{name}.volume_m3", value, quality, ts))
        out.append(Sample("b1-cold.volume_m3", 5000.0 + total * (1 + LOSSES), Quality.GOOD, ts))
        out.append(Sample("b2-kv01-cold.volume_m3", 10.0 + 0.01 * h, Quality.GOOD, ts))
        # Heat: 10 kWh an hour; supply 70 °C, return 50 °C; an error code for 5 hours of October.
        out.append(Sample("b1-heat.energy_kwh", 1000.0 + 10.0 * h, Quality.GOOD, ts))
        out.append(Sample("b1-heat.t_supply_c", 70.0, Quality.GOOD, ts))
        out.append(Sample("b1-heat.t_return_c", 50.0, Quality.GOOD, ts))
        error = 1.0 if OCT + 100 * HOUR <= ts < OCT + 105 * HOUR else 0.0
        out.append(Sample("b1-heat.error_code", error, Quality.GOOD, ts))
        # Electricity: a two-tariff meter; T1 by day, T2 by night.
        out.append(Sample("b1-kv01-el.energy_kwh", 500.0 + 0.5 * h, Quality.GOOD, ts))
        out.append(Sample("b1-kv01-el.energy_t1_kwh", 300.0 + 0.3 * h, Quality.GOOD, ts))
        out.append(Sample("b1-kv01-el.energy_t2_kwh", 200.0 + 0.2 * h, Quality.GOOD, ts))
    # The heat meter was silent for 3 hours of October.
    gap = (OCT + 200 * HOUR, OCT + 203 * HOUR)
    return [s for s in out if not (s.name.startswith("b1-heat.") and gap[0] <= s.ts < gap[1])]


class Site(RoleSite):
    """The app over a Clock-driven runtime, with a token per role."""

    def get(self, path: str, role: str = "billing") -> Reply:
        """GET ``path`` as ``role``."""
        return self.call("GET", path, role=role)


_SHARED: list[Site] = []


def shared_site(tmp_path_factory) -> Site:
    """Return the one site of the test session (built on first use; tests must not change it)."""
    if not _SHARED:
        _SHARED.append(build_site(tmp_path_factory.mktemp("reports_site")))
        atexit.register(_SHARED[0].close)
    return _SHARED[0]


def build_site(folder: Path) -> Site:
    """Build the site in ``folder`` with its history written and flushed."""
    runtime, clock = clock_runtime(folder, SITE, NOW)
    tokens = role_tokens(runtime)
    # Straight into the SQLite store: the queue's encoding would take most of the build.
    runtime.historian.store.insert([(s.name, s.ts, s.value, s.quality.value) for s in history()])
    app = build_app(runtime)
    site = Site(runtime, app, asyncio.new_event_loop(), clock, tokens)
    start_app(site.loop, app)
    return site
