"""Alarm API: list filters, one alarm, operator actions, the journal (JSON, CSV, XLSX) and the denied hook.

Runs over Sanic's ASGI client on a runtime driven by ``task.Clock`` (no
ports, no sleeps); values reach the alarm engine through the tag table as a
poll would put them there.  Which role may call what is
``tests/scada/test_api_roles.py``'s business; here only the journal entry a
refusal leaves is checked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import textwrap
from dataclasses import dataclass

import pytest
from openpyxl import load_workbook
from twisted.internet.task import Clock

from scada import auth
from scada.api import build_app
from scada.api.alarms import COLUMNS
from scada.app import Runtime
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import iso_utc, parse_iso
from tests.scada.api_site import clock_runtime, request_body, start_app
from tests.scada.asgi import Reply, http

T0 = parse_iso("2026-11-19T08:00:00Z")
TAG = "m1.flow_m3h"
HI = "flow:m1.flow_m3h:hi"
HIHI = "flow:m1.flow_m3h:hihi"

SITE = textwrap.dedent("""\
    site: {{name: alarm api test}}
    api: {api}
    history: {{backend: sqlite, path: history.db}}
    alarm_settings: {{max_shelve: 1d}}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:1}}
        devices:
          - {{name: m1, address: 1, profile: generic_water_meter, poll: 10s}}
    alarms:
      - {{name: flow, type: limit, tag: m1.flow_m3h, hi: 5, hihi: 10, deadband: 0.5, priorities: {{hihi: critical}}}}
    """)


@dataclass
class Site:
    runtime: Runtime
    app: object
    loop: asyncio.AbstractEventLoop
    clock: Clock

    def call(self, method: str, path: str, body=None, token: str | None = None) -> Reply:
        """Make one request; ``body`` is JSON-encoded unless bytes or str."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.loop.run_until_complete(http(self.app, method, path, headers, request_body(body)))

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def feed(self, value: float, after: float = 10.0) -> None:
        """Let ``after`` seconds pass, then put a good reading of the flow tag in the table."""
        self.clock.advance(after)
        self.runtime.tags.update(Sample(TAG, value, Quality.GOOD, self.clock.seconds()))

    def alarm(self, ident: str) -> dict:
        response = self.get(f"/api/v1/alarms/{ident}")
        assert response.status == 200, response.text
        return response.json["alarm"]


def _build(folder, api: str, built: list[Site]) -> Site:
    runtime, clock = clock_runtime(folder, SITE.format(api=api), T0)
    runtime.alarms.start()
    site = Site(runtime, build_app(runtime), asyncio.new_event_loop(), clock)
    built.append(site)
    start_app(site.loop, site.app)
    return site


def _close(built: list[Site]) -> None:
    for site in built:
        site.runtime.alarms.stop()
        site.runtime.historian.close()
        site.runtime.store.close()
        site.loop.close()


@pytest.fixture()
def make_site(tmp_path):
    built: list[Site] = []

    def make(api: str = "{auth: false}") -> Site:
        folder = tmp_path / f"site{len(built)}"
        folder.mkdir()
        return _build(folder, api, built)

    yield make
    _close(built)


@pytest.fixture()
def site(make_site) -> Site:
    return make_site()


@pytest.fixture()
def raised(site) -> Site:
    """A site whose ``hi`` flow alarm has just been raised (7 m³/h against 5)."""
    site.feed(7.0)
    return site


@pytest.fixture(scope="module")
def raised_to_read(tmp_path_factory) -> Site:
    """Like ``raised``, built once, for the tests that only GET from it (they must not change it)."""
    built: list[Site] = []
    site = _build(tmp_path_factory.mktemp("alarms-raised"), "{auth: false}", built)
    site.feed(7.0)
    yield site
    _close(built)


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Site:
    """A site after :func:`_story`, built once, for the journal tests that only GET from it.

    They must not change it (no actions, no clock moves); ``monkeypatch`` of
    the API module is undone after each test.
    """
    built: list[Site] = []
    site = _build(tmp_path_factory.mktemp("alarms-story"), "{auth: false}", built)
    _story(site)
    yield site
    _close(built)


def _ids(response) -> list[str]:
    assert response.status == 200, response.text
    return [a["id"] for a in response.json["alarms"]]


# ---------------------------------------------------------------------------------------- list and one alarm


