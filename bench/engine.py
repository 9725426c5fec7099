"""Engine throughput: Modbus RTU transactions per second against pymodbus's asyncio client.

One process, one asyncio loop (DESIGN rule 1), Twisted's asyncioreactor on it,
``reactor.run()`` for the whole run.  Each round has up to three phases, each
with a fresh simulator (:class:`channels.sim.field.SimulatedField` serving
every segment as an RTU-over-TCP gateway on 127.0.0.1) and the same plan:

``engine``
    one :class:`channels.modbus.channel.ModbusChannel` per segment, ``poll:
    1ms`` (the bus is always busier than that, so every device is overdue and
    the scheduler never idles), samples into a :class:`tags.table.TagTable`
    as in the runtime (no historian, no subscribers).
``pymodbus``
    one ``pymodbus.client.AsyncModbusTcpClient`` (RTU framing over TCP) per
    segment, one coroutine per segment reading the engine's own request plan
    (each device's ``.blocks``) back to back and decoding the same points
    with ``convert_from_registers`` (BCD, which pymodbus lacks, with the
    engine's ``decode_point``).
``floor``
    a bare asyncio protocol per segment that writes the pre-encoded requests
    and counts answer bytes, nothing else: what the in-process simulator and
    loopback TCP cost by themselves, i.e. the ceiling any master can reach
    in this set-up (DESIGN rule 10: a physical limit in the same run).

Every phase: a warm-up, then a fixed wall window.  transactions/s counts
answered requests; CPU µs per transaction is the process CPU time of the
window divided by them, and *includes the in-process simulator's share*.
``--sim-process`` moves the simulator to a child process instead (CPU then
counts the master alone; the child's is reported beside it).

The last line of output is one JSON object (DESIGN "Contracts").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# DESIGN rule 1: the asyncio reactor goes in before anything imports the
# global reactor; main() calls it before importing any engine module.
from scada.app import install_reactor  # noqa: E402

PROFILES = ("generic_water_meter", "generic_electricity_meter", "generic_heat_meter")
SHORT = {"generic_water_meter": "water", "generic_electricity_meter": "el", "generic_heat_meter": "heat"}


def parse_args(argv=None) -> argparse.Namespace:
    """Return the command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=8, help="RTU segments (channels), default 8")
    p.add_argument("--devices", type=int, default=30, help="devices per segment (addresses 1..N), default 30")
    p.add_argument("--seconds", type=float, default=5.0, help="measured wall window per phase, default 5")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before each window, default 1")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of all phases, alternating engine/pymodbus order; medians are reported")
    p.add_argument("--retries", type=int, default=0, choices=(0, 1), help="retries (engine and peer), default 0")
    p.add_argument("--no-floor", action="store_true", help="skip the bare-client floor phase")
    p.add_argument("--sim-process", action="store_true",
                   help="run the simulator in a child process (not the default: then CPU figures are the "
                        "master's alone, and the two sides may use two cores)")
    p.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true",
                   help="run the first engine window under cProfile and print the top functions")
    p.add_argument("--top", type=int, default=25, help="functions to print with --profile, default 25")
    args = p.parse_args(argv)
    if not 1 <= args.devices <= 247:
        p.error("--devices must be 1-247 (Modbus addresses)")
    if args.segments < 1 or args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        p.error("--segments >= 1, --rounds >= 1, --seconds > 0 and --warmup >= 0 are required")
    return args


