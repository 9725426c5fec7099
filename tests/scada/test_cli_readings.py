"""``scada import readings``: what hand-held exports look like, bad lines as FILE:LINE, what is sent, the answers.

The HTTP exchange is replaced by a fake ``urlopen`` (no ports); the real
round trip against ``scada run`` is ``tests/integration/test_import_readings.py``.
"""

from __future__ import annotations

import io
import json
import textwrap
import urllib.error
import urllib.request
from zoneinfo import ZoneInfo

import pytest

from scada import cli_readings
from scada.cli import main
from scada.cli_readings import parse_readings, parse_time, parse_value

MSK = ZoneInfo("Europe/Moscow")


def rows(text: str | bytes, encoding: str = "utf-8", tz=MSK, replacement: bool = False):
    data = text if isinstance(text, bytes) else text.encode(encoding)
    parsed = parse_readings(data, "r.csv", tz, replacement)
    return parsed


def test_russian_headers_semicolons_decimal_comma_cp1251():
    """A Russian Windows export: cp1251, ';', decimal comma, DD.MM.YYYY in the site's zone, extra columns."""
    text = ("Квартира;Заводской номер;Дата и время;Показание;Замена;Комментарий\r\n"
            "7;ВСХ-123456;20.11.2026 10:00;123,45;;обход\r\n"
            "\r\n"
            "8;ВСХ-654321;20.11.2026 10:05:30;1 234,5;да;\r\n")
    parsed = rows(text, "cp1251")
    assert parsed.problems == []
    assert parsed.readings == [
        {"serial": "ВСХ-123456", "ts": "2026-11-20T07:00:00.000Z", "value": 123.45, "comment": "обход"},
        {"serial": "ВСХ-654321", "ts": "2026-11-20T07:05:30.000Z", "value": 1234.5, "replacement": True}]
    assert parsed.lines == [2, 4]


def test_utf8_bom_commas_english_iso():
    """UTF-8 with a BOM, ',' separators, English headers, ISO times with and without an offset."""
    text = ("\ufeffTag,Timestamp,Value,Comment\n"
            "b1-kv01-cold.volume_m3,2026-11-20T10:00:00Z,12.5,\"first, visit\"\n"
            "b1-kv01-cold.volume_m3,2026-11-20 13:00,\"12,75\",\n")
    parsed = rows(text)
    assert parsed.problems == []
    assert parsed.readings == [
        {"tag": "b1-kv01-cold.volume_m3", "ts": "2026-11-20T10:00:00.000Z", "value": 12.5, "comment": "first, visit"},
        {"tag": "b1-kv01-cold.volume_m3", "ts": "2026-11-20T10:00:00.000Z", "value": 12.75}]


def test_tabs_utf16_separate_date_and_time_columns_and_replacement_flag():
    """Excel's "Unicode text": UTF-16 with tabs; a date column and a time column are joined; --replacement."""
    text = "номер счётчика\tдата\tвремя\tзначение\nA-1\t01.03.2026\t09:15\t5\n"
    parsed = rows(text.encode("utf-16"), tz=ZoneInfo("Asia/Yekaterinburg"), replacement=True)
    assert parsed.problems == []
    assert parsed.readings == [{"serial": "A-1", "ts": "2026-03-01T04:15:00.000Z", "value": 5.0, "replacement": True}]


def test_bad_lines_are_named_file_line():
    """Every bad line is reported with its line number and the bad value; good lines are not."""
    text = textwrap.dedent("""\
        serial;date;value
        S-1;20.11.2026 10:00;1,5
        S-2;31.11.2026 10:00;2
        S-3;20.11.2026;3
        ;20.11.2026 10:00;4
        S-5;20.11.2026 10:00;abc
        S-6;20.11.2026 10:00;1,234.5
        S-7;2026-11-20T10:00:00+03:00;
        """)
    parsed = rows(text)
    assert parsed.problems == [
        "r.csv:3: time '31.11.2026 10:00' is not a date and time such as 20.11.2026 10:00 or "
        "2026-11-20T10:00:00+03:00",
        "r.csv:4: time '20.11.2026' is a date without a time of day: write DD.MM.YYYY HH:MM",
        "r.csv:5: no serial number or tag",
        "r.csv:6: value 'abc' is not a number",
        "r.csv:7: value '1,234.5' has both a comma and a point: write one decimal separator",
        "r.csv:8: no value",
    ]
    assert parsed.lines == [2]


