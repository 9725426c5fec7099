"""M-Bus telegram decoding: channels.mbus.telegram against pyMeterBus, same telegrams, same run.

Both sides decode the same whole RSP_UD frames, round after round:

``ours``
    :func:`channels.mbus.telegram.decode_frame`: link layer checked, every
    record decoded to value, unit, quantity, function, storage, tariff and
    subunit.
``pyMeterBus``
    ``meterbus.load(frame)``, then for every record ``.value``, ``.unit``,
    ``.function`` and ``.dib.parse_dife()`` (storage, tariff, subunit).
    pyMeterBus splits the records at ``load`` but decodes a value only when
    asked, so reading these attributes is what makes it do the work ours
    does.

The telegrams are the real meters' frames of ``../shared/vectors/mbus/frames``
when that folder exists, else telegrams built with :mod:`channels.mbus.build`
(the output says which).  A frame either side cannot decode is left out of
both and counted.  Each round measures both sides for ``--seconds`` each,
alternating which goes first; the JSON line holds the medians.

The last line of output is one JSON object (DESIGN "Contracts").
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from channels.mbus import build  # noqa: E402
from channels.mbus.link import long_frame  # noqa: E402
from channels.mbus.telegram import MBusDecodeError, decode_frame  # noqa: E402

try:
    import meterbus
except ImportError:     # main() says so; --help works without it
    meterbus = None

VECTORS = ROOT / ".." / "shared" / "vectors" / "mbus" / "frames"


def parse_args(argv=None) -> argparse.Namespace:
    """Return the command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="measured window per side and round, default 2")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the JSON holds the medians, default 3")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        p.error("--seconds > 0 and --rounds >= 1 are required")
    return args


def vector_frames() -> list[bytes]:
    """Return the real frames of the shared vectors folder (empty without it)."""
    if not VECTORS.is_dir():
        return []
    return [bytes.fromhex(path.read_text()) for path in sorted(VECTORS.glob("*.hex"))]


def built_frames() -> list[bytes]:
    """Return RSP_UD frames of a heat, a water and an electricity meter built with channels.mbus.build."""
    now = datetime.datetime(2026, 1, 15, 10, 30, 5)
    heat = [build.record(0x4, 37351, 0x06), build.record(0x4, 56108, 0x14),
            build.record(0x2, 651, 0x5A), build.record(0x2, 412, 0x5E),
            build.record(0x2, 239, 0x61), build.record(0x3, 1200, 0x2B),
            build.record(0x3, 731, 0x3B), build.record(0x4, 1000, bytes.fromhex("83 3b")),
            build.record(0x4, 35000, 0x06, storage=1),
            build.record(0x2, build.date_g(now.date()), 0x6C, storage=1),
            build.record(0x4, build.datetime_f(now), 0x6D), build.record(0x1, 0, bytes.fromhex("fd 17"))]
    water = [build.record(0xC, 1234567, 0x13), build.record(0xC, 1200000, 0x13, storage=1),
             build.record(0x2, build.date_g(now.date()), 0x6C, storage=1),
             build.record(0xB, 120, 0x3B, function="maximum"), build.record(0x4, 93, 0x22),
             build.record(0x6, build.datetime_i(now), 0x6D),
             build.record(0xD, "APT-17", bytes.fromhex("fd 10"))]
    electricity = [build.record(0x4, 1234567, 0x04, tariff=t) for t in (1, 2)] + [
        build.record(0x2, 231, bytes.fromhex("fd c9 fc 0%d" % phase)) for phase in (1, 2, 3)] + [
        build.record(0x2, 52, bytes.fromhex("fd db fc 0%d" % phase)) for phase in (1, 2, 3)] + [
        build.record(0x5, 1234.5, 0x2B), build.record(0x4, build.datetime_f(now), 0x6D)]
    telegrams = [
        build.user_data(build.long_header(12345678, "KAM", 8, 0x04, access=1), heat),
        build.user_data(build.long_header(87654321, "ACW", 14, 0x16, access=2), water,
                        manufacturer_data=b"\x00\x01\x75\x13"),
        build.user_data(build.long_header(11223344, "ABB", 2, 0x02, access=3), electricity),
    ]
    return [long_frame(0x08, 0x01, 0x72, data) for data in telegrams]


