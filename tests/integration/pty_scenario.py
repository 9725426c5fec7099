"""Drive the engine against simulated meters over a real pty pair; print JSON.

Run as a subprocess by ``test_pty_engine.py`` so that the asyncio reactor it
installs does not leak into the test process.  The scenario: all devices
answer → one goes silent until its tags turn ``comm_loss`` → it answers again
→ it corrupts CRCs → it answers exceptions.  Each phase ends on a condition,
not on a fixed sleep; a phase that never ends is reported as such.
"""

from __future__ import annotations

import json
import sys


def main(config_path: str) -> int:
    from scada.app import install_reactor

    reactor, _loop = install_reactor()
    from channels.modbus.channel import ModbusChannel
    from channels.sim.field import SimulatedField
    from scada.config import load_config
    from tags.table import TagTable

    cfg, _ = load_config(config_path)
    field = SimulatedField(cfg, reactor)
    paths = field.start_pty()
    table = TagTable()
    channel = ModbusChannel(reactor, cfg.channels[0], cfg.profiles, table.update_many,
                            serial_override=paths[cfg.channels[0].name])
    for tagdef in channel.tagdefs:
        table.define(tagdef)
    device = {d.name: d for d in channel.devices}
    victim = "m2"
    result: dict = {"phases": [], "pty": paths[cfg.channels[0].name]}

    def qualities(name: str) -> set[str]:
        return {str(s.quality) for s in table.states(name + ".")}

    phases = [
        ("all_good", None, lambda: all(qualities(d) == {"good"} for d in device)),
        ("silent", "silent", lambda: qualities(victim) == {"comm_loss"} and device[victim].state == "comm_loss"),
        ("recovered", "normal", lambda: qualities(victim) == {"good"} and device[victim].state == "ok"),
        ("corrupt_crc", "corrupt_crc", lambda: device[victim].stats.crc_errors >= 3),
        ("exception", "exception", lambda: qualities(victim) == {"exception"}),
    ]
    state = {"index": 0, "started": 0.0}

    def snapshot(name: str) -> None:
        result["phases"].append({
            "phase": name,
            "t": round(reactor.seconds() - state["t0"], 3),
            "qualities": {d: sorted(qualities(d)) for d in device},
            "values": {s.definition.name: s.value for s in table.states("m1.")},
            "stats": {d.name: d.health() for d in channel.devices},
            "channel": channel.health(),
        })

    def tick() -> None:
        index = state["index"]
        name, fault, done = phases[index]
        if done():
            snapshot(name)
            index += 1
            state["index"] = index
            if index == len(phases):
                finish(ok=True)
                return
            next_fault = phases[index][1]
            field.set_fault(victim, next_fault)
            state["started"] = reactor.seconds()
        elif reactor.seconds() - state["started"] > 20:
            result["stuck_in"] = name
            snapshot(name)
            finish(ok=False)
            return
        reactor.callLater(0.05, tick)

    def finish(ok: bool) -> None:
        result["ok"] = ok
        channel.stop()
        field.stop()
        reactor.callLater(0.1, reactor.stop)

    def start() -> None:
        state["t0"] = state["started"] = reactor.seconds()
        channel.log_plan()
        channel.start()
        tick()

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    print(json.dumps(result, default=str))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