def test_list_filters(raised):
    """Each state group lists the alarms in it; the default is the active ones."""
    site = raised
    assert _ids(site.get("/api/v1/alarms")) == [HI]
    assert _ids(site.get("/api/v1/alarms?state=active")) == [HI]
    assert _ids(site.get("/api/v1/alarms?state=unacked")) == [HI]
    assert _ids(site.get("/api/v1/alarms?state=shelved")) == []
    assert HI not in _ids(site.get("/api/v1/alarms?state=normal"))
    assert HIHI in _ids(site.get("/api/v1/alarms?state=normal"))
    every = _ids(site.get("/api/v1/alarms?state=all"))
    assert {HI, HIHI, "flood:site"} <= set(every) and every[0] == HIHI  # most urgent first
    body = site.get("/api/v1/alarms").json
    assert body["flood"] is None
    assert body["summary"]["by_state"]["unack_active"] == 1 and body["summary"]["total"] == len(every)
    alarm = body["alarms"][0]
    assert alarm["state"] == "unack_active" and alarm["value"] == 7.0 and alarm["limit"] == 5.0
    assert alarm["active_since"] == iso_utc(T0 + 10) and alarm["tag"] == TAG and alarm["device"] == "m1"

    site.post(f"/api/v1/alarms/{HI}/ack")
    assert _ids(site.get("/api/v1/alarms?state=unacked")) == []
    assert _ids(site.get("/api/v1/alarms?state=active")) == [HI]
    site.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 30, "reason": "ремонт"})
    assert _ids(site.get("/api/v1/alarms?state=shelved")) == [HI]
    assert _ids(site.get("/api/v1/alarms?state=active")) == []


def test_list_message_language(raised_to_read):
    """``lang=en`` gives English messages; Russian is the default; an unknown language is Russian."""
    site = raised_to_read
    ru = site.get("/api/v1/alarms").json["alarms"][0]["message"]
    en = site.get("/api/v1/alarms?lang=en").json["alarms"][0]["message"]
    assert ru.startswith("Превышение") and en.startswith("High limit exceeded") and "m1.flow_m3h" in en
    assert site.get("/api/v1/alarms?lang=xx").json["alarms"][0]["message"] == ru


def test_bad_state_filter_is_400(raised_to_read):
    """A state that is not a group is a 400 naming the value and the choices."""
    site = raised_to_read
    for state in ("bogus", "ACTIVE", "acked", "active%20"):
        response = site.get(f"/api/v1/alarms?state={state}")
        assert response.status == 400, state
        shown = state.replace("%20", " ")
        assert f"state={shown!r}" in response.json["error"] and "unacked" in response.json["error"]


def test_one_alarm_and_unknown_id(raised_to_read):
    """One alarm by id; an unknown id is a JSON 404 naming it."""
    site = raised_to_read
    alarm = site.alarm(HI)
    assert alarm["id"] == HI and alarm["state"] == "unack_active" and alarm["priority"] == "medium"
    assert site.alarm(HIHI)["state"] == "normal" and site.alarm(HIHI)["priority"] == "critical"
    response = site.get("/api/v1/alarms/flow:m1.nothing:hi")
    assert response.status == 404 and response.json == {"error": "unknown alarm 'flow:m1.nothing:hi'"}


# ------------------------------------------------------------------------------------------------- actions


def test_ack_with_comment(raised):
    """Ack moves unack_active to ack_active, attributed to the caller, with the comment journalled."""
    site = raised
    site.clock.advance(5)
    response = site.post(f"/api/v1/alarms/{HI}/ack", {"comment": "  проверяем  "})
    assert response.status == 200
    alarm = response.json["alarm"]
    assert alarm["state"] == "ack_active" and alarm["acked_by"] == "anonymous"
    assert alarm["acked_at"] == iso_utc(T0 + 15)
    assert site.alarm(HI)["state"] == "ack_active"
    entry = site.runtime.store.query(T0, T0 + 60, alarm_id=HI)[-1]
    assert (entry.event, entry.user, entry.comment) == ("ack", "anonymous", "проверяем")


def test_ack_then_clear_goes_normal(raised):
    """An acked alarm whose condition goes away is normal; unacked it waits in rtn_unack for its ack."""
    site = raised
    site.feed(3.0)
    assert site.alarm(HI)["state"] == "rtn_unack"
    response = site.post(f"/api/v1/alarms/{HI}/ack")
    assert response.status == 200 and response.json["alarm"]["state"] == "normal"


def test_ack_of_a_normal_alarm_is_409(raised):
    """Acknowledging an alarm that waits for nothing is a conflict, and leaves no journal entry."""
    site = raised
    before = len(site.runtime.store.query(T0, T0 + 3600))
    response = site.post(f"/api/v1/alarms/{HIHI}/ack")
    assert response.status == 409 and HIHI in response.json["error"]
    site.post(f"/api/v1/alarms/{HI}/ack")
    response = site.post(f"/api/v1/alarms/{HI}/ack")  # twice
    assert response.status == 409
    assert len(site.runtime.store.query(T0, T0 + 3600)) == before + 1


def test_ack_of_an_unknown_alarm_is_404(site):
    response = site.post("/api/v1/alarms/nothing/ack", {"comment": "x"})
    assert response.status == 404 and response.json == {"error": "unknown alarm 'nothing'"}


