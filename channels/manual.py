# -*- test-case-name: tests.channels.test_manual -*-
"""Meters read by hand: a channel with tags but no bus.

A crew reads the display of a meter that no wire or radio reaches, and the
reading arrives later through the API or a hand-held reader's CSV export
(see :mod:`scada.manual`).  The channel only declares the meters' tags so
that history, alarms and reports know them; it never polls.  Built from a
``manual`` channel's configuration by attribute: ``name`` and ``devices``
(``name``, ``enabled``, ``points`` with ``name``/``unit``/``deadband``/
``description``, or a ``profile`` whose ``points`` name the registers).
"""

from __future__ import annotations

from typing import Any, Mapping

from tags.model import TagDef


class ManualDevice:
    """A hand-read meter: its registers, and when a reading last arrived."""

    def __init__(self, name: str, points: list[str]) -> None:
        self.name = name
        self.points = points
        #: Hand-read meters have no poll period; the API shows 0.
        self.period = 0.0
        self.state = "manual"
        self.last_reading: float | None = None

    def note_reading(self, ts: float) -> None:
        """Remember the time of a reading taken (the newest one wins)."""
        if self.last_reading is None or ts > self.last_reading:
            self.last_reading = ts

    def health(self) -> dict:
        """Return the device's state for ``/devices``."""
        return {"name": self.name, "state": self.state, "period": self.period, "last_good": self.last_reading,
                "points": list(self.points)}


class ManualChannel:
    """The meters of one ``manual`` channel."""

    type = "manual"

    def __init__(self, cfg: Any, profiles: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.devices: list[ManualDevice] = []
        self.tagdefs: list[TagDef] = []
        for dev in cfg.devices:
            if not getattr(dev, "enabled", True):
                continue
            points = list(getattr(dev, "points", None) or ())
            if not points and getattr(dev, "profile", None):
                points = list(profiles[dev.profile].points)
            for point in points:
                self.tagdefs.append(TagDef(f"{dev.name}.{point.name}", getattr(point, "unit", ""),
                                           getattr(point, "deadband", 0.0), dev.name,
                                           getattr(point, "description", "") or getattr(dev, "description", "")))
            self.devices.append(ManualDevice(dev.name, [p.name for p in points]))

    def log_plan(self) -> None:
        """Nothing is polled; the runtime logs the channel's size."""

    def start(self) -> None:
        """Nothing to open: readings arrive through the API."""

    def stop(self) -> None:
        """Nothing to close."""

    def health(self) -> dict:
        """Return the channel's state for ``/health`` and ``/channels``."""
        return {"name": self.name, "type": self.type, "link_up": True, "devices": len(self.devices),
                "devices_ok": len(self.devices), "devices_degraded": 0, "devices_comm_loss": 0}
