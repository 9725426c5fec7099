"""Property tests: check_main answers any input without raising."""

from __future__ import annotations

import copy
import io
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scada.config import check_main

VALID = {
    "site": {"name": "Demo", "timezone": "Europe/Moscow"},
    "history": {"backend": "sqlite", "path": "var/h.db"},
    "api": {"listen": "127.0.0.1:8080"},
    "simulate": False,
    "channels": [
        {
            "name": "b1",
            "type": "modbus-rtu",
            "transport": {"serial": "/dev/ttyUSB0", "baudrate": 9600, "rs485": {"termination": True}},
            "timeout": "300ms",
            "devices": [
                {"name": "m1", "address": 1, "profile": "p", "poll": "30s", "termination": True},
                {"name": "m2", "address": 2, "profile": "p"},
            ],
        }
    ],
    "profiles": {"p": {"points": [{"name": "v", "function": "holding", "register": 0, "type": "u32"}]}},
}

KEYS = sorted(
    {"site", "name", "channels", "devices", "address", "profile", "poll", "transport", "serial", "tcp",
     "baudrate", "parity", "points", "register", "type", "function", "profiles", "termination", "rs485"}
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["300ms", "0s", "modbus-rtu", "modbus-tcp", "holding", "u64", "E", "p", "m1", "a:1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def run(text: str) -> tuple[int, str]:
    """Write ``text`` to a temporary site file and check it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "site.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = io.StringIO()
        code = check_main(str(path), out=out)
    return code, out.getvalue()


def assert_clean_answer(code: int, output: str) -> None:
    """Exit code is 0 with 'ok' last, or 1 with located problems; no internal error."""
    assert code in (0, 1)
    assert "internal error" not in output
    lines = output.splitlines()
    assert lines, "check_main printed nothing"
    if code == 0:
        assert lines[-1] == "ok"
    for line in lines[:-1] if code == 0 else lines:
        assert "site.yaml:" in line


@FUZZ
@given(st.text(max_size=200))
def test_random_text_never_raises(text):
    """Arbitrary text gets a clean answer."""
    assert_clean_answer(*run(text))


@FUZZ
@given(values)
def test_random_structures_never_raise(data):
    """Arbitrary YAML structures get a clean answer."""
    assert_clean_answer(*run(yaml.safe_dump(data, allow_unicode=True)))


def _paths(node, prefix=()):
    """Yield every path into a nested dict/list structure."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [p for p in _paths(VALID) if p]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), st.one_of(st.just("<delete>"), values)), max_size=4))
def test_mutated_valid_config_never_raises(mutations):
    """A valid site with random values replaced or keys deleted gets a clean answer."""
    data = copy.deepcopy(VALID)
    for path, value in mutations:
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value == "<delete>":
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this part
    assert_clean_answer(*run(yaml.safe_dump(data, allow_unicode=True)))


def test_valid_fuzz_base_is_ok():
    """The structure the mutations start from is itself valid."""
    assert run(yaml.safe_dump(VALID)) == (0, "ok\n")