def write_site(path: Path, segments: int, devices: int, retries: int) -> None:
    """Write the benchmark site: S ``modbus-rtu`` channels over TCP, D mixed meters each."""
    lines = [
        "site: {name: bench-engine, timezone: Europe/Moscow}",
        "simulate: false",
        "channels:",
    ]
    for s in range(segments):
        lines += [
            f"  - name: seg{s:02d}",
            "    type: modbus-rtu",
            # The real port is the simulator's ephemeral one (tcp_override);
            # this one only has to pass validation.
            "    transport: {tcp: '127.0.0.1:1502', baudrate: 115200, parity: N}",
            "    timeout: 1s",
            f"    retries: {retries}",
            "    devices:",
        ]
        for a in range(1, devices + 1):
            profile = PROFILES[(a - 1) % len(PROFILES)]
            lines.append(f"      - {{name: s{s:02d}-{a:03d}-{SHORT[profile]}, address: {a}, "
                         f"profile: {profile}, poll: 1ms}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ helpers


class Window:
    """A wall/CPU window over a monotonically growing counter.

    ``child`` is the simulator's process id with ``--sim-process``: its CPU
    time is then reported separately.
    """

    child: int | None = None

    def __init__(self, count) -> None:
        self._count = count
        self.n0 = count()
        self.w0 = time.perf_counter()
        self.c0 = time.process_time()
        self.s0 = _process_cpu(self.child) if self.child else 0.0

    def close(self) -> dict:
        """Return count, wall, cpu and the derived rates since construction."""
        n = self._count() - self.n0
        wall = time.perf_counter() - self.w0
        cpu = time.process_time() - self.c0
        result = {"n": n, "wall": wall, "cpu": cpu, "tx_per_s": n / wall if wall > 0 else 0.0,
                  "cpu_us_per_tx": 1e6 * cpu / n if n else float("nan"), "cpu_pct": 100.0 * cpu / wall}
        if self.child:
            sim_cpu = _process_cpu(self.child) - self.s0
            result["sim_cpu_us_per_tx"] = 1e6 * sim_cpu / n if n else float("nan")
            result["sim_cpu_pct"] = 100.0 * sim_cpu / wall
        return result


def print_profile(prof: cProfile.Profile, top: int) -> None:
    """Print the top functions by own time, the engine's by cumulative time, and time by area."""
    stats = pstats.Stats(prof)
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue().replace(str(ROOT) + os.sep, ""))

    total = sum(v[2] for v in stats.stats.values())
    print(f"engine functions by cumulative time (share of {total:.3f} s profiled):")
    engine = [(key, v) for key, v in stats.stats.items() if _area(key[0], key[2]).startswith("engine")]
    for (filename, line, name), (_, calls, tottime, cumtime, _) in sorted(engine, key=lambda kv: -kv[1][3])[:15]:
        print(f"  {100 * cumtime / total:5.1f}% cum {100 * tottime / total:5.1f}% own  {calls:8d}  "
              f"{os.path.relpath(filename, ROOT)}:{line}({name})")
    areas: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():
        area = _area(filename, function)
        areas[area] = areas.get(area, 0.0) + tottime
    print("own time by area:")
    for area, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * t / total:5.1f}%  {t:7.3f} s  {area}")


#: Codec functions only the simulator calls (the slave side of the framer, encoding values).
_SIM_CODEC = frozenset({"decode_request", "_request", "_request_size", "encode_read_response", "encode_exception",
                        "encode_write_response", "add_crc", "encode_raw"})


def _area(filename: str, function: str = "") -> str:
    """Group a profiled function into the part of the system it belongs to."""
    if filename.startswith(str(ROOT)) and "site-packages" not in filename:
        rel = os.path.relpath(filename, ROOT)
        if rel.startswith("channels/sim/") or (rel.startswith("channels/modbus/") and function in _SIM_CODEC):
            return "simulator: " + rel
        if function == "crc16":
            return "shared: channels/modbus/framer.py crc16 (engine 1x, simulator 2x per transaction)"
        if function == "_reorder":
            return "shared: channels/modbus/points.py _reorder (simulator's encode_raw, engine's fallback)"
        return "engine: " + rel
    for lib in ("twisted", "asyncio", "pymodbus"):
        if f"{os.sep}{lib}{os.sep}" in filename:
            return lib
    if filename == "~":
        return "C calls (socket send/recv, epoll, struct, heapq, ...)"
    if os.path.basename(filename) in ("selectors.py", "__init__.py", "<string>", "weakref.py"):
        return "stdlib (selectors, namedtuple, dataclass __init__, weakref)"
    return "other: " + os.path.basename(filename)