def test_bulk_ack_with_good_and_unknown_ids(raised):
    """Bulk ack acks what it can and says, per id, why the others were not."""
    site = raised
    response = site.post("/api/v1/alarms/ack", {"ids": [HI, "nothing", HIHI], "comment": "все видели"})
    assert response.status == 200
    body = response.json
    assert body["acked"] == [HI]
    assert set(body["errors"]) == {"nothing", HIHI}
    assert "nothing" in body["errors"]["nothing"] and HIHI in body["errors"][HIHI]
    alarm = site.alarm(HI)
    assert alarm["state"] == "ack_active" and alarm["acked_by"] == "anonymous"
    entry = site.runtime.store.query(T0, T0 + 60, alarm_id=HI)[-1]
    assert (entry.event, entry.comment) == ("ack", "все видели")


def test_bulk_ack_bad_bodies_are_400(raised):
    """Bulk ack needs {"ids": [non-empty list of strings]}; anything else is a 400 that acks nothing."""
    site = raised
    for body in ({}, {"ids": []}, {"ids": "flow"}, {"ids": [1, 2]}, {"ids": [HI, None]}, {"ids": {HI: 1}},
                 {"ids": [HI], "comment": 5}, [HI], "null", b""):
        response = site.post("/api/v1/alarms/ack", body)
        assert response.status == 400 and response.json["error"], body
    assert site.alarm(HI)["state"] == "unack_active"


def test_bulk_ack_limit(raised, monkeypatch):
    import scada.api.alarms as api

    monkeypatch.setattr(api, "MAX_BULK", 2)
    response = raised.post("/api/v1/alarms/ack", {"ids": [HI, HI, HI]})
    assert response.status == 400 and "at most 2" in response.json["error"]


def test_shelve_and_expiry(raised):
    """Shelving hides the alarm until the time is up on the clock; then it is back, unacknowledged."""
    site = raised
    site.post(f"/api/v1/alarms/{HI}/ack")
    response = site.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 10, "reason": "замена датчика"})
    assert response.status == 200
    alarm = response.json["alarm"]
    assert alarm["state"] == "shelved" and alarm["shelved_by"] == "anonymous"
    assert alarm["shelve_reason"] == "замена датчика" and alarm["shelved_until"] == iso_utc(T0 + 10 + 600)
    site.clock.advance(599)
    assert site.alarm(HI)["state"] == "shelved"
    site.clock.advance(1)
    alarm = site.alarm(HI)
    assert alarm["state"] == "unack_active" and alarm["shelved_until"] is None and alarm["acked_by"] is None
    entry = site.runtime.store.query(T0, T0 + 3600, alarm_id=HI)[-1]
    assert (entry.event, entry.user, entry.state_to) == ("unshelve", "system", "unack_active")


def test_shelve_fractional_minutes(raised):
    response = raised.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 0.5, "reason": "тест"})
    assert response.status == 200 and response.json["alarm"]["shelved_until"] == iso_utc(T0 + 10 + 30)


BAD_SHELVES = [
    ({"minutes": 10}, "'reason' is required"),
    ({"minutes": 10, "reason": "   "}, "'reason' is required"),
    ({"minutes": 10, "reason": 7}, "'reason' must be a string"),
    ({"reason": "ремонт"}, "'minutes'"),
    ({"minutes": "10", "reason": "ремонт"}, "'minutes'"),
    ({"minutes": True, "reason": "ремонт"}, "'minutes'"),
    ({"minutes": 0, "reason": "ремонт"}, "'minutes'"),
    ({"minutes": -5, "reason": "ремонт"}, "'minutes'"),
    ({"minutes": None, "reason": "ремонт"}, "'minutes'"),
    ({"minutes": 1441, "reason": "ремонт"}, "1440"),  # alarm_settings.max_shelve: 1d
    ({"minutes": 1e300, "reason": "ремонт"}, "'minutes'"),
]


def test_bad_shelve_is_400(raised):
    """A shelve without a reason, or for a time that is not a positive number within the limit, is a 400."""
    site = raised
    for body, words in BAD_SHELVES:
        response = site.post(f"/api/v1/alarms/{HI}/shelve", body)
        assert response.status == 400, (body, response.json)
        assert words in response.json["error"], (body, response.json)
    assert site.alarm(HI)["state"] == "unack_active"
    assert [e.event for e in site.runtime.store.query(T0, T0 + 60)] == ["raise"]


def test_shelve_up_to_the_limit(raised):
    response = raised.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 1440, "reason": "на сутки"})
    assert response.status == 200 and response.json["alarm"]["state"] == "shelved"


