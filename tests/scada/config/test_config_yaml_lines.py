"""Tests for the line-recording YAML loader."""

import textwrap

import pytest
import yaml

from scada.config.problems import nearest_line
from scada.config.yaml_lines import load_yaml


def load(text: str):
    """Load dedented text; return (data, lines, problems)."""
    return load_yaml(textwrap.dedent(text).lstrip("\n"), "f.yaml")


def test_block_and_flow_lines():
    """Keys, list items and flow-style entries get their own lines."""
    data, lines, problems = load(
        """
        site: {name: X}
        channels:
          - name: a
            devices:
              - {name: d1, address: 1}

              - name: d2
                address: 2
        """
    )
    assert problems == []
    assert data["channels"][0]["devices"][1]["address"] == 2
    assert lines[()] == 1
    assert lines[("site", "name")] == 1
    assert lines[("channels",)] == 2
    assert lines[("channels", 0)] == 3
    assert lines[("channels", 0, "name")] == 3
    assert lines[("channels", 0, "devices", 0, "address")] == 5
    assert lines[("channels", 0, "devices", 1)] == 7
    assert lines[("channels", 0, "devices", 1, "address")] == 8


def test_nearest_line_falls_back_to_parents():
    """A path with no line of its own (a missing key) uses its parent's."""
    _, lines, _ = load("site:\n  name: X\nchannels:\n  - name: a\n")
    assert nearest_line(lines, ("channels", 0, "transport", "serial")) == 4
    assert nearest_line(lines, ("nothing",)) == 1


def test_merge_keys_point_at_the_merge_line():
    """Keys pulled in with << map to the << line; explicit keys win."""
    _, lines, problems = load(
        """
        defaults: &d {profile: p, poll: 30s}
        devices:
          - name: a
            <<: *d
            poll: 10s
        """
    )
    assert problems == []
    assert lines[("devices", 0, "profile")] == 4
    assert lines[("devices", 0, "poll")] == 5


def test_aliases_and_recursive_anchors_terminate():
    """A self-referencing anchor does not loop; the alias uses its own line."""
    data, lines, _ = load("a: &x [1, *x]\nb: *x\n")
    assert data["b"][1] is data["b"]
    assert lines[("b",)] == 2


def test_duplicate_keys_are_reported():
    """The second of two equal keys is a problem naming the first line."""
    _, _, problems = load("site:\n  name: A\n  timezone: UTC\n  name: B\n")
    (problem,) = problems
    assert (problem.file, problem.line) == ("f.yaml", 4)
    assert "duplicate key 'name' in site (first at line 2)" in problem.message


def test_unsafe_tags_are_rejected():
    """Only safe YAML is constructed."""
    with pytest.raises(yaml.YAMLError):
        load("a: !!python/object/apply:os.system ['true']\n")


def test_empty_document_is_none():
    """An empty or comment-only file loads as None."""
    assert load("# nothing\n")[0] is None