# ------------------------------------------------------------------ simulator


class Sim:
    """Where the phases find the simulated segments: in this process, or in a child."""

    def __init__(self, reactor, loop, cfg, external: dict | None = None) -> None:
        self.reactor, self.loop, self.cfg = reactor, loop, cfg
        self.external = external

    async def open(self):
        """Return ``({channel: (host, port)}, stop)``; ``stop()`` is awaitable."""
        if self.external is not None:
            async def nothing() -> None:
                return None
            return self.external, nothing
        from channels.sim.field import SimulatedField

        field = SimulatedField(self.cfg, self.reactor)
        addresses = field.start_tcp(host="127.0.0.1", base_port=0)

        async def stop() -> None:
            await field.stop().asFuture(self.loop)
        return addresses, stop


def serve_sim(args) -> int:
    """Child side of ``--sim-process``: serve the site, print the ports, stop at EOF on stdin."""
    reactor, loop = install_reactor()
    from channels.sim.field import SimulatedField

    cfg = _site_config(args)
    field = SimulatedField(cfg, reactor)
    addresses = field.start_tcp(host="127.0.0.1", base_port=0)
    print(json.dumps(addresses), flush=True)

    def stdin_ready() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            field.stop().addBoth(lambda _: reactor.stop())

    loop.add_reader(sys.stdin.fileno(), stdin_ready)
    reactor.run(installSignalHandlers=False)
    return 0


def _start_sim_process(args):
    """Start the simulator child; return ``(process, addresses)``."""
    import subprocess

    argv = [sys.executable, os.path.abspath(__file__), "--serve-sim", "--segments", str(args.segments),
            "--devices", str(args.devices), "--retries", str(args.retries)]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line:
        child.wait()
        raise RuntimeError(f"the simulator process exited ({child.returncode}) before serving")
    return child, {name: tuple(addr) for name, addr in json.loads(line).items()}


def _process_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _site_config(args):
    """Write the site to a temporary file and load it through the real config loader."""
    from scada.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        site = Path(tmp) / "site.yaml"
        write_site(site, args.segments, args.devices, args.retries)
        # Warnings are expected: the poll budget check says 1 ms polls cannot be met.
        cfg, _warnings = load_config(site)
    return cfg


# ------------------------------------------------------------------ phases


async def engine_phase(reactor, sim: Sim, cfg, args, prof: cProfile.Profile | None) -> dict:
    """Poll every segment with the engine; return the window's figures."""
    from channels.modbus.channel import ModbusChannel
    from tags.table import TagTable

    addresses, stop_sim = await sim.open()
    table = TagTable()
    channels = []
    for ch in cfg.channels:
        channel = ModbusChannel(reactor, ch, cfg.profiles, table.update_many, tcp_override=addresses[ch.name])
        for tagdef in channel.tagdefs:
            table.define(tagdef)
        channels.append(channel)
    devices = [d for c in channels for d in c.devices]

    def answered() -> int:
        return sum(d.stats.responses for d in devices)

    def failed() -> int:
        return sum(d.stats.requests - d.stats.responses for d in devices)

    for channel in channels:
        channel.start()
    await asyncio.sleep(args.warmup)
    down = [c.name for c in channels if not c.scheduler.link_up_now]
    if down:
        raise RuntimeError(f"engine links not up after warm-up: {', '.join(down)}")
    failed0 = failed()
    per0 = [sum(d.stats.responses for d in c.devices) for c in channels]
    polls0 = [d.stats.polls for d in devices]
    window = Window(answered)
    if prof is not None:
        prof.enable()
    await asyncio.sleep(args.seconds)
    if prof is not None:
        prof.disable()
    result = window.close()
    result["failed"] = failed() - failed0
    result["per_segment"] = [(sum(d.stats.responses for d in c.devices) - n0) / result["wall"]
                             for c, n0 in zip(channels, per0)]
    result["min_polls"] = min(d.stats.polls - p0 for d, p0 in zip(devices, polls0))
    result["tags"] = len(table)
    result["good_tags"] = sum(1 for s in table.states() if s.quality.value == "good")
    for channel in channels:
        channel.stop()
    await stop_sim()
    return result