def test_unshelve(raised):
    """Unshelving before the time returns the alarm to the state its condition demands; twice is a 409."""
    site = raised
    site.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 60, "reason": "ремонт"})
    response = site.post(f"/api/v1/alarms/{HI}/unshelve", {"comment": "починили"})
    assert response.status == 200
    alarm = response.json["alarm"]
    assert alarm["state"] == "unack_active" and alarm["shelved_until"] is None and alarm["shelved_by"] is None
    entry = site.runtime.store.query(T0, T0 + 3600, alarm_id=HI)[-1]
    assert (entry.event, entry.user, entry.comment) == ("unshelve", "anonymous", "починили")
    response = site.post(f"/api/v1/alarms/{HI}/unshelve")
    assert response.status == 409 and "not shelved" in response.json["error"]
    site.clock.advance(3600)  # the cancelled expiry does nothing
    assert site.alarm(HI)["state"] == "unack_active"


def test_comment(raised):
    """A comment lands on the alarm and in the journal; ``text`` works as the key too."""
    site = raised
    site.clock.advance(1)
    response = site.post(f"/api/v1/alarms/{HI}/comment", {"comment": "вызвали бригаду"})
    assert response.status == 200
    assert response.json["alarm"]["comments"] == [
        {"ts": iso_utc(T0 + 11), "user": "anonymous", "text": "вызвали бригаду"}]
    response = site.post(f"/api/v1/alarms/{HI}/comment", {"text": "бригада на месте"})
    assert response.status == 200 and [c["text"] for c in response.json["alarm"]["comments"]] == [
        "вызвали бригаду", "бригада на месте"]
    assert response.json["alarm"]["state"] == "unack_active"  # a comment is not an ack


def test_bad_comment_is_400(raised):
    """An empty, blank, non-string or overlong comment is a 400 naming the key, and records nothing."""
    site = raised
    for body in ({}, {"comment": ""}, {"comment": "  \n "}, {"text": ""}, {"comment": None}, {"comment": ["a"]},
                 {"comment": 5}, {"comment": "x" * 2001}):
        response = site.post(f"/api/v1/alarms/{HI}/comment", body)
        assert response.status == 400 and "'comment'" in response.json["error"], body
    assert site.alarm(HI)["comments"] == []
    assert site.post(f"/api/v1/alarms/{HI}/comment", {"comment": "x" * 2000}).status == 200


def test_out_of_service_and_back(raised):
    """Out of service needs a reason and hides the alarm; in service brings it back as its condition says."""
    site = raised
    response = site.post(f"/api/v1/alarms/{HI}/out_of_service", {})
    assert response.status == 400 and "'reason' is required" in response.json["error"]
    response = site.post(f"/api/v1/alarms/{HI}/out_of_service", {"reason": "замена счётчика"})
    assert response.status == 200
    alarm = response.json["alarm"]
    assert alarm["state"] == "out_of_service" and alarm["out_of_service"] is True
    assert alarm["out_of_service_by"] == "anonymous" and alarm["out_of_service_reason"] == "замена счётчика"
    assert _ids(site.get("/api/v1/alarms?state=out_of_service")) == [HI]
    assert _ids(site.get("/api/v1/alarms")) == []
    assert site.post(f"/api/v1/alarms/{HI}/out_of_service", {"reason": "ещё раз"}).status == 409
    assert site.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 5, "reason": "x"}).status == 409
    site.feed(12.0)  # hihi is raised as usual; hi stays out of service
    assert site.alarm(HI)["state"] == "out_of_service" and site.alarm(HIHI)["state"] == "unack_active"
    response = site.post(f"/api/v1/alarms/{HI}/in_service", {"comment": "счётчик заменён"})
    assert response.status == 200
    alarm = response.json["alarm"]
    assert alarm["state"] == "unack_active" and alarm["out_of_service_by"] is None
    assert site.post(f"/api/v1/alarms/{HI}/in_service").status == 409


def test_malformed_or_non_object_bodies_are_400(raised):
    """Every action answers a body that is not a JSON object with a 400 (never a 500) and changes nothing."""
    site = raised
    malformed = (b"{not json", b'{"comment": ', b"\xff\xfe", b"{'comment': 'x'}", b"[[[[" * 10000)
    not_objects = (b"[1, 2]", b'"text"', b"42", b"true")
    for path in ("ack", "shelve", "unshelve", "comment", "out_of_service", "in_service"):
        for body in malformed + not_objects:
            for url in (f"/api/v1/alarms/{HI}/{path}", "/api/v1/alarms/ack"):
                response = site.post(url, body)
                assert response.status == 400, (url, body[:20], response.text)
                expected = "the body is not valid JSON" if body in malformed else "the body must be a JSON object"
                assert response.json["error"] == expected, (url, body[:20])
    assert site.alarm(HI)["state"] == "unack_active"
    assert [e.event for e in site.runtime.store.query(T0, T0 + 60)] == ["raise"]


