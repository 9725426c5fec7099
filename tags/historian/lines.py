# -*- test-case-name: tests.tags.test_lines -*-
"""Samples as InfluxDB line protocol: the store-and-forward queue's record format.

One sample is one line::

    samples,device=heat1,tag=heat1.energy_kwh quality="good",value=1234.5 1795244400000000

- the measurement (``samples`` unless configured) holds every tag, so one
  Grafana query can trend any of them (``WHERE "tag" = 'heat1.energy_kwh'``)
  or a whole device (``WHERE "device" = 'heat1'``);
- the series is (measurement, device, tag); ``device`` is the part of the tag
  name before the first ``.`` and is left out for system tags such as
  ``historian_backlog``, whose names have no ``.``;
- ``quality`` is a *field*, not a tag: a sample's identity is (tag, time),
  so a replay or a back-filled record for the same moment replaces the point
  in place, exactly as the SQLite key ``(tag_id, ts)`` does.  As a tag it
  would make a second series and a second point at the same time;
- ``value`` is a float field, left out when the sample has no value
  (a timeout) or a value line protocol cannot carry (NaN, infinity);
- the timestamp is integer microseconds since the epoch (write with
  ``precision=u``): the rounding is the same on every replay, so rewriting
  a sample lands on the same point.

The queue stores these lines for every backend, so a queue written while
the site ran on one backend drains into another, and ``tail`` shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tags.model import Sample
from tags.quality import Quality

#: The measurement unless the site configures another.
MEASUREMENT = "samples"

_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})


def check_name(name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if it cannot be a tag in line protocol."""
    if not name or "\\" in name or "\n" in name or "\r" in name or name.endswith(" "):
        raise ValueError(f"tag name {name!r} cannot be stored: empty, or holds a backslash or line break")


class Encoder:
    """Turn samples into lines, caching each tag's series key."""

    def __init__(self, measurement: str = MEASUREMENT) -> None:
        """Prepare an encoder for ``measurement``."""
        if not measurement or "\\" in measurement or "\n" in measurement:
            raise ValueError(f"measurement {measurement!r} is not usable in line protocol")
        self.measurement = measurement
        self._measurement = measurement.translate(_MEASUREMENT_ESCAPES)
        self._series: dict[str, str] = {}
        self._prefixes: dict[str, tuple[Quality, str]] = {}

    def series(self, name: str) -> str:
        """Return the series key of tag ``name`` followed by the field separator space."""
        key = self._series.get(name)
        if key is None:
            check_name(name)
            device, dot, _ = name.partition(".")
            tag = name.translate(_TAG_ESCAPES)
            if dot and device:
                key = f"{self._measurement},device={device.translate(_TAG_ESCAPES)},tag={tag} "
            else:
                key = f"{self._measurement},tag={tag} "
            self._series[name] = key
        return key

    def encode(self, samples: Iterable[Sample]) -> tuple[bytes, int]:
        """Return the lines of ``samples`` and how many there are.

        Raises ``ValueError`` naming the sample if one cannot be stored (a
        bad name, a quality that is not a `Quality`, a value that is not a
        number); then none of them is encoded.
        """
        # The hot path of history: one dict lookup gives the whole line up
        # to the value, and `v - v == 0.0` is false for NaN and infinities.
        prefixes = self._prefixes
        out = []
        append = out.append
        for sample in samples:
            name, value, quality, ts = sample
            try:
                # Keyed by name with an identity check of the quality:
                # hashing an enum member runs Python code.
                cached = prefixes.get(name)
                if cached is not None and cached[0] is quality:
                    prefix = cached[1]
                else:
                    prefix = self._prefix(name, quality)
                    prefixes[name] = (quality, prefix)
                if type(value) is not float:
                    value = None if value is None else float(value)
                if value is not None and value - value == 0.0:
                    append(f"{prefix},value={value!r} {round(ts * 1_000_000)}\n")
                else:
                    append(f"{prefix} {round(ts * 1_000_000)}\n")
            except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"cannot store sample {sample!r}: {exc}") from None
        return "".join(out).encode(), len(out)

    def _prefix(self, name: str, quality: Quality) -> str:
        """Return a line's text up to its value: series key and quality field."""
        if type(quality) is not Quality:
            raise ValueError(f"{quality!r} is not a Quality")
        return f'{self.series(name)}quality="{quality.value}"'


def _unescape(text: str) -> str:
    """Undo the tag-value escaping of `Encoder`."""
    if "\\" not in text:
        return text
    return text.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def parse(batch: bytes) -> list[tuple[str, float, float | None, str]]:
    """Read lines written by `Encoder` back as ``(name, ts, value, quality)``.

    ``ts`` is seconds, ``value`` None when the line has none.  Raises
    ``ValueError`` naming the line if it is not one of ours.
    """
    rows = []
    for line in batch.decode().splitlines():
        if not line:
            continue
        try:
            # Fields and timestamp never hold a space; the series key may
            # (escaped), so split from the right.
            series, fields, micros = line.rsplit(" ", 2)
            cut = series.rindex(",tag=")
            name = _unescape(series[cut + 5 :])
            value = None
            quality = ""
            for field in fields.split(","):
                key, _, text = field.partition("=")
                if key == "quality":
                    quality = text.strip('"')
                elif key == "value":
                    value = float(text)
            if not quality:
                raise ValueError("no quality")
            rows.append((name, int(micros) / 1_000_000, value, quality))
        except ValueError as exc:
            raise ValueError(f"not a queued sample line: {line[:200]!r} ({exc})") from None
    return rows


def line_time(line: bytes) -> float | None:
    """Return the timestamp (seconds) of one queued line, or None if it has none."""
    try:
        return int(line.rstrip(b"\n").rpartition(b" ")[2]) / 1_000_000
    except ValueError:
        return None