def _peer_decoder(client, point, block_start):
    """Return a function registers -> value for ``point`` using pymodbus's converter.

    BCD has no pymodbus data type: those points go through the engine's own
    ``channels.modbus.points.decode_point`` on the registers' bytes.
    """
    from channels.modbus.points import TYPE_REGISTERS, decode_point

    lo = point.register - block_start
    hi = lo + TYPE_REGISTERS[point.type]
    dt = client.DATATYPE
    kinds = {"u16": dt.UINT16, "i16": dt.INT16, "u32": dt.UINT32, "i32": dt.INT32, "f32": dt.FLOAT32,
             "u64": dt.UINT64, "i64": dt.INT64, "f64": dt.FLOAT64}
    scale, offset, word_order = point.scale, point.offset, point.word_order
    if point.type in kinds:
        kind, convert = kinds[point.type], client.convert_from_registers

        def decode(registers):
            return convert(registers[lo:hi], kind, word_order=word_order) * scale + offset
    else:
        def decode(registers):
            regs = registers[lo:hi]
            return decode_point(point, struct.pack(f">{len(regs)}H", *regs), point.register)
    return decode


async def peer_phase(sim: Sim, plan_channels, args) -> dict:
    """Poll the same plan with pymodbus's AsyncModbusTcpClient (RTU framing); return the window."""
    import pymodbus
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusTcpClient

    from channels.modbus.framer import READ_HOLDING

    addresses, stop_sim = await sim.open()
    clients = []
    plans = []
    for channel in plan_channels:
        host, port = addresses[channel.name]
        client = AsyncModbusTcpClient(host, port=port, framer=FramerType.RTU, timeout=1, retries=args.retries,
                                      name=channel.name)
        if not await client.connect():
            raise RuntimeError(f"pymodbus cannot connect to {host}:{port}")
        clients.append(client)
        plan = []
        for device in channel.devices:
            for block in device.blocks:
                method = client.read_holding_registers if block.function == READ_HOLDING else client.read_input_registers
                decoders = [(p.tag, _peer_decoder(client, p, block.start)) for p in block.points]
                plan.append((method, block.start, block.count, device.unit, decoders))
        plans.append(plan)

    counts = [0] * len(clients)
    failures = [0] * len(clients)
    values: dict[str, float] = {}
    running = True

    async def poll_segment(i: int) -> None:
        plan = plans[i]
        while running:
            for method, start, count, unit, decoders in plan:
                try:
                    rr = await method(start, count=count, device_id=unit)
                except Exception:  # noqa: BLE001 - a timeout counts as a failed transaction
                    failures[i] += 1
                    continue
                if rr.isError():
                    failures[i] += 1
                    continue
                counts[i] += 1
                registers = rr.registers
                for tag, decode in decoders:
                    values[tag] = decode(registers)
                if not running:
                    return

    tasks = [asyncio.ensure_future(poll_segment(i)) for i in range(len(clients))]
    await asyncio.sleep(args.warmup)
    failed0, per0 = sum(failures), list(counts)
    window = Window(lambda: sum(counts))
    await asyncio.sleep(args.seconds)
    result = window.close()
    result["failed"] = sum(failures) - failed0
    result["per_segment"] = [(n - n0) / result["wall"] for n, n0 in zip(counts, per0)]
    result["tags"] = len(values)
    result["version"] = pymodbus.__version__
    running = False
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        client.close()
    await stop_sim()
    return result


