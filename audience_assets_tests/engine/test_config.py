"""Rule configuration: spec defaults, TOML loading and overrides, validation errors, hashing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

import audience_assets
from audience_assets.engine.config import (
    MODIFIER_KEYS,
    ConfigError,
    RulesConfig,
    build_config,
    load_config,
    to_toml,
)
from audience_assets_tests.engine_cases import aud, decide_one, run

RULES_TOML = Path(audience_assets.__file__).resolve().parent / "rules.toml"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_spend", 3000.0),  # spec 5: MIN_SPEND = 3,000
        ("min_purchases", 2.0),  # MIN_PURCHASES = 2
        ("min_age_days", 2),  # MIN_AGE = 2 days
        ("winner_roas", 1.2),  # spec 7.1
        ("loser_roas", 0.9),
        ("scale_step_pct", 20.0),  # spec 10: 20-30 % per action
        ("min_scale_pct", 20.0),
        ("max_scale_pct", 30.0),
        ("cooldown_hours", 72.0),  # 48-72 h
        ("min_confidence_to_act", "MEDIUM"),
        ("min_spend_to_pause", None),
    ],
)
def test_defaults_follow_the_spec(field, value):
    assert getattr(RulesConfig(), field) == value


def test_default_modifiers_follow_spec_section_9():
    cfg = RulesConfig()
    assert set(cfg.modifiers) == set(MODIFIER_KEYS)
    assert (cfg.resolved("BROAD", "winner_roas"), cfg.resolved("BROAD", "loser_roas")) == (1.1, 0.8)
    assert cfg.resolved("BROAD", "pause_spend_multiple") == 4.0 > cfg.pause_spend_multiple == 3.0
    assert cfg.resolved("INTEREST", "pause_spend_multiple") == 2.0
    assert cfg.type_scale_pct("LOOKALIKE_1PCT") == 25.0 and cfg.resolved("LOOKALIKE_1PCT", "cooldown_hours") == 48.0
    assert cfg.type_scale_pct("LOOKALIKE") == 20.0 and cfg.resolved("LOOKALIKE", "cooldown_hours") == 72.0
    assert cfg.type_scale_pct("CUSTOM") == 20.0 and cfg.modifier("CUSTOM").risk_notes
    assert cfg.resolved("LOOKALIKE", "budget_ceiling_x_median_spend") is None
    assert cfg.pause_min_spend == cfg.min_spend


def test_rules_toml_parses_to_exactly_the_defaults():
    assert load_config(RULES_TOML) == RulesConfig()
    assert build_config(tomllib.loads(RULES_TOML.read_text())) == RulesConfig()
    assert load_config(RULES_TOML).config_hash() == RulesConfig().config_hash()


def test_to_toml_round_trips(tmp_path):
    cfg = load_config(
        overrides={"min_spend": 4500, "target_cpa": {"act_1": 750.0}, "modifiers": {"BROAD": {"winner_roas": 1.15}}}
    )
    path = tmp_path / "rules.toml"
    path.write_text(to_toml(cfg))
    assert load_config(path) == cfg


def test_load_config_file_then_overrides(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        "min_spend = 5000\n"
        "cooldown_hours = 48\n"
        "[modifiers.BROAD]\nwinner_roas = 1.15\n"
        "[modifiers.LOOKALIKE_1PCT]\ncooldown_hours = 60\n"
    )
    cfg = load_config(path, {"min_spend": 6000, "modifiers": {"CUSTOM": {"max_scale_pct": 22, "scale_step_pct": 22}}})
    assert cfg.min_spend == 6000  # override wins over the file
    assert cfg.cooldown_hours == 48  # file wins over the default
    assert cfg.min_purchases == 2  # untouched default
    broad = cfg.modifier("BROAD")
    assert (broad.winner_roas, broad.loser_roas, broad.pause_spend_multiple) == (1.15, 0.8, 4.0)  # merged, not replaced
    assert cfg.resolved("LOOKALIKE_1PCT", "cooldown_hours") == 60 and cfg.type_scale_pct("LOOKALIKE_1PCT") == 25
    assert cfg.type_scale_pct("CUSTOM") == 22
    assert cfg.modifier("INTEREST").pause_spend_multiple == 2.0


def test_loaded_rules_change_the_decisions(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("min_spend = 25000\n")
    row = decide_one(aud("a", spend=20_000, roas=3.6), cfg=load_config(path))
    assert row["eligible"] is False
    assert row["filter_reason"] == "spend ₹20,000 over 7 days is under the ₹25,000 minimum"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"winner_roas": -1}, "winner_roas"),
        ({"loser_roas": 1.5}, "loser_roas must not exceed winner_roas"),
        ({"winner_roas": 0.85}, "loser_roas must not exceed winner_roas"),
        ({"modifiers": {"FOO": {"winner_roas": 1.3}}}, "unknown modifier keys ['FOO']"),
        ({"modifiers": {"BROAD": {"winner_rose": 1.3}}}, "modifiers.BROAD.winner_rose"),
        ({"modifiers": {"BROAD": {"loser_roas": 1.2}}}, "modifiers.BROAD: loser_roas must not exceed winner_roas"),
        ({"scale_step_pct": 40}, "scale_step_pct: 40 is outside the spec's band 20-30"),
        ({"scale_step_pct": 10}, "scale_step_pct: 10 is outside the spec's band 20-30"),
        ({"min_scale_pct": 25, "scale_step_pct": 22}, "scale_step_pct must lie within [min_scale_pct, max_scale_pct]"),
        (
            {"max_scale_pct": 25, "modifiers": {"LOOKALIKE_1PCT": {"scale_step_pct": 28}}},
            "modifiers.LOOKALIKE_1PCT.scale_step_pct=28",
        ),
        (
            {"modifiers": {"LOOKALIKE_1PCT": {"scale_step_pct": 35}}},
            "modifiers.LOOKALIKE_1PCT.scale_step_pct: 35 is outside",
        ),
        ({"max_scale_pct": 120}, "max_scale_pct: 120 is outside the spec's band 20-30"),
        ({"scale_step_pct": 100, "max_scale_pct": 100}, "scale_step_pct: 100 is outside the spec's band 20-30"),
        ({"cooldown_hours": 0}, "cooldown_hours: 0 is outside the spec's band 48-72"),
        ({"cooldown_hours": 96}, "cooldown_hours: 96 is outside the spec's band 48-72"),
        ({"modifiers": {"CUSTOM": {"cooldown_hours": 24}}}, "modifiers.CUSTOM.cooldown_hours: 24 is outside"),
        ({"modifiers": {"CUSTOM": {"max_scale_pct": 15}}}, "modifiers.CUSTOM.max_scale_pct: 15 is outside"),
        ({"min_confidence_to_act": "SOMETIMES"}, "min_confidence_to_act"),
        ({"confidence_medium": 0.95}, "confidence_medium must not exceed confidence_high"),
        ({"cooldown_hours": -1}, "cooldown_hours"),
        ({"min_spend": -5}, "min_spend"),
        ({"decision_window_days": 0}, "decision_window_days"),
        ({"min_spnd": 100}, "min_spnd"),
        ({"score_weights": {"roas": -0.5}}, "score_weights.roas"),
        ({"min_spend": "lots"}, "min_spend"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_invalid_values_raise_config_error_naming_the_field(overrides, named):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert named in str(err.value)
    assert str(err.value).startswith("invalid rules configuration in overrides:")
    assert isinstance(err.value, ValueError)


def test_invalid_file_value_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("winner_roas = -1\n")
    with pytest.raises(ConfigError, match=r"invalid rules configuration in .*bad\.toml:\n  winner_roas: "):
        load_config(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("min_spend = = 3", "is not valid TOML")],
    ids=["missing_file", "broken_toml"],
)
def test_unreadable_rules_file(tmp_path, content, message):
    path = tmp_path / "rules.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_is_frozen():
    with pytest.raises(ValidationError):
        RulesConfig().min_spend = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_spend": 3001},
        {"winner_roas": 1.25},
        {"cooldown_hours": 48},
        {"target_cpa": {"act_1": 500.0}},
        {"modifiers": {"BROAD": {"pause_spend_multiple": 5}}},
        {"modifiers": {"CUSTOM": {"risk_notes": ["other note"]}}},
        {"score_weights": {"roas": 0.6}},
    ],
    ids=lambda v: str(v)[:40],
)
def test_config_hash_changes_when_a_value_changes(overrides):
    base = RulesConfig().config_hash()
    changed = load_config(overrides=overrides).config_hash()
    assert changed != base
    assert len(changed) == 16 and all(c in "0123456789abcdef" for c in changed)


def test_config_hash_is_stable():
    assert RulesConfig().config_hash() == RulesConfig().config_hash()
    assert load_config(overrides={"min_spend": 3000}).config_hash() == RulesConfig().config_hash()
    assert (
        load_config(overrides={"min_spend": 5000}).config_hash()
        == load_config(overrides={"min_spend": 5000.0}).config_hash()
    )
    # Key order of an override does not matter.
    a = load_config(overrides={"min_spend": 5000, "cooldown_hours": 48})
    b = load_config(overrides={"cooldown_hours": 48, "min_spend": 5000})
    assert a.config_hash() == b.config_hash()


def test_decisions_record_the_config_hash():
    cfg = load_config(overrides={"min_spend": 2500})
    decisions, recs = run([aud("a", spend=20_000, roas=3.6)], cfg=cfg)
    assert set(decisions["config_hash"]) == set(recs["config_hash"]) == {cfg.config_hash()}