def test_empty_body_is_an_empty_object(raised):
    """No body at all is fine where nothing is required (ack), and a 400 naming what is (shelve)."""
    site = raised
    assert site.post(f"/api/v1/alarms/{HI}/ack").status == 200
    response = site.post(f"/api/v1/alarms/{HI}/shelve")
    assert response.status == 400 and "'minutes'" in response.json["error"]


# ------------------------------------------------------------------------------------------------- journal


def _story(site: Site) -> None:
    """Raise, ack, comment, shelve, expire, clear: one alarm's life, ten seconds apart."""
    site.feed(7.0)                                                                    # T0+10 raise
    site.clock.advance(10)
    site.post(f"/api/v1/alarms/{HI}/ack", {"comment": "проверяем"})                    # T0+20
    site.clock.advance(10)
    site.post(f"/api/v1/alarms/{HI}/comment", {"comment": "вызвали бригаду"})          # T0+30
    site.clock.advance(10)
    site.post(f"/api/v1/alarms/{HI}/shelve", {"minutes": 1, "reason": "ремонт"})       # T0+40
    site.clock.advance(60)                                                            # T0+100 unshelve
    site.feed(3.0)                                                                    # T0+110 clear
    site.clock.advance(10)


EVENTS = [("raise", "system", ""), ("ack", "anonymous", "проверяем"), ("comment", "anonymous", "вызвали бригаду"),
          ("shelve", "anonymous", "ремонт"), ("unshelve", "system", None), ("clear", "system", "")]


def test_journal_json(story):
    """The journal lists every transition and action in order, with users, comments and ISO times."""
    site = story
    response = site.get("/api/v1/alarms/journal")
    assert response.status == 200
    body = response.json
    assert body["to"] == iso_utc(T0 + 120) and body["from"] == iso_utc(T0 + 120 - 7 * 86400)
    entries = body["entries"]
    assert [(e["event"], e["user"]) for e in entries] == [(event, user) for event, user, _ in EVENTS]
    for entry, (_, _, comment) in zip(entries, EVENTS):
        if comment is not None:
            assert entry["comment"] == comment
    assert entries[4]["comment"]  # the system says why it unshelved
    assert [e["ts"] for e in entries] == [iso_utc(T0 + s) for s in (10, 20, 30, 40, 100, 110)]
    assert entries[0]["alarm_id"] == HI and entries[0]["state_to"] == "unack_active" and entries[0]["value"] == 7.0
    assert entries[0]["tag"] == TAG and entries[0]["priority"] == "medium" and entries[0]["message"]
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)


def test_journal_range_and_alarm_filter(story):
    """from/to bound the entries (from inclusive, to exclusive); alarm= picks one alarm."""
    site = story
    response = site.get("/api/v1/alarms/journal?from=2026-11-19T08:00:20Z&to=2026-11-19T08:00:40Z")
    assert [e["event"] for e in response.json["entries"]] == ["ack", "comment"]
    assert site.get(f"/api/v1/alarms/journal?alarm={HI}").json["entries"][0]["event"] == "raise"
    assert site.get(f"/api/v1/alarms/journal?alarm={HIHI}").json["entries"] == []
    response = site.get("/api/v1/alarms/journal?to=2026-11-19T08:00:00Z")
    assert response.status == 200 and response.json["entries"] == []


def test_journal_event_filter(story):
    """event= keeps one kind of entry, in JSON and in the exports (the HMI's export links carry it)."""
    site = story
    response = site.get("/api/v1/alarms/journal?event=comment")
    assert [e["event"] for e in response.json["entries"]] == ["comment"]
    assert site.get(f"/api/v1/alarms/journal?event=raise&alarm={HI}").json["entries"][0]["event"] == "raise"
    assert site.get("/api/v1/alarms/journal?event=flood_on").json["entries"] == []
    csv_text = site.get("/api/v1/alarms/journal?event=ack&format=csv").body.decode("utf-8-sig")
    assert len(csv_text.strip().splitlines()) == 2  # the header and the one ack
    for bad in ("Raise", "raise;drop", "x" * 41):
        response = site.get(f"/api/v1/alarms/journal?event={bad}")
        assert response.status == 400 and "event=" in response.json["error"]


def test_journal_bad_parameters_are_400(story):
    """Bad times, an empty or reversed range, an unknown format or parameter: a 400 with a message."""
    site = story
    for query, words in (("from=nonsense", "from"), ("to=2026-02-30", "to"),
                         ("from=2026-11-19T09:00:00Z&to=2026-11-19T08:00:00Z", "must be before"),
                         ("from=2026-11-19T08:00:00Z&to=2026-11-19T08:00:00Z", "must be before"),
                         ("format=pdf", "format='pdf'"), ("format=JSON", "format='JSON'"),
                         ("since=2026-11-19", "'since'"), ("from=2026-11-19&limit=5", "'limit'"),
                         ("format=csv&to=never", "to")):
        response = site.get(f"/api/v1/alarms/journal?{query}")
        assert response.status == 400, query
        assert words in response.json["error"], (query, response.json)