class _BareClient(asyncio.Protocol):
    """Write pre-encoded requests one at a time; count an answer once its bytes are in.

    No CRC check, no decoding, no timeout: the least a master can do, so
    that the phase measures the simulator and the sockets.
    """

    def __init__(self, plan: list[tuple[bytes, int]]) -> None:
        self.plan = plan
        self.index = 0
        self.need = 0
        self.got = 0
        self.count = 0
        self.running = True
        self.transport = None

    def connection_made(self, transport) -> None:
        """Send the first request."""
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next()

    def data_received(self, data: bytes) -> None:
        """Count bytes until the expected answer is complete, then send the next request."""
        self.got += len(data)
        if self.got >= self.need:
            self.count += 1
            if self.running:
                self._next()

    def _next(self) -> None:
        request, self.need = self.plan[self.index]
        self.index = (self.index + 1) % len(self.plan)
        self.got = 0
        self.transport.write(request)


async def floor_phase(loop, sim: Sim, plan_channels, args) -> dict:
    """Drive the simulator with bare clients; return the window."""
    from channels.modbus.framer import expected_response_size

    addresses, stop_sim = await sim.open()
    protocols = []
    for channel in plan_channels:
        plan = [(tx.request, expected_response_size(tx.context.function, tx.context.count))
                for device in channel.devices for tx in device.transactions]
        host, port = addresses[channel.name]
        _, protocol = await loop.create_connection(lambda plan=plan: _BareClient(plan), host, port)
        protocols.append(protocol)
    await asyncio.sleep(args.warmup)
    per0 = [p.count for p in protocols]
    window = Window(lambda: sum(p.count for p in protocols))
    await asyncio.sleep(args.seconds)
    result = window.close()
    result["failed"] = 0
    result["per_segment"] = [(p.count - n0) / result["wall"] for p, n0 in zip(protocols, per0)]
    for protocol in protocols:
        protocol.running = False
        protocol.transport.close()
    await stop_sim()
    return result


# ------------------------------------------------------------------ report


def _median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def report(args, rounds: list[dict]) -> dict:
    """Print the human-readable figures; return the JSON object (medians over rounds)."""
    s, d = args.segments, args.devices

    def line(name: str, r: dict) -> None:
        seg = r["per_segment"]
        print(f"  {name:<9} {r['tx_per_s']:8.0f} tx/s  {r['cpu_us_per_tx']:6.1f} CPU µs/tx  "
              f"CPU {r['cpu_pct']:5.1f}%  failed {r['failed']}  "
              f"per bus {min(seg):.0f}-{max(seg):.0f} tx/s, one request every "
              f"{1e6 * len(seg) / sum(seg):.0f} µs"
              + (f"; simulator process {r['sim_cpu_us_per_tx']:.1f} µs/tx, CPU {r['sim_cpu_pct']:.0f}%"
                 if "sim_cpu_us_per_tx" in r else ""))

    where = ("simulator in a child process (CPU figures are the master's alone)" if args.sim_process
             else "simulator in the same process (CPU figures include it)")
    print(f"{s} segments x {d} devices = {s * d} devices; {args.seconds:g} s window after {args.warmup:g} s "
          f"warm-up per phase; retries {args.retries}; {where}")
    phases = ["engine", "pymodbus"] + ([] if args.no_floor else ["floor"])
    for i, rnd in enumerate(rounds, 1):
        print(f"round {i}:")
        for name in phases:
            line(name, rnd[name])
    engine = [r["engine"] for r in rounds]
    peer = [r["pymodbus"] for r in rounds]
    tx, cpu = _median(engine, "tx_per_s"), _median(engine, "cpu_us_per_tx")
    ptx, pcpu = _median(peer, "tx_per_s"), _median(peer, "cpu_us_per_tx")
    ratio = tx / ptx if ptx else float("inf")
    label = "median of %d rounds" % len(rounds) if len(rounds) > 1 else "result"
    print(f"{label}: engine {tx:.0f} tx/s at {cpu:.1f} µs; pymodbus {ptx:.0f} tx/s at {pcpu:.1f} µs; "
          f"ratio {ratio:.2f}x (targets: >= 10000 tx/s, >= 3x)")
    last = engine[-1]
    print(f"engine check: {last['good_tags']}/{last['tags']} tags good, every device polled >= "
          f"{last['min_polls']} times in the window")
    extra = {}
    if not args.no_floor:
        floor = [r["floor"] for r in rounds]
        ftx, fcpu = _median(floor, "tx_per_s"), _median(floor, "cpu_us_per_tx")
        if args.sim_process:
            print(f"floor (bare client): {ftx:.0f} tx/s, the simulator's ceiling; {fcpu:.1f} µs/tx in this "
                  f"process, the least any asyncio master spends, so a master can use at most "
                  f"{pcpu / fcpu:.1f}x less CPU per transaction than pymodbus")
        else:
            print(f"floor (simulator + sockets, bare client): {ftx:.0f} tx/s at {fcpu:.1f} µs; "
                  f"so the engine's own share is ~{cpu - fcpu:.1f} µs/tx, pymodbus's ~{pcpu - fcpu:.1f} µs/tx, "
                  f"and no master can beat pymodbus by more than {pcpu / fcpu:.1f}x in this set-up")
        extra = {"floor_tx_per_s": round(ftx, 1), "floor_cpu_us_per_tx": round(fcpu, 1)}
    return {
        "bench": "engine",
        "segments": s,
        "devices": s * d,
        "tx_per_s": round(tx, 1),
        "cpu_us_per_tx": round(cpu, 1),
        "peer": "pymodbus",
        "peer_version": peer[0]["version"],
        "peer_tx_per_s": round(ptx, 1),
        "peer_cpu_us_per_tx": round(pcpu, 1),
        "ratio": round(ratio, 2),
        **extra,
        **({"rounds": len(rounds)} if len(rounds) > 1 else {}),
        **({"sim_process": True} if args.sim_process else {}),
        **({"profiled": True} if args.profile else {}),
    }


