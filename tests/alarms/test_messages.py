"""Tests for alarms.messages: the ru/en catalogue and rule templates."""

from __future__ import annotations

import re

import pytest

from alarms.messages import CATALOGUE, LANGUAGES, format_value, render
from alarms.model import STATUS_KINDS
from alarms.rules import LEVELS


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    """Every key exists in every language and names the same placeholders."""
    keys = set(CATALOGUE["ru"])
    for lang in LANGUAGES:
        assert set(CATALOGUE[lang]) == keys
    for key in keys:
        names = {lang: set(re.findall(r"{(\w+)}", CATALOGUE[lang][key])) for lang in LANGUAGES}
        assert names["ru"] == names["en"], key


def test_every_kind_has_a_text() -> None:
    """Each limit level, status kind and rule kind has its own message."""
    keys = set(CATALOGUE["ru"])
    assert {f"limit.{level}" for level in LEVELS} <= keys
    assert {f"status.{kind}" for kind in STATUS_KINDS} <= keys
    assert {"rate", "stale", "comm_loss", "schedule", "verification", "flood"} <= keys


def test_default_russian_text() -> None:
    """The default high-limit text reads as the issue shows it."""
    text = render("limit.hi", "ru", tag="heat1.t_supply", value=95.0, limit=90)
    assert text == "Превышение верхней границы: heat1.t_supply = 95 (> 90)"
    assert render("limit.hi", "en", tag="x", value=95.25, limit=90).startswith("High limit exceeded: x = 95.25")


def test_unknown_language_and_key_fall_back() -> None:
    """An unknown language is Russian; an unknown status kind gets the generic status text."""
    assert render("comm_loss", "de", device="heat1") == "Потеря связи с прибором heat1"
    assert render("status.door_open", "en", device="d", level="door_open") == "Status of d: door_open"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{device}: {tag} = {value} ({level}, {limit})", "heat1: heat1.t = 95.5 (hi, 90)"),
        ("{value:.2f} > {limit}", "95.50 > 90"),
        ("{unknown} {tag}", "{unknown} heat1.t"),
        ("{0} {tag}", "{0} heat1.t"),
        ("broken {tag", "broken {tag"),
        ("{tag:.1f}", "heat1.t"),  # a spec that does not fit: shown plainly
    ],
)
def test_rule_template(template: str, expected: str) -> None:
    """A rule's template uses the placeholders; typos stay visible instead of failing."""
    assert render("limit.hi", "ru", template, tag="heat1.t", value=95.5, limit=90.0, level="hi",
                  device="heat1") == expected


def test_spec_without_value() -> None:
    """A format spec on a missing value shows the dash."""
    assert render("x", "ru", "{value:.1f}", value=None) == "—"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (12.0, "12"), (12.5, "12.5"), (0.1 + 0.2, "0.3"), (1 / 3, "0.333"), (7, "7"), (-2.0, "-2"),
     (float("nan"), "nan"), ("2026-12-01", "2026-12-01")],
)
def test_format_value(value, text: str) -> None:
    """Numbers without float noise, at most three decimals."""
    assert format_value(value) == text
