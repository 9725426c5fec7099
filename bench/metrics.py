"""Cost of one ``GET /metrics`` scrape against prometheus_client rendering the same series.

A site of ``--channels`` Modbus RTU segments with ``--devices`` meters each
is built on a ``task.Clock`` (nothing opened, nothing polled; the devices'
statistics are filled in as polling would leave them).  Timed in the same
run, ``--repeat`` times each, best and median:

- **scrape**: ``scada.metrics.render(build_registry(runtime))``: what the
  route does: read every channel's and device's ``health()``, the
  historian, alarms and services, and render the text format;
- **peer**: prometheus_client alone rendering a registry that holds the
  same families with the same series as plain ``Gauge``/``Counter``
  objects whose values are already set: the text-rendering floor any
  exporter built on prometheus_client pays for that many series.

The engine's loop waits for the whole scrape, so the figure says how often a
site of that size can be scraped.  Prints human lines, then one JSON line
last: ``{"bench": "metrics", "devices", "series", "bytes", "scrape_ms",
"peer_ms", "ratio", ...}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from scada.app import Runtime  # noqa: E402
from scada.config import load_config  # noqa: E402
from scada.metrics import build_registry, render  # noqa: E402


def site_yaml(channels: int, devices: int) -> str:
    """Return a site of ``channels`` RTU segments (over TCP gateways nobody listens on) of ``devices`` meters."""
    lines = ["site: {name: metrics bench}", "history: {backend: sqlite, path: history.db}", "channels:"]
    for c in range(channels):
        lines += [f"  - name: seg{c}", "    type: modbus-rtu", f"    transport: {{tcp: 127.0.0.1:{1000 + c}}}",
                  "    devices:"]
        for d in range(devices):
            profile = "generic_heat_meter" if d % 10 == 0 else "generic_water_meter"
            lines.append(f"      - {{name: s{c}-m{d}, address: {d % 247 + 1}, profile: {profile}, poll: 60s}}")
    return "\n".join(lines) + "\n"


def fill_statistics(runtime) -> None:
    """Give every device the counters polling would have left (some timeouts and CRC errors)."""
    for index, (_, device) in enumerate(runtime.device_index()):
        stats = getattr(device, "stats", None)
        if stats is None:
            continue
        stats.requests = 1000 + index
        stats.responses = 990 + index
        stats.timeouts = index % 7
        stats.crc_errors = index % 3


def peer_registry(text: str) -> CollectorRegistry:
    """Return a registry of plain prometheus_client metrics holding the series of ``text``, values set."""
    # The scrape has no *_created series; plain counters would add one per child.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    for family in text_string_to_metric_families(text):
        if not family.samples or family.type not in ("gauge", "counter"):
            continue
        labels = sorted({key for sample in family.samples for key in sample.labels})
        kind = Counter if family.type == "counter" else Gauge
        metric = kind(family.name, family.documentation or family.name, labels, registry=registry)
        for sample in family.samples:
            child = metric.labels(**sample.labels) if labels else metric
            if kind is Counter:
                child.inc(max(0.0, sample.value))
            else:
                child.set(sample.value)
    return registry


def timed(fn, repeat: int) -> list[float]:
    """Return the seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print human lines, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=10, help="RTU segments (default: %(default)s)")
    parser.add_argument("--devices", type=int, default=200, help="meters per segment (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=20, help="scrapes timed per method (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "site.yaml"
        path.write_text(site_yaml(args.channels, args.devices), encoding="utf-8")
        cfg, _ = load_config(path)
        clock = Clock()
        clock.advance(1_795_000_000)
        runtime = Runtime(cfg, clock, base_dir=folder)
        try:
            fill_statistics(runtime)
            registry = build_registry(runtime)
            text = render(registry).decode()
            peer = peer_registry(text)
            peer_text = generate_latest(peer).decode()
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            peer_series = sum(1 for line in peer_text.splitlines() if line and not line.startswith("#"))
            render(registry)  # warm-up
            generate_latest(peer)
            scrape = timed(lambda: render(registry), args.repeat)
            floor = timed(lambda: generate_latest(peer), args.repeat)
        finally:
            runtime.store.close()
            runtime.historian.close()
    devices = args.channels * args.devices
    best, median = min(scrape) * 1000, statistics.median(scrape) * 1000
    peer_best, peer_median = min(floor) * 1000, statistics.median(floor) * 1000
    print(f"site: {args.channels} segments x {args.devices} meters = {devices} devices")
    print(f"scrape: {series} series, {len(text.encode()) / 1024:.0f} KiB; best {best:.1f} ms, median {median:.1f} ms")
    print(f"peer (prometheus_client, same series as plain metrics, values set): {peer_series} series; "
          f"best {peer_best:.1f} ms, median {peer_median:.1f} ms")
    print(f"scrape / peer: {best / peer_best:.2f} (best), {median / peer_median:.2f} (median)")
    print(json.dumps({"bench": "metrics", "devices": devices, "series": series, "bytes": len(text.encode()),
                      "scrape_ms": round(best, 2), "scrape_median_ms": round(median, 2),
                      "peer": "prometheus_client generate_latest of the same series as plain metrics",
                      "peer_series": peer_series, "peer_ms": round(peer_best, 2),
                      "peer_median_ms": round(peer_median, 2), "ratio": round(best / peer_best, 2),
                      "repeat": args.repeat, "python": platform.python_version()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