def main(argv=None) -> int:
    """Run every phase under one reactor; print figures and the JSON line."""
    args = parse_args(argv)
    if args.serve_sim:
        return serve_sim(args)
    reactor, loop = install_reactor()
    from twisted.internet.defer import Deferred

    from channels.modbus.channel import ModbusChannel

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # pymodbus logs every failed request; the failure counters say enough.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # Log lines cost CPU inside the measured window; counters say enough.
    logging.getLogger("channels.modbus.driver").setLevel(logging.ERROR)
    cfg = _site_config(args)
    child = None
    sim = Sim(reactor, loop, cfg)
    if args.sim_process:
        child, addresses = _start_sim_process(args)
        Window.child = child.pid
        sim = Sim(reactor, loop, cfg, addresses)
    # The request plan of every segment, built by the engine itself and never
    # started: the peer and the floor send exactly these reads.
    plan_channels = [ModbusChannel(reactor, ch, cfg.profiles, lambda samples: None, tcp_override=("127.0.0.1", 1))
                     for ch in cfg.channels]
    prof = cProfile.Profile() if args.profile else None
    rounds: list[dict] = []
    outcome: dict = {}

    async def run() -> None:
        for i in range(args.rounds):
            rnd: dict = {}
            # Alternate the order so that drift (other load, thermal) does
            # not favour one side.
            first_engine = i % 2 == 0
            if not first_engine:
                rnd["pymodbus"] = await peer_phase(sim, plan_channels, args)
            rnd["engine"] = await engine_phase(reactor, sim, cfg, args, prof if i == 0 else None)
            if first_engine:
                rnd["pymodbus"] = await peer_phase(sim, plan_channels, args)
            if not args.no_floor:
                rnd["floor"] = await floor_phase(loop, sim, plan_channels, args)
            rounds.append(rnd)

    def start() -> None:
        def failed(failure):
            outcome["error"] = failure

        d = Deferred.fromFuture(asyncio.ensure_future(run()))
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        if child is not None:
            child.stdin.close()
            child.wait(timeout=10)
    if "error" in outcome:
        outcome["error"].printTraceback(file=sys.stderr)
        return 1
    if prof is not None:
        print(f"--- cProfile of the first engine window ({args.seconds:g} s; its figures are slowed by it) ---")
        print_profile(prof, args.top)
    result = report(args, rounds)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