def test_journal_too_many_entries_is_400(story, monkeypatch):
    """The journal never truncates silently."""
    import scada.api.alarms as api

    site = story
    monkeypatch.setattr(api, "MAX_JOURNAL", 3)
    response = site.get("/api/v1/alarms/journal")
    assert response.status == 400 and "more than 3" in response.json["error"]


def _csv(response) -> list[list[str]]:
    assert response.status == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    text = response.content.decode("utf-8")[1:]
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def test_journal_csv_russian_by_default(story):
    """CSV: UTF-8 with BOM, ``;`` between fields, Russian headers, one row per entry; a file name with the dates."""
    site = story
    response = site.get("/api/v1/alarms/journal?format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == \
        'attachment; filename="alarm-journal-2026-11-12-2026-11-19.csv"'
    rows = _csv(response)
    assert rows[0] == [ru for _, ru, _ in COLUMNS] and rows[0][0] == "Время (UTC)"
    assert len(rows) == 1 + len(EVENTS)
    columns = {key: i for i, (key, _, _) in enumerate(COLUMNS)}
    assert [r[columns["event"]] for r in rows[1:]] == [e for e, _, _ in EVENTS]
    assert rows[2][columns["user"]] == "anonymous" and rows[2][columns["comment"]] == "проверяем"
    assert rows[1][columns["ts"]] == iso_utc(T0 + 10) and rows[1][columns["value"]] == "7.0"
    assert rows[2][columns["value"]] == "7.0" and rows[-1][columns["value"]] == "3.0"


def test_journal_csv_english(story):
    site = story
    rows = _csv(site.get("/api/v1/alarms/journal?format=csv&lang=en"))
    assert rows[0] == [en for _, _, en in COLUMNS] and rows[0][:3] == ["Time (UTC)", "Alarm", "Event"]
    assert len(rows) == 1 + len(EVENTS)


def test_journal_csv_quotes_separators(site):
    """A comment with ``;``, quotes and a line break stays one field."""
    site.feed(7.0)
    text = 'клапан; "задвижка"\nвторая строка'
    site.post(f"/api/v1/alarms/{HI}/comment", {"comment": text})
    site.clock.advance(1)
    rows = _csv(site.get("/api/v1/alarms/journal?format=csv"))
    assert rows[-1][[k for k, _, _ in COLUMNS].index("comment")] == text
    assert all(len(row) == len(COLUMNS) for row in rows)


def _xlsx(response):
    assert response.status == 200, response.text
    assert response.headers["content-type"] == \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(response.content))
    return book.active


def test_journal_xlsx(story):
    """XLSX opens with openpyxl: a bold header row and the entries."""
    site = story
    response = site.get("/api/v1/alarms/journal?format=xlsx")
    assert response.headers["content-disposition"].endswith('.xlsx"')
    sheet = _xlsx(response)
    assert sheet.title == "Журнал тревог"
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == [ru for _, ru, _ in COLUMNS] and sheet["A1"].font.bold
    assert len(rows) == 1 + len(EVENTS)
    keys = [k for k, _, _ in COLUMNS]
    assert [r[keys.index("event")] for r in rows[1:]] == [e for e, _, _ in EVENTS]
    assert rows[2][keys.index("comment")] == "проверяем" and rows[1][keys.index("value")] == 7.0
    sheet = _xlsx(site.get("/api/v1/alarms/journal?format=xlsx&lang=en"))
    assert sheet.title == "Alarm journal" and sheet["A1"].value == "Time (UTC)"


def test_journal_xlsx_keeps_text_as_text(site):
    """Operator text that looks like a formula, or holds control characters, is exported as plain text."""
    site.feed(7.0)
    for text in ('=HYPERLINK("http://example.invalid","открыть")', "=1+1", "звонок\x07 в 8:00\x00"):
        assert site.post(f"/api/v1/alarms/{HI}/comment", {"comment": text}).status == 200
    site.clock.advance(1)
    sheet = _xlsx(site.get("/api/v1/alarms/journal?format=xlsx"))
    column = [k for k, _, _ in COLUMNS].index("comment") + 1
    cells = [sheet.cell(row=row, column=column) for row in range(3, 6)]
    assert [c.data_type for c in cells] == ["s", "s", "s"]
    assert [c.value for c in cells] == ['=HYPERLINK("http://example.invalid","открыть")', "=1+1", "звонок в 8:00"]


