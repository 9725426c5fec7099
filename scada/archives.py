# -*- test-case-name: tests.scada.test_archives -*-
"""The site's archive book on disk: the newest meter archive record stored, per device and archive.

One small JSON file (``var/archives.json`` beside the site's history by
default)::

    {"version": 1, "devices": {"b1-heat": {"hourly": 1763711400.0, "daily": 1763672400.0}}}

Times are Unix seconds of the records' closing times.  It is read once at
start and written whenever a driver has moved an entry on (at most once per
archive walk, not per sample): to a temporary file first, synced, then
renamed over the old one, so a crash leaves the old book or the new one,
never half of one.  A file that cannot be read or parsed is logged and left
aside: the book starts empty and the archives are read again within the
channels' ``archive_lookback``, which history takes without doubling
anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from channels.archive import MemoryArchiveBook

log = logging.getLogger(__name__)

#: Format version of the file.
VERSION = 1
#: Where the book lives, relative to the site's base directory.
DEFAULT_PATH = "var/archives.json"


class FileArchiveBook(MemoryArchiveBook):
    """An :class:`~channels.archive.ArchiveBook` kept in a JSON file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Load the book at ``path`` if there is one."""
        super().__init__()
        self.path = Path(path)
        self.load_error = ""
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._unusable(f"cannot read it: {getattr(exc, 'strerror', None) or exc}")
            return
        try:
            self.entries = _parse(json.loads(text))
        except (ValueError, TypeError, AttributeError) as exc:
            self._unusable(str(exc))

    def _unusable(self, why: str) -> None:
        self.load_error = why
        log.error("archive book %s is unusable (%s); starting empty: archives are read again within "
                  "archive_lookback", self.path, why)

    def stored(self, device: str, archive: str, ts: float) -> None:
        """Move the entry forward to ``ts``; it is written by the next :meth:`save`."""
        before = self.newest(device, archive)
        super().stored(device, archive, ts)
        if self.newest(device, archive) != before:
            self._dirty = True

    def save(self) -> None:
        """Write the book if it changed: temporary file, fsync, rename.

        Raises ``OSError`` if the disk refuses; the entries stay in memory
        and the next save tries again.
        """
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps({"version": VERSION, "devices": self.entries}, indent=1, sort_keys=True)
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        self._dirty = False
        self.saves += 1


def _parse(data: object) -> dict[str, dict[str, float]]:
    """Return the entries of a parsed book; raise ValueError saying what is wrong."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} archive book")
    devices = data.get("devices")
    if not isinstance(devices, dict):
        raise ValueError("'devices' is not a mapping")
    entries: dict[str, dict[str, float]] = {}
    for device, archives in devices.items():
        if not isinstance(archives, dict):
            raise ValueError(f"device {device!r}: not a mapping of archive to time")
        for archive, ts in archives.items():
            if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
                raise ValueError(f"device {device!r}, archive {archive!r}: {ts!r} is not a time")
            entries.setdefault(device, {})[archive] = float(ts)
    return entries
