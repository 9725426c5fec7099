"""Dial-in modems: thousands of simulated GPRS modems on one modem server, each polled.

Target from the issue: 5,000 concurrent modems in one process.

One process (DESIGN rule 1): Twisted's asyncioreactor on an asyncio loop, as
``scada run`` has it (``--reactor epoll``: Twisted's own epoll reactor),
``reactor.run()`` for the whole run.  The site is a temporary YAML file
loaded by the real config loader: ``modem_server:`` with the demo's modem
type (``LOGIN:<15-digit IMEI>\\r\\n``, heartbeat ``PING\\r\\n`` after 30 s
of silence) and N ``modbus-rtu`` channels with ``transport: {modem: IMEI}``,
one ``generic_water_meter`` each (one read of 5 holding registers per
poll, no archive back-fill).  It is wired as the runtime wires it:
``scada.remote.build_modem_server``, one
:class:`channels.modbus.channel.ModbusChannel` per channel with
``link_factory=scada.remote.modem_link_factory(server, channel)``, samples
into a :class:`tags.table.TagTable`.  The meters are
:class:`channels.sim.field.SimulatedField`'s, and its ``start_modems``
dials one :class:`channels.sim.modem.SimModem` per channel in to the
server over loopback TCP: both ends of every connection live in this
process (``--sim-process``: the modems run in a child process instead).

Phases: build; dial every modem at once (the server-restart case: every
modem redials within seconds) and time until all are identified; a
warm-up; a window in which every meter is polled every ``--period``
seconds (the paced window: ``tx_per_s``, ``timeouts``, connections held,
RSS); a window in which every meter is polled back to back (the saturated
window: the set-up's capacity).  Then, in a child process (a clean heap
and fd table), the peer: N plain asyncio client/server connection pairs
on loopback doing request/response ping-pong with the same frame sizes
(8-byte request, 15-byte answer) back to back, i.e. what loopback TCP and
an asyncio loop carry on this machine with nothing else to do (DESIGN
rule 10: a physical limit in the same run).

The last line of output is one JSON object (DESIGN "Contracts").
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: File descriptors kept free for everything that is not a modem socket
#: (listeners, epoll, the config file, stdio, the peer child's pipe).
FD_RESERVE = 100
#: The registration packet's ID: the demo's IMEI pattern, 15 digits.
IMEI_PREFIX = "86"
#: Poll period of the saturated window (the shortest a site file accepts).
SATURATED_PERIOD = 0.001
#: What the simulated meters are and how they are read (one read of 5 holding registers).
PROFILE = "generic_water_meter"


def parse_args(argv=None) -> argparse.Namespace:
    """Return the command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modems", type=int, default=5000, help="simulated modems (one meter each), default 5000")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window, default 20")
    p.add_argument("--period", type=float, default=1.0, help="poll period of every meter in seconds, default 1")
    p.add_argument("--saturate", type=float, default=10.0,
                   help="then a window of this many seconds with every meter polled back to back (1 ms period), "
                        "the set-up's capacity; 0: skip; default 10")
    p.add_argument("--spread", action="store_true",
                   help="spread the first polls of the channels over one period (the runtime starts every channel's "
                        "first poll at once, so single-meter modem channels poll in step)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds between all identified and the window, "
                                                                "default 3")
    p.add_argument("--connect-timeout", type=float, default=120.0,
                   help="give up waiting for every modem to be identified after this, default 120 s")
    p.add_argument("--reactor", choices=("asyncio", "epoll"), default="asyncio",
                   help="asyncio: Twisted's asyncioreactor as in production (default); epoll: Twisted's epollreactor")
    p.add_argument("--no-peer", action="store_true", help="skip the raw loopback ping-pong")
    p.add_argument("--heap", action="store_true",
                   help="trace Python allocations (tracemalloc) while building and connecting: KiB per modem "
                        "for objects and connections (slows the ramp)")
    p.add_argument("--profile", action="store_true",
                   help="run the saturated window (the paced one with --saturate 0) under cProfile and print the "
                        "top functions (slows it)")
    p.add_argument("--top", type=int, default=25, help="functions to print with --profile, default 25")
    p.add_argument("--quick", action="store_true", help="smoke run: 200 modems, 5 s window, 1 s warm-up")
    p.add_argument("--sim-process", action="store_true",
                   help="run the simulated modems in a child process (then CPU and RSS are the server's alone)")
    p.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-modems", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.modems, args.seconds, args.warmup, args.saturate = 200, 5.0, 1.0, min(args.saturate, 3.0)
    if args.modems < 1 or args.seconds <= 0 or args.period <= 0 or args.warmup < 0 or args.saturate < 0:
        p.error("--modems >= 1, --seconds > 0, --period > 0, --warmup >= 0 and --saturate >= 0 are required")
    if args.modems >= 10 ** 13:
        p.error("--modems must fit in a 15-digit IMEI")
    return args