@pytest.mark.parametrize("data, message", [
    (b"", "r.csv: the file is empty"),
    (b"\x00\x01\x02PK", "not a CSV text file"),
    ("номер;когда;сколько\n1;2;3\n".encode(), "r.csv:1: the header row ('номер', 'когда', 'сколько') names no "
                                              "column for the meter"),
    (b"serial;date;value\n", "r.csv: no readings below the header row"),
    (b"serial;tag;date;value\nS;T;20.11.2026 10:00;1\n", "r.csv:2: both a serial number ('S') and a tag ('T')"),
    (b"serial;date;value;replacement\nS;20.11.2026 10:00;1;maybe\n", "r.csv:2: replacement 'maybe' is not yes or no"),
])
def test_files_that_cannot_be_read(data, message):
    """Empty, binary, headerless and odd files: one clear problem."""
    problems = rows(data).problems
    assert any(p.startswith(message) or message in p for p in problems), problems


def test_value_and_time_helpers():
    """Numbers with blanks and commas; ISO with offset kept, naive ISO in the site's zone."""
    assert parse_value(" 1\u00a0234,5 ") == 1234.5 and parse_value("-0.5") == -0.5
    with pytest.raises(ValueError):
        parse_value("inf")
    assert parse_time("2026-11-20T10:00:00+05:00", MSK) == "2026-11-20T05:00:00.000Z"
    assert parse_time("2026-11-20T10:00:00", MSK) == "2026-11-20T07:00:00.000Z"
    assert parse_time("20.11.2026 10:00:01,5", MSK) == "2026-11-20T07:00:01.500Z"


# ------------------------------------------------------------------------------------------- the command


class FakeServer:
    """Stands in for ``urllib.request.urlopen``: records requests, answers what it is told."""

    def __init__(self, status: int = 200, answer: dict | None = None, error: Exception | None = None) -> None:
        self.status, self.answer, self.error = status, answer, error
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request, timeout=None):
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        body = json.dumps(self.answer).encode()
        if self.status >= 400:
            raise urllib.error.HTTPError(request.full_url, self.status, "error", {}, io.BytesIO(body))
        response = io.BytesIO(body)
        response.status = self.status
        return response

    @property
    def sent(self) -> dict:
        return json.loads(self.requests[-1].data)


@pytest.fixture()
def export(tmp_path):
    path = tmp_path / "обход.csv"
    path.write_text("serial;date;value\nS-1;20.11.2026 10:00;1,5\nS-2;20.11.2026 10:01;2\n", encoding="cp1251")
    return path


def run(monkeypatch, server: FakeServer, *argv: str) -> int:
    monkeypatch.setattr(urllib.request, "urlopen", server)
    monkeypatch.delenv(cli_readings.TOKEN_ENV, raising=False)
    return main(["import", "readings", *argv])


def test_sends_the_file_and_prints_a_summary(monkeypatch, export, capsys):
    """The rows go in one POST with the token and the file's name as source; the summary is printed."""
    server = FakeServer(answer={"accepted": 1, "duplicates": 1, "results": []})
    assert run(monkeypatch, server, str(export), "--token", "sct_x") == 0
    request = server.requests[0]
    assert request.full_url == "http://127.0.0.1:8080/api/v1/readings/manual"
    assert request.get_header("Authorization") == "Bearer sct_x" and request.get_method() == "POST"
    assert server.sent == {"source": "import:обход.csv", "readings": [
        {"serial": "S-1", "ts": "2026-11-20T07:00:00.000Z", "value": 1.5},
        {"serial": "S-2", "ts": "2026-11-20T07:01:00.000Z", "value": 2.0}]}
    assert "1 readings accepted, 1 already stored" in capsys.readouterr().out