# ------------------------------------------------------------------------------------------------ denied hook


def test_denied_action_is_journalled(make_site):
    """With auth on, an alarm action refused for the caller's role is a 403 and a "denied" journal entry."""
    site = make_site("{}")
    tokens = {}
    for name, role in (("billing-1c", "billing"), ("shift", "operator"), ("boss", "engineer")):
        tokens[role] = auth.new_api_token()
        site.runtime.store.add_token(name, role, auth.token_hash(tokens[role]))
    site.feed(7.0)

    response = site.post(f"/api/v1/alarms/{HI}/ack", {"comment": "а можно?"}, token=tokens["billing"])
    assert response.status == 403 and response.json["error"] == f"role 'billing' may not POST /api/v1/alarms/{HI}/ack"
    response = site.post(f"/api/v1/alarms/{HI}/out_of_service", {"reason": "x"}, token=tokens["operator"])
    assert response.status == 403
    response = site.post("/api/v1/alarms/ack", {"ids": [HI]}, token=tokens["billing"])
    assert response.status == 403
    # Refused reads are not alarm actions; an unauthenticated caller is nobody to name.
    assert site.get("/api/v1/alarms", token=tokens["billing"]).status == 403
    assert site.post(f"/api/v1/alarms/{HI}/ack").status == 401

    entries = site.get(f"/api/v1/alarms/journal?to={iso_utc(T0 + 60)}", token=tokens["operator"]).json["entries"]
    denied = [e for e in entries if e["event"] == "denied"]
    assert [(e["alarm_id"], e["user"]) for e in denied] == [
        (HI, "token:billing-1c"), (HI, "token:shift"), ("", "token:billing-1c")]
    assert denied[0]["comment"] == "ack refused: role 'billing' may not do it"
    assert denied[1]["comment"] == "out_of_service refused: role 'operator' may not do it"
    assert denied[0]["ts"] == iso_utc(T0 + 10)
    # Nothing happened to the alarm; an allowed caller still can.
    assert site.get(f"/api/v1/alarms/{HI}", token=tokens["operator"]).json["alarm"]["state"] == "unack_active"
    response = site.post(f"/api/v1/alarms/{HI}/ack", token=tokens["operator"])
    assert response.status == 200 and response.json["alarm"]["acked_by"] == "token:shift"
    response = site.post(f"/api/v1/alarms/{HI}/out_of_service", {"reason": "поверка"}, token=tokens["engineer"])
    assert response.status == 200 and response.json["alarm"]["out_of_service_by"] == "token:boss"
    assert [e.event for e in site.runtime.store.query(T0, T0 + 60)].count("denied") == 3


def test_denied_actions_on_unknown_alarms_leave_nothing(make_site, monkeypatch):
    """A refused action on an alarm that does not exist is not journalled: no rows of the caller's invention."""
    import scada.api.alarms as api

    site = make_site("{}")
    token = auth.new_api_token()
    site.runtime.store.add_token("wall", "viewer", auth.token_hash(token))
    site.feed(7.0)
    for path, body in ((f"/api/v1/alarms/{'x' * 5000}/ack", {}), ("/api/v1/alarms/nothing:here:hi/shelve", {}),
                       ("/api/v1/alarms/ack", {"ids": ["nothing", "y" * 5000]}), ("/api/v1/alarms/ack", b"{bad"),
                       ("/api/v1/alarms/ack", {"ids": "nothing"}), ("/api/v1/alarms/ack", {"ids": [5, None]})):
        assert site.post(path, body, token=token).status == 403, path
    assert [e.event for e in site.runtime.store.query(T0, T0 + 60)] == ["raise"]

    # A bulk ack names the alarms that exist, each once, at most MAX_DENIED_IDS of them.
    response = site.post("/api/v1/alarms/ack", {"ids": ["nothing", HI, HIHI, HI]}, token=token)
    assert response.status == 403
    monkeypatch.setattr(api, "MAX_DENIED_IDS", 1)
    site.post("/api/v1/alarms/ack", {"ids": ["nothing", HIHI, HI]}, token=token)
    monkeypatch.setattr(api, "MAX_BULK", 2)
    site.post("/api/v1/alarms/ack", {"ids": [HI, HIHI, HI]}, token=token)  # a bulk the endpoint refuses anyway
    denied = [e for e in site.runtime.store.query(T0, T0 + 60) if e.event == "denied"]
    assert [(e.alarm_id, e.user) for e in denied] == [("", "token:wall")] * 2
    assert denied[0].comment == f"ack refused: role 'viewer' may not do it (alarms: {HI}, {HIHI})"
    assert denied[1].comment == f"ack refused: role 'viewer' may not do it (alarms: {HIHI} and 1 more)"