# ------------------------------------------------------------------ helpers


def raise_fd_limit(modems: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (modems that fit, the limit).

    Each modem is two sockets in one process (the simulator's client end and
    the server's accepted end; the peer's pairs likewise), so N modems need
    2N descriptors plus a few.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(2 * modems + FD_RESERVE, 1024)
    if soft == resource.RLIM_INFINITY:
        want = soft
    elif soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    limit = want if want != resource.RLIM_INFINITY else 1 << 30
    return min(modems, max(1, (limit - FD_RESERVE) // 2)), limit


def rss_kb(pid: int | str = "self") -> int:
    """Return a process's resident set size in KiB (Linux /proc; default: this one)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def modem_id(i: int) -> str:
    """Return the 15-digit IMEI of modem ``i``."""
    return f"{IMEI_PREFIX}{i:013d}"


def write_site(path: Path, modems: int, period: float) -> None:
    """Write the benchmark site: a modem server and one modem channel with one water meter per modem."""
    lines = [
        "site: {name: bench-modems, timezone: Europe/Moscow}",
        "simulate: false",
        "modem_server:",
        # The port is replaced by an ephemeral one before the server starts;
        # the config accepts no port 0.
        "  listen: 127.0.0.1:5020",
        r"  id_pattern: '^LOGIN:(?P<id>\d{15})\r\n'",
        r"  heartbeat: '^PING\r\n'",
        "  identify_timeout: 30s",
        "  idle_timeout: 3m",
        "channels:",
    ]
    poll = f"{period * 1000:g}ms"
    for i in range(modems):
        imei = modem_id(i)
        lines += [
            f"  - name: m{i:05d}",
            "    type: modbus-rtu",
            f"    transport: {{modem: '{imei}', baudrate: 9600, parity: E}}",
            # The demo's GPRS channel: 300 ms plus the modem allowance the
            # channel adds (1.5 s) plus the 9600 Bd frame times.
            "    timeout: 300ms",
            # No retries: a timeout shows as a timeout instead of a slower poll.
            "    retries: 0",
            f"    sim: {{register: \"LOGIN:{imei}\\r\\n\", heartbeat: \"PING\\r\\n\", heartbeat_every: 30}}",
            "    devices:",
            f"      - {{name: m{i:05d}-water, address: 1, profile: {PROFILE}, poll: {poll}}}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_site(modems: int, period: float):
    """Write the site to a temporary file and load it through the real config loader."""
    from scada.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-modems-") as tmp:
        site = Path(tmp) / "site.yaml"
        write_site(site, modems, period)
        cfg, _warnings = load_config(site)
    return cfg


def frame_sizes() -> tuple[bytes, int]:
    """Return the water meter's read request and the size of its answer."""
    from channels.modbus.framer import READ_HOLDING, encode_read, expected_response_size

    return encode_read(1, READ_HOLDING, 0, 5), expected_response_size(READ_HOLDING, 5)


# ------------------------------------------------------------------ modems


def install(kind: str):
    """Install the chosen reactor before anything imports the global one; return it."""
    if kind == "asyncio":
        from scada.app import install_reactor

        reactor, _loop = install_reactor()
        return reactor
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    return reactor


class InProcessModems:
    """The simulated modems in this process: ``SimulatedField.start_modems``."""

    def __init__(self, cfg, reactor) -> None:
        from channels.sim.field import SimulatedField

        self.field = SimulatedField(cfg, reactor)
        self.modems: dict = {}

    def start(self, port: int) -> None:
        """Dial every modem in to ``127.0.0.1:port``."""
        self.modems = self.field.start_modems("127.0.0.1", port)

    def cpu(self) -> None:
        """Return None: the simulator's CPU time is part of this process's."""
        return None

    def figures(self) -> dict:
        """Return the modems' own counters."""
        modems = self.modems.values()
        return {"where": "in process", "connected": sum(1 for m in modems if m.connected),
                "connects": sum(m.connects for m in modems), "dials": sum(m.dials for m in modems)}

    def stop(self):
        """Hang every modem up; return a Deferred."""
        return self.field.stop()


class ChildModems:
    """The simulated modems in a child process (``--sim-process``): same site, same simulator.

    The child loads the site and builds its meters first and says so; it
    dials only when told, so that the ramp is timed from the dialling.
    """

    def __init__(self, args) -> None:
        argv = [sys.executable, os.path.abspath(__file__), "--serve-modems", "--modems", str(args.modems),
                "--period", str(args.period), "--reactor", args.reactor]
        self.child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Blocking, before anything is timed: the child's config load and build.
        if self.child.stdout.readline().strip() != "ready":
            self.child.wait()
            raise RuntimeError(f"the simulator process exited ({self.child.returncode}) before it was ready")

    def start(self, port: int) -> None:
        """Tell the child to dial every modem in to ``127.0.0.1:port`` at once."""
        self.child.stdin.write(f"{port}\n")
        self.child.stdin.flush()

    def cpu(self) -> float:
        """Return the child's CPU seconds so far."""
        return _process_cpu(self.child.pid)

    def figures(self) -> dict:
        """Return where the simulator runs and its resident set size."""
        return {"where": "child process", "rss_kb": rss_kb(self.child.pid)}

    async def stop(self) -> None:
        """Close the child's stdin: it hangs every modem up and exits."""
        self.child.stdin.close()
        # Blocks the reactor for the child's shutdown; nothing is measured any more.
        self.child.stdout.read()
        self.child.wait(timeout=60)


def serve_modems(args) -> int:
    """Child side of ``--sim-process``: build, say ``ready``, dial in to the port read from stdin, stop at EOF."""
    args.modems, _ = raise_fd_limit(args.modems)
    reactor = install(args.reactor)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from twisted.internet import stdio
    from twisted.internet.protocol import Protocol

    sim = InProcessModems(load_site(args.modems, args.period), reactor)

    class Control(Protocol):
        """The port to dial arrives as a line on stdin; EOF means hang up and exit."""

        pending = b""

        def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted callback
            self.pending += data
            if b"\n" in self.pending and not sim.modems:
                sim.start(int(self.pending.split(b"\n", 1)[0]))

        def connectionLost(self, reason=None) -> None:  # noqa: N802 - Twisted callback
            sim.stop().addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(stdio.StandardIO, Control(), reactor=reactor)
    print("ready", flush=True)
    reactor.run(installSignalHandlers=False)
    return 0


def _process_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def modems_phase(reactor, args, figures: dict, prof=None) -> None:
    """Build, dial in, poll; fill ``figures``; ``prof`` profiles the saturated window (else the paced one)."""
    from twisted.internet.task import deferLater

    from channels.modbus.channel import ModbusChannel
    from scada.remote import build_modem_server, modem_link_factory
    from tags.table import TagTable

    async def sleep(seconds: float) -> None:
        await deferLater(reactor, seconds, lambda: None)

    n = args.modems
    # The CRC's 64 Ki-entry word table is built on first use (2.6 MB, once
    # per process): build it now so that it does not count per modem.
    from channels.modbus.framer import crc16

    crc16(bytes(12))
    gc.collect()
    rss = {"start": rss_kb()}
    t = time.perf_counter()
    cfg = load_site(n, args.period)
    figures["config_s"] = time.perf_counter() - t
    gc.collect()
    rss["config"] = rss_kb()

    # A child simulator loads and builds before anything is timed here.
    sim = ChildModems(args) if args.sim_process else None
    if args.heap:
        tracemalloc.start()
    t = time.perf_counter()
    server = build_modem_server(cfg, reactor)
    server.listen_port = 0
    table = TagTable()
    channels = []
    for ch in cfg.channels:
        channel = ModbusChannel(reactor, ch, cfg.profiles, table.update_many,
                                link_factory=modem_link_factory(server, ch))
        for tagdef in channel.tagdefs:
            table.define(tagdef)
        channels.append(channel)
    if sim is None:
        sim = InProcessModems(cfg, reactor)
    devices = [d for c in channels for d in c.devices]
    figures["build_s"] = time.perf_counter() - t
    gc.collect()
    rss["built"] = rss_kb()
    if args.heap:
        heap_built = tracemalloc.get_traced_memory()[0]

    server.start()
    if args.spread:
        # PolledChannel.start() with the first polls spread over one period
        # across channels (it spreads only the devices of one channel).
        now = reactor.seconds()
        for i, channel in enumerate(channels):
            for device in channel.devices:
                channel.scheduler.add_poller(device, now + args.period * i / n)
            channel.link.start()
            channel.scheduler.start()
    else:
        for channel in channels:
            channel.start()
    t0 = time.perf_counter()
    sim.start(server.port)
    figures["dial_calls_s"] = time.perf_counter() - t0
    connected_at = identified_at = None
    deadline = t0 + args.connect_timeout
    timeline = []
    next_mark = 0.25
    while True:
        now = time.perf_counter()
        if connected_at is None and server.accepted >= n:
            connected_at = now
        if server.identifications >= n:
            identified_at = now
            connected_at = connected_at or now
        if now - t0 >= next_mark or identified_at is not None:
            timeline.append((round(now - t0, 2), server.accepted, server.identifications))
            next_mark += 0.25
        if identified_at is not None or now >= deadline:
            break
        await sleep(0.01)
    figures["connect_s"] = None if connected_at is None else connected_at - t0
    figures["identify_s"] = None if identified_at is None else identified_at - t0
    figures["identified_after_ramp"] = sum(1 for link in server.links.values() if link.connected)
    figures["ramp"] = timeline
    if args.heap:
        gc.collect()
        heap_connected = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        figures["heap"] = {"objects": heap_built, "connections": heap_connected - heap_built}
    gc.collect()
    rss["connected"] = rss_kb()

    await sleep(args.warmup)

    def totals() -> tuple[int, int, int, int]:
        responses = requests = timeouts = polls = 0
        for d in devices:
            s = d.stats
            responses += s.responses
            requests += s.requests
            timeouts += s.timeouts
            polls += s.polls
        return responses, requests, timeouts, polls

    r0, q0, to0, p0 = totals()
    per0 = [d.stats.responses for d in devices]
    paced_prof = prof if not args.saturate else None
    w0, c0, s0 = time.perf_counter(), time.process_time(), sim.cpu()
    if paced_prof is not None:
        paced_prof.enable()
    await sleep(args.seconds)
    if paced_prof is not None:
        paced_prof.disable()
    wall, cpu, s1 = time.perf_counter() - w0, time.process_time() - c0, sim.cpu()
    r1, q1, to1, p1 = totals()
    per = [d.stats.responses - a for d, a in zip(devices, per0)]
    health = server.health()
    gc.collect()
    rss["end"] = rss_kb()

    answered = r1 - r0
    figures.update(
        wall=wall, cpu=cpu, answered=answered, requests=q1 - q0, timeouts=to1 - to0, polls=p1 - p0,
        tx_per_s=answered / wall, cpu_pct=100.0 * cpu / wall,
        cpu_us_per_tx=1e6 * cpu / answered if answered else None,
        min_answered=min(per), max_answered=max(per),
        never_answered=sum(1 for x in per if x == 0),
        connected=health["identified"], connections=health["connections"], server=health,
        sim=sim.figures(), sim_cpu_pct=None if s0 is None else 100.0 * (s1 - s0) / wall,
        good_tags=sum(1 for s in table.states() if s.quality.value == "good"), tags=len(table),
        rss_kb=rss,
    )

    if args.saturate > 0:
        # Every meter overdue all the time: each bus polls back to back, as
        # the peer's pairs ping-pong.  1 ms is the shortest period a site
        # file may give (``poll`` must be positive); one device per bus
        # means one wake-up timer per poll, as at any real period.
        for d in devices:
            d.period = SATURATED_PERIOD
        await sleep(1.0)
        r0, q0, to0, p0 = totals()
        w0, c0, s0 = time.perf_counter(), time.process_time(), sim.cpu()
        if prof is not None:
            prof.enable()
        await sleep(args.saturate)
        if prof is not None:
            prof.disable()
        wall, cpu, s1 = time.perf_counter() - w0, time.process_time() - c0, sim.cpu()
        r1, q1, to1, p1 = totals()
        answered = r1 - r0
        health = server.health()
        gc.collect()
        rss["saturated"] = rss_kb()
        figures["saturated"] = {
            "wall": wall, "answered": answered, "requests": q1 - q0, "timeouts": to1 - to0,
            "tx_per_s": answered / wall, "cpu_pct": 100.0 * cpu / wall,
            "cpu_us_per_tx": 1e6 * cpu / answered if answered else None,
            "connected": health["identified"], "server": health,
            "sim_cpu_pct": None if s0 is None else 100.0 * (s1 - s0) / wall,
        }

    # Modems first: with the server's side closed first they would redial.
    await sim.stop()
    for channel in channels:
        channel.stop()
    done = server.stop()
    if done is not None:
        await done
    await sleep(0.2)


def run_modems(args) -> dict:
    """Run the modem phase under the reactor; return its figures (raises on failure)."""
    reactor = install(args.reactor)
    from twisted.internet.defer import Deferred

    figures: dict = {}
    outcome: dict = {}
    prof = cProfile.Profile() if args.profile else None

    def start() -> None:
        d = Deferred.fromCoroutine(modems_phase(reactor, args, figures, prof))
        d.addErrback(lambda failure: outcome.update(error=failure))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    if "error" in outcome:
        outcome["error"].raiseException()
    if prof is not None:
        figures["profile"] = prof
    return figures


def print_profile(prof, top: int) -> None:
    """Print the top functions by own time and own time grouped by area."""
    stats = pstats.Stats(prof)
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue().replace(str(ROOT) + os.sep, ""))
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    areas: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        areas[_area(filename)] = areas.get(_area(filename), 0.0) + tottime
    print("own time by area:")
    for area, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * t / total:5.1f}%  {t:7.3f} s  {area}")


def _area(filename: str) -> str:
    """Group a profiled function by the part of the system it belongs to."""
    if filename.startswith(str(ROOT)) and "site-packages" not in filename:
        rel = os.path.relpath(filename, ROOT)
        if rel.startswith("channels/sim/"):
            return "simulator: " + rel
        if rel.startswith("channels/transports/modem"):
            return "modem server: " + rel
        return "engine: " + rel
    for lib in ("twisted", "asyncio"):
        if f"{os.sep}{lib}{os.sep}" in filename:
            return lib
    if filename == "~":
        return "C calls (socket send/recv, epoll, heapq, ...)"
    return "other: " + os.path.basename(filename)


# ------------------------------------------------------------------ peer


class _Answer(asyncio.Protocol):
    """Server end of a peer pair: a fixed answer for every complete request."""

    def __init__(self, request_size: int, answer: bytes) -> None:
        self.size = request_size
        self.answer = answer
        self.got = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        while self.got >= self.size:
            self.got -= self.size
            self.transport.write(self.answer)


class _Ask(asyncio.Protocol):
    """Client end of a peer pair: the next request once the whole answer is in."""

    def __init__(self, request: bytes, answer_size: int) -> None:
        self.request = request
        self.need = answer_size
        self.got = 0
        self.count = 0
        self.running = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def go(self) -> None:
        self.running = True
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.need:
            self.got -= self.need
            self.count += 1
            if self.running:
                self.transport.write(self.request)


async def _peer(args) -> dict:
    """Open N loopback pairs, ping-pong back to back for the window; return the figures."""
    loop = asyncio.get_running_loop()
    request, answer_size = frame_sizes()
    answer = bytes(answer_size)
    n = args.modems
    gc.collect()
    rss0 = rss_kb()
    server = await loop.create_server(lambda: _Answer(len(request), answer), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    clients: list[_Ask] = []
    t0 = time.perf_counter()
    # In batches: a burst of thousands of SYNs overflows the listen backlog,
    # and the dropped ones would wait a second for their retransmission.
    for first in range(0, n, 500):
        pairs = await asyncio.gather(*(loop.create_connection(lambda: _Ask(request, answer_size), "127.0.0.1", port)
                                       for _ in range(first, min(n, first + 500))))
        clients += [protocol for _, protocol in pairs]
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(0.5)
    gc.collect()
    rss1 = rss_kb()
    for client in clients:
        client.go()
    await asyncio.sleep(min(1.0, args.warmup or 1.0))
    n0 = sum(c.count for c in clients)
    w0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(args.seconds)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    answered = sum(c.count for c in clients) - n0
    for client in clients:
        client.running = False
        client.transport.close()
    server.close()
    await server.wait_closed()
    return {"pairs": n, "connect_s": connect_s, "tx_per_s": answered / wall, "cpu_pct": 100.0 * cpu / wall,
            "cpu_us_per_tx": 1e6 * cpu / answered if answered else None,
            "kb_per_pair": (rss1 - rss0) / n, "request_bytes": len(request), "answer_bytes": answer_size}


def peer_child(args) -> int:
    """Child side of the peer: run the ping-pong on a fresh asyncio loop, print its JSON."""
    args.modems, _ = raise_fd_limit(args.modems)
    print(json.dumps(asyncio.run(_peer(args))), flush=True)
    return 0


def run_peer(args) -> dict:
    """Run the peer in a child process (its own heap and fds); return its figures."""
    # As long as the saturated window it is compared with (or the paced one without it).
    seconds = args.saturate or args.seconds
    argv = [sys.executable, os.path.abspath(__file__), "--peer-child", "--modems", str(args.modems),
            "--seconds", str(seconds), "--warmup", str(args.warmup)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the peer process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------ report


def _f(value, digits: int = 1):
    """Round a figure for the JSON line (None stays None)."""
    return None if value is None else round(value, digits)


def report(args, m: dict, peer: dict | None, requested: int, fd_limit: int) -> dict:
    """Print the human-readable figures; return the JSON object."""
    n = args.modems
    rss = m["rss_kb"]
    offered = n / args.period
    nan = float("nan")
    in_process = not args.sim_process
    where = "simulator in this process: CPU and RSS include it" if in_process else \
        "simulator in a child process: CPU and RSS are the server's alone"
    print(f"{n} simulated modems, one {PROFILE} each, polled every {args.period:g} s (offered {offered:.0f} tx/s); "
          f"{args.reactor} reactor; {where}; RLIMIT_NOFILE {fd_limit}")
    if n < requested:
        print(f"  only {n} of {requested} modems fit in the file descriptor limit (2 sockets each)")
    print(f"  config {m['config_s']:.1f} s, build {m['build_s']:.1f} s")
    ident = "not all" if m["identify_s"] is None else f"{m['identify_s']:.2f} s"
    conn = "not all" if m["connect_s"] is None else f"{m['connect_s']:.2f} s"
    print(f"  ramp (every modem dials at once): all accepted after {conn}, all identified after {ident} "
          f"({m['identified_after_ramp']}/{n})")
    marks = m["ramp"]
    if len(marks) > 12:
        step = len(marks) / 11
        marks = [marks[int(i * step)] for i in range(11)] + [marks[-1]]
    print("    t/s accepted identified: " + ", ".join(f"{t:g} {a} {i}" for t, a, i in marks))
    if "heap" in m:
        h = m["heap"]
        objects = "channel, link, tags, simulated meter and modem" if in_process else "channel, link and tags"
        ends = "both ends'" if in_process else "the server end's"
        print(f"  Python heap (tracemalloc, --heap): {h['objects'] / n / 1024:.1f} KiB per modem for the {objects} "
              f"objects; {h['connections'] / n / 1024:.1f} KiB per connection ({ends} protocol, transport and "
              f"timer objects, first polls included); RSS below includes tracemalloc's own bookkeeping")
    sim_cpu = "" if m["sim_cpu_pct"] is None else f"; simulator process CPU {m['sim_cpu_pct']:.0f}%"
    print(f"  window {m['wall']:.1f} s: {m['answered']} answered of {m['requests']} requests, "
          f"{m['tx_per_s']:.0f} tx/s ({100 * m['tx_per_s'] / offered:.0f}% of offered), timeouts {m['timeouts']}, "
          f"CPU {m['cpu_pct']:.0f}% ({m['cpu_us_per_tx'] or nan:.1f} µs/tx){sim_cpu}")
    print(f"  per meter in the window: {m['min_answered']}-{m['max_answered']} answers "
          f"(~{args.seconds / args.period:.0f} offered); {m['never_answered']} never answered; "
          f"{m['good_tags']}/{m['tags']} tags good")
    s, sim = m["server"], m["sim"]
    extra = (f"; modems: {sim['connected']} connected, {sim['connects']} connects, {sim['dials']} dials"
             if "connects" in sim else "")
    print(f"  held at the end: {m['connected']} identified, {m['connections']} sockets on the server; accepted "
          f"{s['accepted']}, replaced {s['replaced']}, timeout_closed {s['timeout_closed']}, idle_closed "
          f"{s['idle_closed']}, heartbeats {s['heartbeats']}{extra}")
    mb = 1024.0
    print(f"  RSS: start {rss['start'] / mb:.0f} MB, config loaded {rss['config'] / mb:.0f} MB, built "
          f"{rss['built'] / mb:.0f} MB, connected {rss['connected'] / mb:.0f} MB, after the window "
          f"{rss['end'] / mb:.0f} MB" + ("" if in_process else f"; simulator process {sim['rss_kb'] / mb:.0f} MB"))
    per_modem = (rss["end"] - rss["start"]) / n
    per_connection = (rss["connected"] - rss["built"]) / n
    what = "both ends, its channel, meter, tags and config" if in_process else "the server's side, channel, " \
        "tags and config"
    print(f"  per modem ({what}): {per_modem:.1f} KiB; steps: config {(rss['config'] - rss['start']) / n:.1f}, "
          f"objects {(rss['built'] - rss['config']) / n:.1f}, connections {per_connection:.1f}, "
          f"polling {(rss['end'] - rss['connected']) / n:.1f}")
    result = {
        "bench": "modems",
        "modems": n,
        "connected": m["connected"],
        "identify_s": _f(m["identify_s"], 2),
        "period_s": args.period,
        "offered_tx_per_s": round(offered, 1),
        "tx_per_s": round(m["tx_per_s"], 1),
        "cpu_us_per_tx": _f(m["cpu_us_per_tx"]),
        "cpu_pct": round(m["cpu_pct"], 1),
        "timeouts": m["timeouts"],
        "rss_mb": round(rss["end"] / mb, 1),
        "kb_per_modem": round(per_modem, 1),
        "kb_per_connection": round(per_connection, 1),
        "reactor": args.reactor,
        "sim": "in_process" if in_process else "child_process",
    }
    if not in_process:
        result["sim_cpu_pct"] = _f(m["sim_cpu_pct"])
    if "heap" in m:
        result["heap_kb_per_connection"] = round(m["heap"]["connections"] / n / 1024, 1)
        result["heap_kb_per_modem_objects"] = round(m["heap"]["objects"] / n / 1024, 1)
    sat = m.get("saturated")
    if sat is not None:
        sim_cpu = "" if sat["sim_cpu_pct"] is None else f"; simulator process CPU {sat['sim_cpu_pct']:.0f}%"
        print(f"  saturated ({SATURATED_PERIOD * 1000:g} ms period: every bus polls back to back), "
              f"{sat['wall']:.1f} s: {sat['answered']} answered of {sat['requests']}, {sat['tx_per_s']:.0f} tx/s, "
              f"timeouts {sat['timeouts']}, CPU {sat['cpu_pct']:.0f}% ({sat['cpu_us_per_tx'] or nan:.1f} µs/tx)"
              f"{sim_cpu}; {sat['connected']} identified at its end (timeout_closed "
              f"{sat['server']['timeout_closed']}); RSS {rss['saturated'] / mb:.0f} MB")
        result.update({
            "saturated_tx_per_s": round(sat["tx_per_s"], 1),
            "saturated_cpu_us_per_tx": _f(sat["cpu_us_per_tx"]),
            "saturated_timeouts": sat["timeouts"],
            "saturated_connected": sat["connected"],
        })
        if not in_process:
            result["saturated_sim_cpu_pct"] = _f(sat["sim_cpu_pct"])
    if n < requested:
        result["requested_modems"] = requested
        result["fd_limit"] = fd_limit
    if peer is not None:
        ratio = m["tx_per_s"] / peer["tx_per_s"] if peer["tx_per_s"] else None
        print(f"peer (raw loopback ping-pong: plain asyncio in a child process, {peer['pairs']} connection pairs, "
              f"{peer['request_bytes']}-byte request, {peer['answer_bytes']}-byte answer, back to back): "
              f"{peer['tx_per_s']:.0f} tx/s at {peer['cpu_us_per_tx'] or nan:.1f} µs/tx, CPU {peer['cpu_pct']:.0f}%; "
              f"{peer['kb_per_pair']:.1f} KiB RSS per connection pair; connected in {peer['connect_s']:.2f} s")
        if ratio is not None:
            print(f"ratio {ratio:.3f}: paced tx/s over the peer's back-to-back tx/s (the paced load is capped at "
                  f"{offered:.0f} tx/s by the period)")
        sat_ratio = sat["tx_per_s"] / peer["tx_per_s"] if sat is not None and peer["tx_per_s"] else None
        if sat_ratio is not None:
            print(f"saturated ratio {sat_ratio:.3f}: back to back against back to back; CPU per transaction "
                  f"{sat['cpu_us_per_tx'] or nan:.0f} µs against {peer['cpu_us_per_tx'] or nan:.0f} µs")
        result.update({
            "peer": "raw loopback ping-pong",
            "peer_tx_per_s": round(peer["tx_per_s"], 1),
            "peer_cpu_us_per_tx": _f(peer["cpu_us_per_tx"]),
            "peer_kb_per_pair": round(peer["kb_per_pair"], 1),
            "ratio": _f(ratio, 3),
        })
        if sat_ratio is not None:
            result["saturated_ratio"] = round(sat_ratio, 3)
    if args.profile:
        result["profiled"] = True
    result.update({"python": platform.python_version(), "cpus": os.cpu_count()})
    return result


def main(argv=None) -> int:
    """Run the modem phase and the peer; print figures and the JSON line."""
    args = parse_args(argv)
    if args.peer_child:
        return peer_child(args)
    if args.serve_modems:
        return serve_modems(args)
    requested = args.modems
    args.modems, fd_limit = raise_fd_limit(args.modems)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}", flush=True)
    m = run_modems(args)
    if "profile" in m:
        which = f"saturated window ({args.saturate:g} s" if args.saturate else f"paced window ({args.seconds:g} s"
        print(f"--- cProfile of the {which}; its rates are slowed by it) ---")
        print_profile(m.pop("profile"), args.top)
    peer = None if args.no_peer else run_peer(args)
    print(json.dumps(report(args, m, peer, requested, fd_limit), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
