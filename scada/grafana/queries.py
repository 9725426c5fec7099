# -*- test-case-name: tests.scada.test_grafana -*-
"""The InfluxQL of the dashboards' panels, over the historian's schema.

One measurement (``samples`` or ``history.measurement``, in
``history.retention_policy`` when set) holds every tag: tag keys ``tag``
and ``device``, fields ``value`` (float) and ``quality`` (string); see
``tags/historian/README.md``.  Every query here is a raw InfluxQL text with
Grafana's macros ``$timeFilter`` and ``$__interval``, which Grafana's
InfluxDB data source (InfluxQL mode) replaces before sending it.

Quality filters follow DESIGN rule 5: trends and consumption take the
values billing accepts (:attr:`tags.quality.Quality.usable`: good, manual,
calculated, back-filled); the channel-health panels count the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from tags.historian.influxql import BAD_CLAUSE, USABLE_CLAUSE, quote_ident, quote_string

#: Grafana's time range filter (replaced by ``time >= ... and time <= ...``).
TIME_FILTER = "$timeFilter"
#: Grafana's interval for the panel's width and range.
INTERVAL = "$__interval"

# Characters a regular expression must escape to match themselves (RE2 syntax, as InfluxDB uses).
_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$/])")


def regex_of(names: Iterable[str]) -> str:
    """Return an InfluxQL regex literal matching exactly ``names``: ``/^(a|b)$/``."""
    parts = [_REGEX_SPECIAL.sub(r"\\\1", n) for n in names]
    if not parts:
        raise ValueError("a regex of no names would match nothing")
    return "/^(" + "|".join(parts) + ")$/"


@dataclass(frozen=True)
class Source:
    """Where the samples are: ``FROM`` clause parts and the site's time zone (for daily buckets)."""

    measurement: str = "samples"
    retention_policy: str | None = None
    timezone: str = "UTC"

    @property
    def from_clause(self) -> str:
        """Return ``"rp"."measurement"`` or ``"measurement"``."""
        if self.retention_policy:
            return f"{quote_ident(self.retention_policy)}.{quote_ident(self.measurement)}"
        return quote_ident(self.measurement)

    def _tz(self) -> str:
        # Daily buckets start at local midnight, as the meters' daily archives and billing do.
        return "" if self.timezone in ("UTC", "Etc/UTC") else f" tz({quote_string(self.timezone)})"

    def _where_tag(self, tag: str, usable: bool = True) -> str:
        quality = f" AND {USABLE_CLAUSE}" if usable else ""
        return f'WHERE "tag" = {quote_string(tag)}{quality} AND {TIME_FILTER}'

    def trend(self, tag: str, fn: str = "mean", every: str = INTERVAL) -> str:
        """Return one tag's usable values, ``fn`` per ``every``: a time series line."""
        return (f'SELECT {fn}("value") FROM {self.from_clause} {self._where_tag(tag)} '
                f"GROUP BY time({every}) fill(none)")

    def increase(self, tag: str, every: str = INTERVAL) -> str:
        """Return how much a counter grew per ``every`` (per local day for ``1d``): consumption, error counts.

        ``non_negative_difference`` of each bucket's last value: a meter
        replacement or a restart of a count does not show as a negative
        consumption.
        """
        tz = self._tz() if every.endswith("d") else ""
        return (f'SELECT non_negative_difference(last("value")) FROM {self.from_clause} {self._where_tag(tag)} '
                f"GROUP BY time({every}) fill(none){tz}")

    def spread(self, tag: str) -> str:
        """Return a counter's growth over the whole time range (its consumption there)."""
        return f'SELECT spread("value") FROM {self.from_clause} {self._where_tag(tag)}'

    def bad_count_by_device(self, devices: Iterable[str], every: str = INTERVAL) -> str:
        """Return, per device, how many samples had a quality that is not usable, per ``every``."""
        return (f'SELECT count("quality") FROM {self.from_clause} WHERE "device" =~ {regex_of(devices)} '
                f"AND {BAD_CLAUSE} AND {TIME_FILTER} GROUP BY time({every}), \"device\" fill(none)")

    def count_by_device(self, devices: Iterable[str], bad: bool) -> str:
        """Return one row per device: the number of its samples over the range (``bad``: unusable ones only)."""
        name = "bad" if bad else "total"
        quality = f"AND {BAD_CLAUSE} " if bad else ""
        return (f'SELECT count("quality") AS {quote_ident(name)} FROM {self.from_clause} '
                f'WHERE "device" =~ {regex_of(devices)} {quality}AND {TIME_FILTER} GROUP BY "device"')
