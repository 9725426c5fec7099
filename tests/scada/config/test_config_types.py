"""The basic field types the site, alarm and notification models share (:mod:`scada.config.types`)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from scada.config import alarms, model, notify, schema, types


def test_one_definition_serves_every_model():
    """The site, alarm and notification models use the same objects, not copies of them."""
    for module in (model, alarms, notify):
        assert module.PositiveDuration is types.PositiveDuration, module.__name__
        assert module.ConfigModel is types.ConfigModel, module.__name__
        assert not hasattr(module, "_Model"), module.__name__
    for module in (model, alarms):
        assert module.Duration is types.Duration and module.Finite is types.Finite, module.__name__
    for config in (model.SiteConfig, model.ApiConfig, alarms.AlarmSettings, alarms.LimitRuleConfig,
                   notify.NotificationsConfig, notify.RateLimitConfig):
        assert issubclass(config, types.ConfigModel), config
        assert config.model_config["extra"] == "forbid" and config.model_config["strict"], config


def test_types_imports_nothing_that_imports_it():
    """types.py imports only durations (and problems), so every model module can import it without a cycle."""
    tree = ast.parse(Path(types.__file__).read_text(encoding="utf-8"))
    local = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert local <= {"durations", "problems"}, local


@pytest.mark.parametrize("value", ["0s", 0, "0ms"])
def test_a_zero_period_is_worded_the_same_everywhere(value):
    adapter = TypeAdapter(types.PositiveDuration)
    with pytest.raises(ValidationError, match=r"0 s is not a period; it must be longer than zero"):
        adapter.validate_python(value)
    assert adapter.validate_python("1.5m") == 90.0


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_finite_and_non_negative(value):
    for kind in (types.Finite, types.NonNegative):
        with pytest.raises(ValidationError, match="is not a finite number"):
            TypeAdapter(kind).validate_python(value)
    with pytest.raises(ValidationError, match="must not be negative"):
        TypeAdapter(types.NonNegative).validate_python(-0.5)
    assert TypeAdapter(types.NonNegative).validate_python(0.0) == 0.0


def test_notification_durations_have_the_site_schema():
    """The notification section's periods are described as every other duration (no drifted copy)."""
    site = json.loads(schema.render("site.schema.json"))
    text = json.dumps(site)
    assert "exclusiveMinimum" not in text
    defs = site["$defs"]
    per = defs["RateLimitConfig"]["properties"]["per"]
    ttl = defs["ApiConfig"]["properties"]["session_ttl"]
    strip = {"default", "title"}
    assert {k: v for k, v in per.items() if k not in strip} == {k: v for k, v in ttl.items() if k not in strip}
    assert per["anyOf"] == types.DURATION_SCHEMA["anyOf"]


def test_http_url_check_words_its_example():
    """The InfluxDB URL and the webhook URL share one check; each message shows its own example."""
    check = types.http_url_check("https://hooks.example.org/scada")
    assert check("http://10.0.0.1:8080/x") == "http://10.0.0.1:8080/x"
    for value, words in (("ftp://example.org", r"is not an http\(s\) URL"), ("http://", r"is not an http\(s\) URL"),
                         ("http://example.org:99999", "is not a URL")):
        with pytest.raises(ValueError, match=words) as caught:
            check(value)
        assert str(caught.value).endswith("such as 'https://hooks.example.org/scada'")
    with pytest.raises(ValueError, match="such as 'http://127.0.0.1:8086'"):
        model._check_url("influx")
