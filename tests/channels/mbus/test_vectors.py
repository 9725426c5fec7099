"""Check channels.mbus.telegram against libmbus's decoding of real meters' telegrams.

The vectors live beside the repository in ``../shared/vectors/mbus`` (libmbus
test data, BSD-3; see its README) and are never copied into it; without them
these tests skip.  libmbus is a reference, not the standard: where they
differ and the standard is right, the difference is listed in
EXPECTED_DIFFERENCES with the reason, and channels/mbus/README.md explains
each.  Any other difference fails.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from channels.mbus.telegram import MBusDecodeError, decode_frame

VECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / "mbus"
FRAMES = sorted((VECTORS / "frames").glob("*.hex")) if VECTORS.is_dir() else []
ERROR_FRAMES = sorted((VECTORS / "error-frames").glob("*.hex")) if VECTORS.is_dir() else []

#: libmbus unit spelling → (our unit, factor from libmbus's value to ours).
LIBMBUS_UNITS = {
    "Wh": ("Wh", 1), "J": ("J", 1), "m^3": ("m^3", 1), "kg": ("kg", 1), "W": ("W", 1),
    "J/h": ("J/h", 1), "m^3/h": ("m^3/h", 1), "m^3/min": ("m^3/h", 60), "m^3/s": ("m^3/h", 3600),
    "kg/h": ("kg/h", 1), "°C": ("°C", 1), "K": ("K", 1), "bar": ("bar", 1), "s": ("s", 1),
    "V": ("V", 1), "A": ("A", 1), "kWh": ("Wh", 1000), "l": ("m^3", 0.001),
    "": ("", 1), "-": ("", 1), "Reserved": ("", 1), "Units for H.C.A.": ("", 1),
}
#: libmbus prints floats with 6 decimals.
ABS_TOL = 1e-6
#: At least this share of libmbus's numeric records must come out the same.
MIN_MATCH = 0.95

_FIXED_DATA = "fixed data structure (CI 73h) is not supported: MBusDecodeError"
_DURATION = ("combinable VIFE 50h-5Fh: the value is the duration of a limit exceed in seconds; "
             "libmbus ignores the VIFE and reports a volume flow")
_TIME_OF = ("VIFE 6Fh: the value is the date/time of the event (type F), here all zero (not set): "
            "an invalid date; libmbus reads the bytes as a number")
_TIME_OF_SET = ("VIFE 6Fh: the value is the date/time of the maximum, a type F date; libmbus reads "
                "the bytes as a temperature of some 41 million °C")
#: (frame, record index) → why our value differs from libmbus's; README "Differences from libmbus".
EXPECTED_DIFFERENCES = {
    ("SEN_Pollustat", 12): _DURATION,
    ("SEN_Pollustat", 13): _DURATION,
    ("landis+gyr_ultraheat_t230", 19): _TIME_OF,
    ("landis+gyr_ultraheat_t230", 20): _TIME_OF,
    ("landis+gyr_ultraheat_t230", 21): _TIME_OF_SET,
    ("landis+gyr_ultraheat_t230", 22): _TIME_OF_SET,
    ("sen_pollusonic_2", 0): _FIXED_DATA,
    ("sen_pollusonic_2", 1): _FIXED_DATA,
}


def libmbus_xml(path: Path) -> ET.Element:
    """Parse a libmbus XML file; libmbus writes UTF-8 under an ISO-8859-1 declaration."""
    return ET.fromstring(path.read_bytes().replace(b'encoding="ISO-8859-1"', b'encoding="UTF-8"'))


def words(text: str) -> str:
    """Reduce a message to lowercase letters and digits ("More than 10 DIFE´s" → "morethan10difes")."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def numeric_records(root: ET.Element) -> list[tuple[int, float, str]]:
    """Return (index, value in our unit, our unit) of libmbus's numeric records."""
    out = []
    for index, element in enumerate(root.findall("DataRecord")):
        try:
            value = float(element.findtext("Value") or "")
        except ValueError:
            continue
        unit, factor = LIBMBUS_UNITS[element.findtext("Unit") or ""]
        out.append((index, value * factor, unit))
    return out


def mismatches(frame: Path) -> tuple[int, dict[int, str]]:
    """Return how many numeric records libmbus has, and ours that differ (index → what we have)."""
    expected = numeric_records(libmbus_xml(frame.with_suffix(".norm.xml")))
    try:
        records = decode_frame(bytes.fromhex(frame.read_text())).records
    except MBusDecodeError as exc:
        return len(expected), {index: str(exc) for index, _, _ in expected}
    found = {}
    for index, value, unit in expected:
        ours = records[index] if index < len(records) else None
        if (ours is None or type(ours.value) is not float or ours.unit != unit
                or not math.isclose(ours.value, value, rel_tol=1e-9, abs_tol=ABS_TOL)):
            found[index] = "missing" if ours is None else f"{ours.quantity} {ours.value!r} {ours.unit}"
    return len(expected), found


@pytest.mark.parametrize("frame", FRAMES, ids=lambda p: p.stem)
def test_frame_matches_libmbus(frame):
    """Each numeric record of the frame equals libmbus's (value and unit), or is a listed difference."""
    _, found = mismatches(frame)
    unexpected = {i: what for i, what in found.items() if (frame.stem, i) not in EXPECTED_DIFFERENCES}
    assert not unexpected, f"records differing from libmbus: {unexpected}"
    stale = [i for (name, i) in EXPECTED_DIFFERENCES if name == frame.stem and i not in found]
    assert not stale, f"listed differences that no longer differ: {stale}"


def test_match_rate():
    """Over all frames, at least 95 % of libmbus's numeric records match."""
    if not FRAMES:
        pytest.skip(f"no M-Bus test vectors at {VECTORS}")
    total = differing = 0
    for frame in FRAMES:
        count, found = mismatches(frame)
        total += count
        differing += len(found)
    assert total > 300
    assert (total - differing) / total >= MIN_MATCH, f"{total - differing} of {total} match"


@pytest.mark.parametrize("frame", FRAMES, ids=lambda p: p.stem)
def test_header_and_record_count_match_libmbus(frame):
    """Id, manufacturer, version, access number, status, signature and the number of records agree."""
    try:
        telegram = decode_frame(bytes.fromhex(frame.read_text()))
    except MBusDecodeError:
        assert (frame.stem, 0) in EXPECTED_DIFFERENCES
        return
    root = libmbus_xml(frame.with_suffix(".norm.xml"))
    info = root.find("SlaveInformation")
    header = telegram.header
    assert int(header.id, 16) == int(info.findtext("Id"), 16)   # libmbus drops leading zeros
    assert header.manufacturer == info.findtext("Manufacturer")
    assert header.version == int(info.findtext("Version"))
    assert header.access_number == int(info.findtext("AccessNumber"))
    assert header.status == int(info.findtext("Status"), 16)
    assert header.signature == int(info.findtext("Signature"), 16)
    assert len(telegram.records) == len(root.findall("DataRecord"))


@pytest.mark.parametrize("frame", ERROR_FRAMES, ids=lambda p: p.stem)
def test_error_frames(frame):
    """A malformed telegram raises MBusDecodeError; an error report decodes with Telegram.error set."""
    try:
        telegram = decode_frame(bytes.fromhex(frame.read_text()))
    except MBusDecodeError as exc:
        assert exc.what and exc.offset > 0
        return
    assert telegram.error and telegram.records == ()
    libmbus = frame.with_suffix(".xml")
    if libmbus.exists():
        assert words(telegram.error) == words(libmbus_xml(libmbus).findtext("SlaveInformation/Error"))
