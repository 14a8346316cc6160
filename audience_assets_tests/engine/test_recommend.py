"""Recommendation output (spec 12): rows, ranking, pydantic models, template reasons; fmt helpers."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
from pydantic import ValidationError

from audience_assets.engine.fmt import dec, money, num, pct
from audience_assets.engine.recommend import METRIC_COLUMNS, to_models, to_recommendations
from audience_assets.engine.schema import Recommendation, RecommendationFile
from audience_assets_tests.engine_cases import AS_OF, aud, config, rows, run

CFG = config(target_cpa={"act_1": 2000.0})
AUDS = [
    aud("scale", spend=20_000, roas=3.6, purchases=40, name="Prospecting | LLA 3%"),
    aud("scale_big", spend=60_000, roas=4.5, name="Prospecting | LLA 1%", lookalike_pct=1.0),
    aud("pause", spend=30_000, roas=1.5, type="INTEREST"),
    aud("hold_avg", spend=100_000, roas=2.6, type="BROAD"),
    aud("cooldown", spend=30_000, roas=4.0, last_change_hours=10.0),
    aud("retest", spend=1_000, roas=4.0, purchases=1, age=40, long_spend=60_000, long_roas=4.0, long_purchases=150),
    aud("young", spend=20_000, roas=3.0, age=1),
    aud("zero", spend=0, roas=0, purchases=0),
]
SPEC_FIELDS = ["audience_id", "audience_name", "action", "scale_percentage", "confidence", "reasons", "risks"]


@pytest.fixture(scope="module")
def result() -> tuple[pl.DataFrame, pl.DataFrame]:
    return run(AUDS, cfg=CFG)


def test_expected_actions(result):
    decided = rows(result[0])
    assert {k: r["action"] for k, r in decided.items()} == {
        "scale": "SCALE",
        "scale_big": "SCALE",
        "pause": "PAUSE",
        "hold_avg": "HOLD",
        "cooldown": "HOLD",
        "retest": "RETEST",
        "young": "HOLD",
        "zero": "HOLD",
        "zz_ballast": "HOLD",
    }


def test_models_validate_and_carry_the_spec_fields_first(result):
    models = to_models(result[1])
    assert len(models) == result[1].height == len(AUDS) + 1
    assert list(Recommendation.model_fields)[: len(SPEC_FIELDS)] == SPEC_FIELDS
    for m in models:
        dumped = m.model_dump(mode="json")
        assert list(dumped)[: len(SPEC_FIELDS)] == SPEC_FIELDS
        assert isinstance(dumped["audience_id"], str) and isinstance(dumped["audience_name"], str)
        assert dumped["action"] in ("SCALE", "HOLD", "PAUSE", "RETEST")
        assert dumped["confidence"] in ("HIGH", "MEDIUM", "LOW")
        assert all(isinstance(x, str) and x for x in dumped["reasons"] + dumped["risks"])
        assert dumped["reasons"], m.audience_id
    by_id = {m.audience_id: m for m in models}
    assert by_id["scale"].audience_name == "Prospecting | LLA 3%"
    assert by_id["scale"].decision_date == AS_OF


def test_models_round_trip_through_the_recommendation_file_json(result):
    models = to_models(result[1])
    file = RecommendationFile(
        decision_date=AS_OF,
        generated_at="2026-11-26T00:00:00Z",
        config_hash=CFG.config_hash(),
        summary={"SCALE": 2},
        recommendations=models,
    )
    text = file.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    again = RecommendationFile.model_validate(json.loads(text))
    assert again.recommendations == models


def test_scale_percentage_is_zero_unless_scale(result):
    recs = result[1]
    assert (
        recs.filter(pl.col("action") != "SCALE")["scale_percentage"].to_list()
        == [0] * recs.filter(pl.col("action") != "SCALE").height
    )
    scaled = rows(recs, key="audience_id")
    assert (scaled["scale"]["scale_percentage"], scaled["scale_big"]["scale_percentage"]) == (20, 25)
    assert scaled["scale"]["new_daily_budget"] == pytest.approx(3_600.0)


def test_ranks_by_score_with_eligible_first(result):
    recs = result[1]
    assert recs["rank"].to_list() == list(range(1, recs.height + 1))
    eligible = recs["eligible"].to_list()
    assert eligible == sorted(eligible, reverse=True)  # all eligible rows before the others
    for flag in (True, False):
        scores = recs.filter(pl.col("eligible") == flag)["metric_score"].to_list()
        assert scores == sorted(scores, reverse=True)
    assert recs["metric_score"][0] == recs.filter(pl.col("eligible"))["metric_score"].max()


def test_rank_ties_are_broken_by_audience_id():
    auds = [aud(x, spend=20_000, roas=3.6, purchases=40) for x in ("c", "a", "b")]
    recs = run(auds)[1]
    assert recs.filter(pl.col("eligible"))["audience_id"].to_list() == ["a", "b", "c"]


def test_ineligible_rows_have_no_bucket_or_trend(result):
    recs = rows(result[1], key="audience_id")
    assert recs["young"]["bucket"] is None and recs["young"]["trend"] is None
    assert recs["scale"]["bucket"] == "WINNER" and recs["scale"]["trend"] == "STABLE"


@pytest.mark.parametrize(
    ("adset", "fragments"),
    [
        (
            "scale",
            [
                "ROAS 3.60 is 1.44x the account average of 2.50 over 7 days",
                "Spend ₹20,000 and 40 purchases over 7 days, above the noise thresholds (₹3,000, 2 purchases, 2 days old)",
                "WINNER bucket on the LOOKALIKE thresholds: at least 1.20x the account average",
                "Decision matrix: WINNER + STABLE -> SCALE",
                "Raise the daily budget 20%: ₹3,000 -> ₹3,600",
            ],
        ),
        (
            "pause",
            [
                "ROAS 1.50 is 0.60x the account average of 2.50 over 7 days",
                "LOSER with enough data: spend ₹30,000 >= 2.0 x target CPA ₹2,000",
                "Decision matrix: LOSER + ENOUGH_DATA -> PAUSE",
            ],
        ),
        (
            "hold_avg",
            [
                "ROAS 2.60 is 1.04x the account average of 2.50 over 7 days",
                "AVERAGE bucket on the BROAD thresholds: between 0.80x and 1.10x the account average",
            ],
        ),
        ("young", ["Not enough data to decide: launched 1 days ago, under the minimum age of 2 days"]),
    ],
)
def test_reasons_carry_the_real_figures(result, adset, fragments):
    reasons = rows(result[1], key="audience_id")[adset]["reasons"]
    for fragment in fragments:
        assert fragment in reasons, (fragment, reasons)


def test_risks_for_actions(result):
    recs = rows(result[1], key="audience_id")
    assert "A pause of 7 days or more resets Meta's learning phase if the ad set is restarted" in recs["pause"]["risks"]
    assert not any("learning phase if the ad set is restarted" in r for r in recs["scale"]["risks"])


def test_recommendation_metrics_match_the_decision_rows(result):
    decisions, recs = result
    d = rows(decisions)["scale"]
    r = rows(recs, key="audience_id")["scale"]
    for name, src in METRIC_COLUMNS.items():
        # Money to the minor unit (INR: 2 places), ratios to 4 (ctr and cvr to 6).
        places = 2 if name in ("spend", "revenue", "cpa", "target_cpa") else 6 if name in ("ctr", "cvr") else 4
        expected = d[src] if d[src] is None or name in ("window_days", "purchases") else round(d[src], places)
        assert r[f"metric_{name}"] == expected, name
    assert r["metric_roas"] == pytest.approx(3.6)
    assert r["config_hash"] == CFG.config_hash()
    assert r["explanation_source"] == "template"


def test_zero_row_metrics_are_null_in_the_models(result):
    zero = {m.audience_id: m for m in to_models(result[1])}["zero"]
    assert zero.metrics.roas is None and zero.metrics.cpa is None and zero.metrics.normalized_roas is None
    assert zero.metrics.spend == 0.0


def test_to_recommendations_accepts_the_stored_decisions_table(result):
    """Delivery re-reads decisions from DuckDB; the same frame must rank the same way."""
    again = to_recommendations(result[0].sample(fraction=1.0, shuffle=True, seed=3))
    assert again.equals(result[1])


def test_audience_without_metadata_still_serialises():
    """The engine keeps an audience with no metadata row (filter reason "no audience metadata"),
    so its recommendation must pass the output schema like any other HOLD."""
    decisions, recs = run(
        [aud("known", spend=20_000, roas=3.6), aud("unknown", metadata=False, spend=20_000, roas=3.6)]
    )
    assert rows(decisions)["unknown"]["action"] == "HOLD"
    models = to_models(recs)
    assert {m.audience_id for m in models} == {"known", "unknown", "zz_ballast"}


# ----------------------------------------------------------------------------- pydantic model
def _model_kwargs(**over):
    base = dict(
        audience_id="a",
        audience_name="A",
        action="SCALE",
        scale_percentage=20,
        confidence="HIGH",
        reasons=["r"],
        risks=[],
        account_id="act_1",
        campaign_id="c1",
        campaign_name="C",
        decision_date=date(2026, 11, 26),
        rank=1,
        audience_type="BROAD",
        eligible=True,
        bucket="WINNER",
        trend="STABLE",
        currency="INR",
        current_daily_budget=3000.0,
        new_daily_budget=3600.0,
        metrics=dict(
            window_days=7,
            spend=1.0,
            purchases=1.0,
            revenue=1.0,
            roas=1.0,
            account_avg_roas=1.0,
            normalized_roas=1.0,
            cpa=1.0,
            target_cpa=1.0,
            ctr=0.1,
            cvr=0.1,
            roas_change=None,
            spend_acceleration=None,
            p_true_roas_in_bucket=None,
            score=1.0,
        ),
        config_hash="x",
    )
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("over", "ok"),
    [
        ({}, True),
        ({"action": "SCALE", "scale_percentage": 0}, False),
        ({"action": "HOLD", "scale_percentage": 20}, False),
        ({"action": "HOLD", "scale_percentage": 0}, True),
        ({"action": "PAUSE", "scale_percentage": 0}, True),
        ({"action": "RETEST", "scale_percentage": 5}, False),
        ({"action": "BOOST", "scale_percentage": 0}, False),
        ({"confidence": "VERY_HIGH"}, False),
        ({"scale_percentage": 101}, False),
        ({"rank": 0}, False),
        ({"unexpected": 1}, False),
    ],
    ids=[
        "valid_scale",
        "scale_0pct",
        "hold_20pct",
        "hold_0pct",
        "pause_0pct",
        "retest_5pct",
        "unknown_action",
        "unknown_confidence",
        "pct_over_100",
        "rank_0",
        "extra_field",
    ],
)
def test_recommendation_model_rules(over, ok):
    if ok:
        Recommendation(**_model_kwargs(**over))
    else:
        with pytest.raises(ValidationError):
            Recommendation(**_model_kwargs(**over))


# ----------------------------------------------------------------------------- fmt helpers
def _fmt(expr_fn, values, dtype=pl.Float64, currency="INR"):
    frame = pl.DataFrame({"x": pl.Series(values, dtype=dtype), "currency": [currency] * len(values)})
    return frame.select(expr_fn(pl.col("x")).alias("out"))["out"].to_list()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (18_400.0, "₹18,400"),
        (0.0, "₹0"),
        (999.4, "₹999"),
        (999.6, "₹1,000"),
        (1_234_567.0, "₹1,234,567"),
        (1_000_000.0, "₹1,000,000"),
        (2_500_000_000.0, "₹2,500,000,000"),
        (-1_500.0, "₹-1,500"),
        (None, None),
    ],
)
def test_money(value, text):
    assert _fmt(money, [value]) == [text]


@pytest.mark.parametrize(
    ("currency", "text"), [("USD", "$1,500"), ("EUR", "€1,500"), ("GBP", "£1,500"), ("AED", "AED 1,500")]
)
def test_money_symbols(currency, text):
    assert _fmt(money, [1500.0], currency=currency) == [text]


@pytest.mark.parametrize(
    ("value", "text"), [(40.0, "40"), (1_234.0, "1,234"), (2.5, "2.5"), (0.0, "0"), (7.25, "7.2"), (7.26, "7.3")]
)
def test_num(value, text):
    assert _fmt(num, [value]) == [text]


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (3.6, 2, "3.60"),
        (1.44, 2, "1.44"),
        (1.0, 2, "1.00"),
        (0.05, 2, "0.05"),
        (12.3456, 2, "12.35"),
        (6.6667, 1, "6.7"),
        (-1.5, 2, "-1.50"),
        (0.0049, 3, "0.005"),
        (-0.001, 2, "0.00"),
    ],
)
def test_dec(value, places, text):
    assert _fmt(lambda x: dec(x, places), [value]) == [text]


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [
        (0.234, False, "23%"),
        (0.15, False, "15%"),
        (1.0, False, "100%"),
        (-0.4, True, "-40%"),
        (0.5, True, "+50%"),
        (0.0, True, "+0%"),
        (-0.3, False, "-30%"),
    ],
)
def test_pct(value, signed, text):
    assert _fmt(lambda x: pct(x, signed=signed), [value]) == [text]


def test_json_figures_are_rounded_to_the_currency_and_to_readable_ratios(result):
    """No 30750.339999999997 in the file: money to the minor unit, ratios to 4 places."""
    import json

    from audience_assets.engine.recommend import recommendation_document

    doc = json.loads(recommendation_document(result[1], result[1]["decision_date"][0], "now").model_dump_json())
    for rec in doc["recommendations"]:
        for key in ("spend", "revenue", "cpa", "target_cpa"):
            value = rec["metrics"][key]
            assert value is None or round(value, 2) == value, (key, value)
        for key in ("roas", "normalized_roas", "account_avg_roas", "score"):
            value = rec["metrics"][key]
            assert value is None or len(repr(value).split(".")[-1]) <= 4, (key, value)
        for key in ("current_daily_budget", "new_daily_budget"):
            assert rec[key] is None or round(rec[key], 2) == rec[key]
