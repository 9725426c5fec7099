"""Samples per second through the alarm engine with 10,000 alarm conditions, against a plain loop.

The site: ``--devices`` devices (100) of 50 tags each: 49 values and one
status register.  Every value tag has a high limit and a stale check
(2 × 4,900 alarms), every status register a leak bit (100), every device a
comm-loss alarm (100): 10,000 alarms, plus the flood alarm.

Each poll round feeds every device's 50 samples with one
``TagTable.update_many`` call, as the channels do, then moves the clock on
a minute (``twisted.internet.task.Clock``: the stale timer, delays and the
flood window run, no real sleeping).  About 0.5 % of the values cross the
limit each round (raise, then clear the next round), and one device in a
hundred is in comm loss for a round (its alarms are suppressed and
released), so transitions, journal entries and subscribers are part of the
cost, not just the comparisons (``--steady`` leaves them out).

Three measurements of the same precomputed samples, alternating order
between rounds:

- **engine**: `TagTable.update_many` with an `AlarmEngine` subscribed
  (journal: `MemoryJournal`; one subscriber that counts events);
- **table only**: `TagTable.update_many` with no subscriber (what the tag
  table itself costs, for context);
- **plain loop** (the peer): a Python loop over the same samples doing
  only the limit comparisons (quality good, value above the tag's limit),
  the least work any evaluator of these limits does.

Prints human lines, then one JSON line last: ``{"bench": "alarms",
"rules": 10000, "samples_per_s": ..., "peer": "plain_loop",
"peer_samples_per_s": ..., "ratio": ...}`` with medians of ``--rounds``.

``--burst`` measures something else: how long one comm-loss batch blocks
the reactor when the journal is the site's SQLite store.  500 devices of 4
tags (2,000 tags) with hi/lo limits, a stale check and a comm-loss alarm
each (6,501 alarms with the flood alarm) all report ``comm_loss`` in one
``update_many``: about 6,500 transitions (the comm-loss alarms raise, every
value alarm is suppressed), each a journal entry and a saved state.  Timed:
that call (the reactor turn of the batch) and the next turn, where
:class:`~scada.store.OpsStore` commits what the turn wrote; against
:class:`~alarms.model.MemoryJournal` as the peer.  Last line:
``{"bench": "alarms_burst", "entries": ..., "store_turn_ms": ...,
"store_commit_ms": ..., "memory_turn_ms": ..., ...}`` (medians).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet.task import Clock  # noqa: E402

from alarms.engine import AlarmEngine  # noqa: E402
from alarms.model import MemoryJournal  # noqa: E402
from alarms.rules import CommLossRule, LimitRule, StaleRule, StatusRule  # noqa: E402
from tags.model import Sample, TagDef  # noqa: E402
from tags.quality import Quality  # noqa: E402
from tags.table import TagTable  # noqa: E402

T0 = 1795244400.0  # 2026-11-21T07:00:00Z
VALUES_PER_DEVICE = 49
LIMIT = 100.0
POLL = 60.0


def make_site(devices: int) -> tuple[list[TagDef], list, dict[str, float]]:
    """Return the tag definitions, the rules and each value tag's limit."""
    tagdefs: list[TagDef] = []
    values: list[str] = []
    rules: list = []
    for d in range(devices):
        device = f"dev{d:03d}"
        names = [f"{device}.v{k:02d}" for k in range(VALUES_PER_DEVICE)]
        values += names
        tagdefs += [TagDef(name, device=device) for name in names]
        tagdefs.append(TagDef(f"{device}.status", device=device))
        rules.append(StatusRule(f"st{d:03d}", device=device, tag=f"{device}.status", bits={0: "leak"}))
    rules.append(LimitRule("hi", tags=tuple(values), hi=LIMIT, deadband=1.0))
    rules.append(StaleRule("stale", tags=tuple(values), after=600.0))
    rules.append(CommLossRule("comm", devices=tuple(f"dev{d:03d}" for d in range(devices))))
    return tagdefs, rules, {name: LIMIT for name in values}


