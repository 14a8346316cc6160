"""The single entry point: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from audience_assets.defs.analysis import assets as analysis
from audience_assets.defs.analysis.assets import claude_resource_from_env
from audience_assets.defs.automation import csv_inbox_sensor, daily_schedule, main_job
from audience_assets.defs.delivery import assets as delivery
from audience_assets.defs.ingestion import assets as ingestion
from audience_assets.defs.metrics import assets as metrics
from audience_assets.defs.resources import default_resources
from audience_assets.defs.rules import assets as rules

LAYERS = (ingestion, metrics, rules, analysis, delivery)


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[a for layer in LAYERS for a in layer.ASSETS],
        asset_checks=[c for layer in LAYERS for c in layer.CHECKS],
        jobs=[main_job],
        schedules=[daily_schedule],
        sensors=[csv_inbox_sensor],
        resources={**default_resources(), "claude": claude_resource_from_env()},
    )


defs = build_definitions()