SURROGATE_BODIES = [
    ("ack", '{"comment": "\\ud800"}', "comment"),
    ("shelve", '{"minutes": 5, "reason": "\\ud800"}', "reason"),
    ("shelve", '{"minutes": 5, "reason": "ремонт \\udfff"}', "reason"),
    ("unshelve", '{"comment": "a\\udc00b"}', "comment"),
    ("comment", '{"comment": "\\ud800"}', "comment"),
    ("comment", '{"text": "\\ud800"}', "text"),
    ("out_of_service", '{"reason": "\\ud800"}', "reason"),
    ("in_service", '{"comment": "\\ud800"}', "comment"),
]


def test_text_that_is_not_utf8_is_400(raised):
    """A lone surrogate (valid JSON, not UTF-8 text) is a 400 naming the field, never a 500, and records nothing."""
    site = raised
    for action, body, field in SURROGATE_BODIES:
        response = site.post(f"/api/v1/alarms/{HI}/{action}", body)
        assert response.status == 400, (action, body, response.text)
        assert response.json["error"].startswith(f"{field!r} is not valid UTF-8 text"), response.json
    for body in ('{"ids": ["\\ud800"]}', '{"ids": ["%s"], "comment": "\\ud800"}' % HI):
        response = site.post("/api/v1/alarms/ack", body)
        assert response.status == 400 and "is not valid UTF-8 text" in response.json["error"], body
    # A proper pair is a character like any other.
    response = site.post(f"/api/v1/alarms/{HI}/comment", '{"comment": "\\ud83d\\ude00 ok"}')
    assert response.status == 200 and response.json["alarm"]["comments"][-1]["text"] == "\U0001f600 ok"
    assert [e.event for e in site.runtime.store.query(T0, T0 + 60)] == ["raise", "comment"]


def test_journal_csv_text_never_starts_a_formula(site):
    """CSV text cells starting with = + - @ get a leading ' (OWASP: CSV injection); numbers are left alone."""
    site.feed(7.0)   # raise
    site.feed(-3.5)  # clear, at a negative reading: a number, exported as it is
    texts = ["=1+1", "+79991234567", "-2 градуса", "@SUM(A1:A2)", "обычный текст", "a=b"]
    for text in texts:
        assert site.post(f"/api/v1/alarms/{HI}/comment", {"comment": text}).status == 200
    site.clock.advance(1)
    rows = _csv(site.get("/api/v1/alarms/journal?format=csv"))
    keys = [k for k, _, _ in COLUMNS]
    column = {key: [row[keys.index(key)] for row in rows[1:]] for key in keys}
    assert column["event"] == ["raise", "clear"] + ["comment"] * len(texts)
    assert column["comment"][2:] == ["'=1+1", "'+79991234567", "'-2 градуса", "'@SUM(A1:A2)",
                                     "обычный текст", "a=b"]
    assert column["value"][:2] == ["7.0", "-3.5"]


def test_csv_cells():
    """Tab and carriage return start formulas too (OWASP); numbers, negative ones included, are not text."""
    import scada.api.alarms as api

    assert [api._csv_cell(v) for v in ("\tx", "\rx", "-1", "x-1", "")] == ["'\tx", "'\rx", "'-1", "x-1", ""]
    assert api._csv_cell(-3.5) == -3.5 and api._csv_cell(0) == 0 and api._csv_cell(None) is None


def test_journal_xlsx_is_built_off_the_loop(story, monkeypatch):
    """The workbook is built in a worker thread (seconds for a big journal), write-only, with the same look."""
    import threading

    import scada.api.alarms as api

    threads = []
    real = api._xlsx

    def spy(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(api, "_xlsx", spy)
    site = story
    sheet = _xlsx(site.get("/api/v1/alarms/journal?format=xlsx"))
    assert threads and threads[0] is not threading.main_thread()
    assert sheet.freeze_panes == "A2" and sheet.column_dimensions["G"].width == 40
    assert all(cell.font.bold for cell in sheet[1]) and not sheet["A2"].font.bold


def test_journal_xlsx_has_a_row_cap(story, monkeypatch):
    """Past MAX_XLSX entries an XLSX export is a 400 naming the cap and suggesting CSV; CSV still works."""
    import scada.api.alarms as api

    site = story
    monkeypatch.setattr(api, "MAX_XLSX", 5)
    response = site.get("/api/v1/alarms/journal?format=xlsx")
    assert response.status == 400
    assert "at most 5 journal entries" in response.json["error"] and "format=csv" in response.json["error"]
    assert len(_csv(site.get("/api/v1/alarms/journal?format=csv"))) == 1 + len(EVENTS)
    monkeypatch.setattr(api, "MAX_XLSX", len(EVENTS))
    assert site.get("/api/v1/alarms/journal?format=xlsx").status == 200
    monkeypatch.undo()
    assert api.MAX_XLSX == 50_000
