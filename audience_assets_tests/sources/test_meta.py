"""The pure Meta transforms: targeting -> audience type, minor units, canonical purchases, overrides."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from audience_assets.sources.meta import (
    DEFAULT_PURCHASE_PRIORITY,
    apply_overrides,
    audience_type,
    audiences_frame,
    budget_from_minor,
    insights_frame,
)


@pytest.mark.parametrize(
    ("targeting", "expected"),
    [
        (
            {"custom_audiences": [{"id": "1", "name": "Lookalike (IN, 1%) - Purchasers"}]},
            ("LOOKALIKE", 1.0, "PURCHASERS"),
        ),
        ({"custom_audiences": [{"id": "1", "name": "Lookalike (US, 2.5%) - Add to cart"}]}, ("LOOKALIKE", 2.5, "ATC")),
        (
            {"custom_audiences": [{"id": "1", "name": "Lookalike (JP, 5%) - Website visitors"}]},
            ("LOOKALIKE", 5.0, "VC"),
        ),
        (
            {
                "custom_audiences": [
                    {
                        "id": "1",
                        "name": "LAL buyers",
                        "subtype": "LOOKALIKE",
                        "lookalike_spec": {"ratio": 0.03, "origin": [{"id": "9", "name": "Purchasers 180d"}]},
                    }
                ]
            },
            ("LOOKALIKE", 3.0, "PURCHASERS"),
        ),
        ({"custom_audiences": [{"id": "2", "name": "Purchasers 180d"}]}, ("CUSTOM", None, "PURCHASERS")),
        ({"custom_audiences": [{"id": "2", "name": "Website visitors 30d"}]}, ("CUSTOM", None, "VC")),
        ({"flexible_spec": [{"interests": [{"id": "6003", "name": "Beauty"}]}]}, ("INTEREST", None, None)),
        ({"flexible_spec": [{"behaviors": [{"id": "6002", "name": "Engaged shoppers"}]}]}, ("INTEREST", None, None)),
        (
            {"geo_locations": {"countries": ["IN"]}, "targeting_automation": {"advantage_audience": 1}},
            ("BROAD", None, None),
        ),
        ({}, ("BROAD", None, None)),
        (None, ("BROAD", None, None)),
        (
            {
                "custom_audiences": [{"id": "2", "name": "Purchasers 180d"}],
                "flexible_spec": [{"interests": [{"id": "6003", "name": "Beauty"}]}],
            },
            ("CUSTOM", None, "PURCHASERS"),
        ),
    ],
    ids=[
        "lookalike-name-1pct",
        "lookalike-name-2.5pct-atc",
        "lookalike-name-visitors",
        "lookalike-spec-ratio",
        "custom-purchasers",
        "custom-visitors",
        "interest",
        "behaviour",
        "broad-advantage",
        "broad-empty",
        "broad-none",
        "custom-beats-interest",
    ],
)
def test_audience_type_from_targeting(targeting, expected):
    assert audience_type(targeting) == expected


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("500000", "INR", 5000.0),
        ("5000", "JPY", 5000.0),
        ("5000", "KRW", 5000.0),
        ("1999", "USD", 19.99),
        ("0", "INR", None),
        (None, "INR", None),
        ("", "JPY", None),
    ],
)
def test_budgets_from_minor_units(value, currency, expected):
    assert budget_from_minor(value, currency) == expected


def _row(actions, values, **extra):
    base = {
        "account_id": "1001",
        "account_currency": "inr",
        "campaign_id": "c1",
        "campaign_name": "C",
        "adset_id": "a1",
        "adset_name": "A",
        "date_start": "2026-11-20",
        "spend": "1000.50",
        "impressions": "12000",
        "clicks": "300",
        "inline_link_clicks": "200",
        "reach": "9000",
        "frequency": "1.333333",
    }
    if actions is not None:
        base["actions"] = actions
    if values is not None:
        base["action_values"] = values
    base.update(extra)
    return base


def _entries(pairs):
    return [{"action_type": t, "value": v, "7d_click": v} for t, v in pairs]


def test_insights_frame_parses_strings_and_picks_one_purchase_type():
    types = ["omni_purchase", "purchase", "offsite_conversion.fb_pixel_purchase", "onsite_web_purchase"]
    row = _row(_entries([("link_click", "200"), *[(t, "7") for t in types]]), _entries([(t, "3500.25") for t in types]))
    frame = insights_frame([row], "act_1001", DEFAULT_PURCHASE_PRIORITY)
    r = frame.to_dicts()[0]
    assert r["date"] == date(2026, 11, 20) and r["currency"] == "INR" and r["account_id"] == "act_1001"
    assert (r["spend"], r["impressions"], r["clicks"], r["reach"]) == (1000.5, 12000, 300, 9000)
    assert r["purchases"] == 7.0 and r["purchase_value"] == 3500.25
    assert r["purchase_action_type"] == "omni_purchase"
    assert len(json.loads(r["actions_json"])) == 5


def test_no_purchase_actions_means_zero_purchases_and_no_type():
    frame = insights_frame([_row(_entries([("link_click", "20")]), None)], "act_1001", DEFAULT_PURCHASE_PRIORITY)
    r = frame.to_dicts()[0]
    assert r["purchases"] == 0.0 and r["purchase_value"] == 0.0 and r["purchase_action_type"] is None
    assert r["action_values_json"] is None


def test_purchase_value_is_read_for_the_chosen_type_even_when_a_higher_type_has_a_value_only():
    """Count and value come from the same type: the chosen type's value must be found in action_values,
    not replaced by 0 because action_values also lists a type the actions array lacks."""
    actions = _entries([("purchase", "3")])
    values = _entries([("omni_purchase", "900.00"), ("purchase", "900.00")])
    r = insights_frame([_row(actions, values)], "act_1001", DEFAULT_PURCHASE_PRIORITY).to_dicts()[0]
    assert r["purchase_action_type"] == "purchase"
    assert r["purchases"] == 3.0
    assert r["purchase_value"] == 900.0


def test_value_of_another_type_is_never_used():
    actions = _entries([("omni_purchase", "3")])
    values = _entries([("purchase", "900.00")])
    r = insights_frame([_row(actions, values)], "act_1001", DEFAULT_PURCHASE_PRIORITY).to_dicts()[0]
    assert r["purchases"] == 3.0 and r["purchase_value"] == 0.0


def test_empty_pull_gives_an_empty_frame_with_the_raw_columns():
    frame = insights_frame([], "act_1001", DEFAULT_PURCHASE_PRIORITY)
    assert frame.height == 0
    assert {"purchases", "purchase_value", "purchase_action_type", "actions_json", "currency"} <= set(frame.columns)


def test_audiences_frame_flags_cbo_lifetime_and_learning():
    campaigns = [{"id": "c1"}, {"id": "c2", "daily_budget": "3000000"}]
    adsets = [
        {
            "id": "a1",
            "campaign_id": "c1",
            "daily_budget": "250000",
            "lifetime_budget": "0",
            "created_time": "2026-10-01T23:30:00+0530",
            "learning_stage_info": {"status": "LEARNING"},
            "effective_status": "ACTIVE",
        },
        {"id": "a2", "campaign_id": "c2", "created_time": "2026-10-01T10:00:00+0530"},
        {
            "id": "a3",
            "campaign_id": "c1",
            "daily_budget": "0",
            "lifetime_budget": "9000000",
            "created_time": "2026-10-01T10:00:00+0530",
        },
    ]
    changes = [
        {"event_type": "update_ad_set_budget", "event_time": "2026-11-20T10:00:00+0000", "object_id": "a1"},
        {"event_type": "update_ad_set_budget", "event_time": "2026-11-22T04:30:00+0000", "object_id": "a1"},
    ]
    frame = audiences_frame(adsets, campaigns, {"currency": "INR", "timezone_name": "Asia/Kolkata"}, changes)
    rows = {r["adset_id"]: r for r in frame.to_dicts()}
    assert rows["a1"]["daily_budget"] == 2500.0 and rows["a1"]["is_cbo"] is False
    assert rows["a1"]["learning_stage"] == "LEARNING"
    assert rows["a1"]["launched_on"] == date(2026, 10, 1)
    assert str(rows["a1"]["last_budget_change_at"]) == "2026-11-22 04:30:00"
    assert rows["a2"]["is_cbo"] is True and rows["a2"]["daily_budget"] is None and rows["a2"]["learning_stage"] is None
    assert (
        rows["a3"]["is_cbo"] is False
        and rows["a3"]["daily_budget"] is None
        and rows["a3"]["lifetime_budget"] == 90000.0
    )


def test_user_mapping_overrides_only_the_ad_sets_and_fields_it_gives():
    derived = pl.DataFrame(
        {
            "adset_id": ["a1", "a2"],
            "audience_type": ["BROAD", "LOOKALIKE"],
            "lookalike_pct": [None, 1.0],
            "source_quality": [None, "PURCHASERS"],
            "launched_on": [date(2026, 10, 1), date(2026, 10, 2)],
            "daily_budget": [100.0, 200.0],
        }
    )
    user = pl.DataFrame(
        {
            "adset_id": ["a1"],
            "audience_type": ["INTEREST"],
            "lookalike_pct": [None],
            "source_quality": [None],
            "launched_on": [None],
            "daily_budget": [150.0],
        },
        schema_overrides={"lookalike_pct": pl.Float64, "source_quality": pl.Utf8, "launched_on": pl.Date},
    )
    out = {r["adset_id"]: r for r in apply_overrides(derived, user).to_dicts()}
    assert out["a1"]["audience_type"] == "INTEREST" and out["a1"]["daily_budget"] == 150.0
    assert out["a1"]["launched_on"] == date(2026, 10, 1)
    assert out["a2"] == derived.filter(pl.col("adset_id") == "a2").to_dicts()[0]