def ours(frame: bytes) -> int:
    """Decode with channels.mbus.telegram; return the record count."""
    return len(decode_frame(frame).records)


def pymeterbus(frame: bytes) -> int:
    """Decode with pyMeterBus and read what ours produces for every record."""
    telegram = meterbus.load(frame)
    for record in telegram.records:
        record.value, record.unit, record.function, record.dib.parse_dife()
    return len(telegram.records)


def usable(frames: list[bytes]) -> tuple[list[bytes], int, int]:
    """Keep the frames both sides decode; return them and how many each side failed."""
    kept, ours_failed, peer_failed = [], 0, 0
    for frame in frames:
        ok = True
        try:
            ours(frame)
        except MBusDecodeError:
            ours_failed += 1
            ok = False
        try:
            pymeterbus(frame)
        except Exception:  # pyMeterBus raises several kinds; any of them means it cannot decode it
            peer_failed += 1
            ok = False
        if ok:
            kept.append(frame)
    return kept, ours_failed, peer_failed


def measure(decode, frames: list[bytes], seconds: float) -> float:
    """Decode ``frames`` over and over for ``seconds``; return telegrams per second."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for frame in frames:
            decode(frame)
        count += len(frames)
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main(argv=None) -> int:
    """Measure both decoders; print figures and the JSON line."""
    args = parse_args(argv)
    if meterbus is None:
        print("pyMeterBus is not installed: pip install -e '.[bench]' (make bench does)", file=sys.stderr)
        return 2
    frames = vector_frames()
    source = "vectors" if frames else "build"
    if not frames:
        frames = built_frames()
    kept, ours_failed, peer_failed = usable(frames)
    records = sum(ours(frame) for frame in kept)
    print(f"source: {source} ({VECTORS.resolve() if source == 'vectors' else 'channels.mbus.build'}), "
          f"{len(frames)} telegrams; pyMeterBus fails on {peer_failed}, ours on {ours_failed}; "
          f"{len(kept)} decoded by both, {records} records")
    print(f"python {platform.python_version()}, pyMeterBus {meterbus.__version__}; "
          f"{args.rounds} rounds of {args.seconds:g} s per side")
    for frame in kept:   # warm up both
        ours(frame)
        pymeterbus(frame)
    rates: dict[str, list[float]] = {"ours": [], "pymeterbus": []}
    sides = {"ours": ours, "pymeterbus": pymeterbus}
    for i in range(args.rounds):
        # Alternate the order so that drift (other load, clock boost) favours neither.
        order = ("ours", "pymeterbus") if i % 2 == 0 else ("pymeterbus", "ours")
        for side in order:
            rates[side].append(measure(sides[side], kept, args.seconds))
        print(f"round {i + 1}: ours {rates['ours'][-1]:,.0f} telegrams/s, "
              f"pyMeterBus {rates['pymeterbus'][-1]:,.0f} telegrams/s, "
              f"ratio {rates['ours'][-1] / rates['pymeterbus'][-1]:.1f}")
    ours_rate = statistics.median(rates["ours"])
    peer_rate = statistics.median(rates["pymeterbus"])
    print(f"median: ours {ours_rate:,.0f} telegrams/s ({1e6 / ours_rate:.1f} µs each), "
          f"pyMeterBus {peer_rate:,.0f} telegrams/s ({1e6 / peer_rate:.1f} µs each)")
    print(json.dumps({
        "bench": "mbus_decode", "telegrams": len(kept), "records": records,
        "ours_per_s": round(ours_rate, 1), "pymeterbus_per_s": round(peer_rate, 1),
        "ratio": round(ours_rate / peer_rate, 2), "source": source,
        "excluded": len(frames) - len(kept), "peer": "pyMeterBus", "peer_version": meterbus.__version__,
        "rounds": args.rounds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
