"""`scada mbus decode`: hex in, the documented JSON out; bad input is one line on stderr, exit 1."""

from __future__ import annotations

import io
import json

import pytest

from channels.mbus import link
from scada.cli import main
from scada.cli_mbus import parse_hex

HEADER = bytes.fromhex("17 58 85 06 2D 2C 08 04 04 00 00 00")  # id 06855817, KAM, v8, heat outlet, access 4
FRAME = link.long_frame(0x08, 0x01, 0x72, HEADER + bytes.fromhex("04 06 E7 91 00 00"))
EXPECTED = {
    "header": {"id": "06855817", "manufacturer": "KAM", "version": 8, "medium": "heat_outlet",
               "access_number": 4, "status": 0, "signature": 0},
    "records": [{"function": "instantaneous", "storage": 0, "tariff": 0, "subunit": 0,
                 "quantity": "energy", "unit": "Wh", "value": 37351000.0}],
}


def decode(capsys, *args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = main(["mbus", "decode", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("form", ["spaced", "compact", "split"])
def test_decode_prints_the_documented_json(capsys, form):
    hex_text = FRAME.hex(" ") if form == "spaced" else FRAME.hex()
    args = hex_text.split(" ", 3) if form == "split" else [hex_text]
    status, out, err = decode(capsys, *args)
    assert status == 0 and err == ""
    assert json.loads(out) == EXPECTED


def test_decode_reads_stdin(capsys, monkeypatch):
    for args in ([], ["-"]):
        status, out, _ = decode(capsys, *args, stdin=FRAME.hex(" ").upper() + "\n", monkeypatch=monkeypatch)
        assert status == 0 and json.loads(out) == EXPECTED


def test_decode_takes_user_data_without_the_frame(capsys):
    status, out, _ = decode(capsys, "72" + HEADER.hex() + "040 6E7 910 000")
    assert status == 0 and json.loads(out) == EXPECTED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("68 0G", "'G' is not a hex digit"),
        ("68 0", "odd number of hex digits"),
        ("", "no hex bytes given"),
        (FRAME[:-3].hex(), "frame ends after"),
        (FRAME[:-2].hex() + "0016", "checksum 0x00"),
        ("E5", "an ACK carries no data records"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(capsys, monkeypatch, text, message):
    status, out, err = decode(capsys, "-", stdin=text, monkeypatch=monkeypatch)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    if "frame" in message or "checksum" in message:
        assert "at byte" in err


def test_truncated_record_names_its_offset(capsys):
    frame = link.long_frame(0x08, 0x01, 0x72, HEADER + bytes.fromhex("04 06 E7 91"))
    status, _, err = decode(capsys, frame.hex())
    assert status == 1 and "at byte" in err


def test_parse_hex_accepts_common_dump_formats():
    assert parse_hex("0x68, 0x01:02\n") == b"\x68\x01\x02"