def test_url_and_zone_from_the_site_file_and_token_from_env(monkeypatch, export, tmp_path):
    """-c gives api.listen (a wildcard becomes loopback) and site.timezone; SCADA_TOKEN gives the token."""
    site = tmp_path / "site.yaml"
    site.write_text("site: {name: s, timezone: Asia/Yekaterinburg}\napi: {listen: 0.0.0.0:9123}\n"
                    "history: {backend: sqlite, path: h.db}\nchannels: []\n")
    server = FakeServer(answer={"accepted": 2, "duplicates": 0})
    monkeypatch.setattr(urllib.request, "urlopen", server)
    monkeypatch.setenv(cli_readings.TOKEN_ENV, "sct_env")
    assert main(["import", "readings", str(export), "-c", str(site)]) == 0
    assert server.requests[0].full_url == "http://127.0.0.1:9123/api/v1/readings/manual"
    assert server.requests[0].get_header("Authorization") == "Bearer sct_env"
    assert server.sent["readings"][0]["ts"] == "2026-11-20T05:00:00.000Z"


def test_bad_file_sends_nothing(monkeypatch, tmp_path, capsys):
    """Bad lines: FILE:LINE messages, exit 1, no request; --dry-run checks only."""
    path = tmp_path / "r.csv"
    path.write_text("serial;date;value\nS-1;20.11.2026 10:00;x\n")
    server = FakeServer()
    assert run(monkeypatch, server, str(path)) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: value 'x' is not a number" in err and "nothing sent" in err and server.requests == []
    path.write_text("serial;date;value\nS-1;20.11.2026 10:00;1\n")
    assert run(monkeypatch, server, str(path), "--dry-run") == 0 and server.requests == []
    assert "1 readings ok (dry run" in capsys.readouterr().out
    assert run(monkeypatch, server, str(tmp_path / "missing.csv")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_refused_rows_map_back_to_lines(monkeypatch, export, capsys):
    """The site's 400 names rows; the command prints them as FILE:LINE."""
    server = FakeServer(400, {"error": "readings refused", "problems": [
        {"row": 1, "message": "S-2: 2.0 at ... is lower than the previous reading 3.0"}]})
    assert run(monkeypatch, server, str(export), "--replacement") == 1
    assert all(r.get("replacement") is True for r in server.sent["readings"])
    err = capsys.readouterr().err
    assert f"{export}:3: S-2: 2.0 at ... is lower than the previous reading 3.0" in err
    assert "nothing was stored" in err


@pytest.mark.parametrize("server, expected", [
    (FakeServer(401, {"error": "authentication required"}), "answered 401: authentication required; give an"),
    (FakeServer(403, {"error": "role 'viewer' may not POST"}), "answered 403: role 'viewer' may not POST"),
    (FakeServer(error=urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))),
     "cannot reach the site at http://127.0.0.1:8080/api/v1/readings/manual: [Errno 111] Connection refused"),
    (FakeServer(error=TimeoutError("timed out")), "cannot reach the site"),
])
def test_server_problems_are_one_line(monkeypatch, export, capsys, server, expected):
    """Unreachable, 401, 403: one line on stderr, exit 1, no traceback."""
    assert run(monkeypatch, server, str(export)) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_not_this_api(monkeypatch, export, capsys):
    """An answer that is not JSON (another server on the port) is named as such."""
    class Html(FakeServer):
        def __call__(self, request, timeout=None):
            response = io.BytesIO(b"<html>hello</html>")
            response.status = 200
            return response

    assert run(monkeypatch, Html(), str(export), "--url", "http://10.0.0.2:8080/") == 1
    assert "not this API's JSON" in capsys.readouterr().err
    assert run(monkeypatch, FakeServer(), str(export), "--url", "10.0.0.2:8080") == 1
    assert "must start with http://" in capsys.readouterr().err
