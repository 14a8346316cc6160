"""Published contracts stay in step with the code that produces them."""

import json
from pathlib import Path

from audience_assets.engine.schema import recommendation_json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_committed_json_schema_matches_the_model():
    committed = json.loads((ROOT / "audience_assets/schemas/recommendations.schema.json").read_text())
    assert committed == recommendation_json_schema(), (
        "run `audience-engine schema > audience_assets/schemas/recommendations.schema.json`"
    )


def test_schema_carries_the_spec_fields():
    rec = recommendation_json_schema()["$defs"]["Recommendation"]
    for field in ("audience_id", "audience_name", "action", "scale_percentage", "confidence", "reasons", "risks"):
        assert field in rec["required"], field


def test_readme_and_ci_show_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < 1200
    assert "make test" in (ROOT / ".ci/run").read_text()
