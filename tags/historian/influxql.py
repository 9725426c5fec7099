# -*- test-case-name: tests.tags.test_influx_store -*-
"""InfluxQL text shared by the InfluxDB store's queries and the Grafana dashboards' (no I/O).

Both query the one measurement of ``tags/historian/README.md`` and must
agree on quoting and on which qualities count as usable values.
"""

from __future__ import annotations

from tags.quality import Quality

#: Qualities whose values trends, aggregates and consumption use (``Quality.usable``).
USABLE = tuple(q.value for q in Quality if q.usable)


def quote_ident(name: str) -> str:
    """Return ``name`` as a double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(text: str) -> str:
    """Return ``text`` as a single-quoted InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


#: The condition "a usable quality" (good, manual, calculated, back-filled).
USABLE_CLAUSE = "(" + " OR ".join(f'"quality" = {quote_string(q)}' for q in USABLE) + ")"
#: Its negation: timeouts, CRC errors, comm loss, decode failures...
BAD_CLAUSE = "(" + " AND ".join(f'"quality" != {quote_string(q)}' for q in USABLE) + ")"