def make_polls(devices: int, rounds: int, seed: int = 7, steady: bool = False) -> list[list[list[Sample]]]:
    """Return ``rounds`` rounds of one 50-sample poll per device.

    ``steady``: no value crosses its limit, no device loses comm, no status
    bit is set: only the comparisons, no transition.
    """
    rng = random.Random(seed)
    good, lost = Quality.GOOD, Quality.COMM_LOSS
    out = []
    high: set[str] = set()
    for r in range(rounds):
        ts = T0 + r * POLL
        down = r % devices  # one device in comm loss this round
        polls = []
        for d in range(devices):
            device = f"dev{d:03d}"
            if d == down and r % 2 == 1 and not steady:
                polls.append([Sample(f"{device}.v{k:02d}", None, lost, ts) for k in range(VALUES_PER_DEVICE)]
                             + [Sample(f"{device}.status", None, lost, ts)])
                continue
            poll = []
            for k in range(VALUES_PER_DEVICE):
                name = f"{device}.v{k:02d}"
                if name in high:
                    high.discard(name)
                    value = 50.0 + rng.random()
                elif rng.random() < 0.005 and not steady:
                    high.add(name)
                    value = LIMIT + 5.0 + rng.random()
                else:
                    value = 50.0 + rng.random() * 10.0
                poll.append(Sample(name, value, good, ts))
            poll.append(Sample(f"{device}.status", float(rng.random() < 0.002 and not steady), good, ts))
            polls.append(poll)
        out.append(polls)
    return out


def run_engine(tagdefs, rules, rounds) -> tuple[float, float, dict]:
    """Feed every round through a table with a started engine; return (wall s, CPU s, figures)."""
    clock = Clock()
    clock.advance(T0)
    table = TagTable()
    for tagdef in tagdefs:
        table.define(tagdef)
    journal = MemoryJournal()
    engine = AlarmEngine(clock, table, rules, journal)
    events = [0]

    def count(_event) -> None:
        events[0] += 1

    engine.subscribe(count)
    engine.start()
    update_many = table.update_many
    start, cpu = time.perf_counter(), time.process_time()
    for polls in rounds:
        for poll in polls:
            update_many(poll)
        clock.advance(POLL)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    alarms = len(engine.alarms("all")) - 1  # without the flood alarm
    figures = {"alarms": alarms, "journal_entries": len(journal.entries), "events": events[0],
               "errors": engine.errors, "active_at_end": len(engine.alarms("active"))}
    engine.stop()
    return wall, cpu, figures


def run_table(tagdefs, rounds) -> float:
    """Feed every round through a table with no subscriber; return wall seconds."""
    table = TagTable()
    for tagdef in tagdefs:
        table.define(tagdef)
    update_many = table.update_many
    start = time.perf_counter()
    for polls in rounds:
        for poll in polls:
            update_many(poll)
    return time.perf_counter() - start


def run_plain(limits: dict[str, float], rounds) -> tuple[float, int]:
    """Do only the limit comparisons over the same samples; return (wall s, how many exceeded)."""
    good = Quality.GOOD
    exceeded = 0
    start = time.perf_counter()
    for polls in rounds:
        for poll in polls:
            for name, value, quality, _ts in poll:
                if quality is good and value is not None:
                    limit = limits.get(name)
                    if limit is not None and value > limit:
                        exceeded += 1
    return time.perf_counter() - start, exceeded


def run_burst(store: bool, devices: int = 500, per_device: int = 4) -> tuple[float, float, int]:
    """Feed one comm-loss batch over every device; return (batch turn ms, next turn ms, journal entries)."""
    import tempfile

    from scada.store import OpsStore

    clock = Clock()
    clock.advance(T0)
    table = TagTable()
    names = [f"d{d:03d}.v{k}" for d in range(devices) for k in range(per_device)]
    for name in names:
        table.define(TagDef(name, device=name.partition(".")[0]))
    rules = [LimitRule("lim", tags=tuple(names), hi=LIMIT, lo=0.0), StaleRule("stale", tags=tuple(names)),
             CommLossRule("comm", devices=tuple(f"d{d:03d}" for d in range(devices)))]
    with tempfile.TemporaryDirectory() as folder:
        journal = OpsStore(Path(folder) / "ops.db", reactor=clock) if store else MemoryJournal()
        engine = AlarmEngine(clock, table, rules, journal)
        engine.start()
        table.update_many([Sample(name, 50.0, Quality.GOOD, T0) for name in names])
        clock.advance(0)
        batch = [Sample(name, None, Quality.COMM_LOSS, T0 + 1) for name in names]
        gc.collect()
        start = time.perf_counter()
        table.update_many(batch)
        turn = time.perf_counter() - start
        start = time.perf_counter()
        clock.advance(0)  # the next reactor turn: the store commits here
        commit = time.perf_counter() - start
        entries = len(journal.query(0, T0 + 2)) if store else len(journal.entries)
        engine.stop()
        if store:
            journal.close()
    return turn * 1e3, commit * 1e3, entries


def burst(rounds: int) -> int:
    """Print the comm-loss batch figures (see the module's text)."""
    store = [run_burst(True) for _ in range(rounds)]
    memory = [run_burst(False) for _ in range(rounds)]
    figures = {
        "bench": "alarms_burst", "alarms": 6501, "entries": store[0][2],
        "store_turn_ms": round(statistics.median(r[0] for r in store), 1),
        "store_commit_ms": round(statistics.median(r[1] for r in store), 1),
        "memory_turn_ms": round(statistics.median(r[0] for r in memory), 1),
        "rounds": rounds,
    }
    print(f"comm-loss batch, {figures['entries']:,} journal entries: OpsStore {figures['store_turn_ms']} ms "
          f"(+ {figures['store_commit_ms']} ms commit in the next turn), MemoryJournal "
          f"{figures['memory_turn_ms']} ms", file=sys.stderr)
    print(json.dumps(figures))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100, help="devices of 50 tags (100 → 10,000 alarms)")
    parser.add_argument("--polls", type=int, default=20, help="poll rounds per measurement (a minute apart)")
    parser.add_argument("--rounds", type=int, default=5, help="measurements; the JSON holds the medians")
    parser.add_argument("--steady", action="store_true",
                        help="no limit crossings, comm losses or status bits: comparisons only, no transitions")
    parser.add_argument("--profile", action="store_true", help="cProfile one engine run, top 25 by own time")
    parser.add_argument("--burst", action="store_true",
                        help="time one comm-loss batch over 6,501 alarms with the SQLite store as journal instead")
    args = parser.parse_args()
    if args.burst:
        return burst(args.rounds)

    tagdefs, rules, limits = make_site(args.devices)
    rounds = make_polls(args.devices, args.polls, steady=args.steady)
    total = sum(len(p) for polls in rounds for p in polls)
    print(f"{len(tagdefs):,} tags, {len(rules):,} rules, {args.polls} polls of {args.devices} devices: "
          f"{total:,} samples per measurement", file=sys.stderr)

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run_engine(tagdefs, rules, rounds)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)

    engine_rates, cpu_us, table_rates, plain_rates = [], [], [], []
    figures: dict = {}
    for r in range(args.rounds):
        order = ("engine", "table", "plain") if r % 2 == 0 else ("plain", "table", "engine")
        got = {}
        for name in order:
            gc.collect()  # the previous measurement's garbage is not this one's cost
            if name == "engine":
                wall, cpu, figures = run_engine(tagdefs, rules, rounds)
                got[name] = total / wall
                cpu_us.append(cpu / total * 1e6)
            elif name == "table":
                got[name] = total / run_table(tagdefs, rounds)
            else:
                wall, _ = run_plain(limits, rounds)
                got[name] = total / wall
        engine_rates.append(got["engine"])
        table_rates.append(got["table"])
        plain_rates.append(got["plain"])
        print(f"round {r + 1}: engine {got['engine']:,.0f} samples/s, table only {got['table']:,.0f}/s, "
              f"plain loop {got['plain']:,.0f}/s", file=sys.stderr)

    ours = statistics.median(engine_rates)
    peer = statistics.median(plain_rates)
    table = statistics.median(table_rates)
    print(f"median: engine {ours:,.0f} samples/s ({1e6 / ours:.2f} µs each, "
          f"{statistics.median(cpu_us):.2f} µs CPU), table only {table:,.0f}/s ({1e6 / table:.2f} µs), "
          f"plain loop {peer:,.0f}/s ({1e6 / peer:.3f} µs)", file=sys.stderr)
    print(f"engine's own share ≈ {1e6 / ours - 1e6 / table:.2f} µs per sample; "
          f"{figures['journal_entries']:,} journal entries, {figures['errors']} errors per run", file=sys.stderr)
    print(json.dumps({
        "bench": "alarms",
        "rules": figures["alarms"],
        "samples": total,
        "samples_per_s": round(ours),
        "peer": "plain_loop",
        "peer_samples_per_s": round(peer),
        "ratio": round(ours / peer, 3),
        "table_only_samples_per_s": round(table),
        "ratio_table_only": round(ours / table, 3),
        "journal_entries": figures["journal_entries"],
        "cpu_us_per_sample": round(statistics.median(cpu_us), 2),
        "steady": args.steady,
        "rounds": args.rounds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
