"""Analysis layer: Claude explains and challenges each decision; the template explainer backs it up."""

import hashlib
import os
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb as duckdb_mod
import polars as pl
from dagster_duckdb import DuckDBResource
from pydantic import Field

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    as_of,
    description,
    doc_tests_check,
    load_partition,
    markdown_preview,
    write_partition,
)
from audience_assets.defs.resources import RulesResource
from audience_assets.defs.rules.assets import decisions
from audience_assets.engine.analysis import (
    actionable,
    assess_batch,
    build_inputs,
    cache_key,
    parse_response,
    prompt_payload,
    response_schema,
    template_analysis,
)
from audience_assets.engine.config import ConfigError, RulesConfig
from audience_assets.integrations.anthropic_client import CallOutcome, ClaudeClient
from audience_assets.warehouse import resource_dir

GROUP = "analysis"
PROMPT_TASK = "audience_analysis"
DEFAULT_MODEL = "claude-haiku-5-5"


class ClaudeResource(dg.ConfigurableResource):
    """The Claude analysis layer's settings. Without an API key the template explainer runs alone."""

    api_key: str | None = Field(None, description="from EnvVar('ANTHROPIC_API_KEY'); never logged or stored")
    base_url: str | None = Field(None, description="from ANTHROPIC_BASE_URL when set")
    model: str = DEFAULT_MODEL
    prompt_version: str = "v1"
    timeout_seconds: float = 60.0
    max_retries: int = 3
    batch_size: int = Field(20, ge=1, le=200, description="audiences per request")
    max_tokens: int = Field(4096, ge=256, description="output tokens per request")
    run_token_budget: int = Field(300_000, ge=0, description="input + output tokens per run; then template")
    scope: str = Field("actionable", description="actionable (SCALE/PAUSE/RETEST, HOLDs near a threshold) or all")
    mode: str = Field("auto", description="sync, batch, or auto (batch for scheduled runs)")
    batch_poll_seconds: float = 5.0
    batch_max_wait_seconds: float = 3600.0
    history_depth: int = 5
    min_faithfulness: float = Field(0.9, ge=0, le=1, description="WARN below this share of faithful answers")

    def enabled(self) -> bool:
        return bool(self.api_key)

    def client(self) -> ClaudeClient:
        return ClaudeClient(
            api_key=self.api_key or "",
            model=self.model,
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            max_retries=self.max_retries,
        )


def claude_resource_from_env() -> ClaudeResource:
    """EnvVar secrets only when they are set, so a machine without a key still loads and runs."""
    return ClaudeResource(
        api_key=dg.EnvVar("ANTHROPIC_API_KEY") if os.environ.get("ANTHROPIC_API_KEY") else None,
        base_url=dg.EnvVar("ANTHROPIC_BASE_URL") if os.environ.get("ANTHROPIC_BASE_URL") else None,
    )


def load_prompt(version: str) -> tuple[str, str]:
    """A versioned prompt file and its sha256; a used version never changes."""
    path = resource_dir("prompts") / PROMPT_TASK / f"{version}.md"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {PROMPT_TASK}/{version}.md not found in prompts/")
    text = path.read_text()
    return text, hashlib.sha256(text.encode()).hexdigest()


def _extra_figures(cfg: RulesConfig) -> list[float]:
    """Rule settings Claude may quote besides each audience's metrics."""
    values = [
        cfg.min_spend,
        cfg.min_purchases,
        cfg.min_age_days,
        cfg.winner_roas,
        cfg.loser_roas,
        cfg.cooldown_hours,
        cfg.scale_step_pct,
        cfg.min_scale_pct,
        cfg.max_scale_pct,
        cfg.pause_spend_multiple,
        cfg.trend_min_purchases,
        cfg.decision_window_days,
        (cfg.decision_window_days + 1) // 2,
        cfg.decision_window_days // 2,
        cfg.long_window_days,
        cfg.confidence_high,
        cfg.confidence_medium,
        cfg.max_account_daily_increase_pct,
        50.0,  # Meta's learning-phase guideline, named in the prompt's domain
    ]
    for key in cfg.modifiers:
        values += [cfg.resolved(key, n) for n in ("winner_roas", "loser_roas", "cooldown_hours", "scale_step_pct")]
    return [float(v) for v in values if v is not None]


def ensure_cache(conn: duckdb_mod.DuckDBPyConnection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS llm_cache (cache_key VARCHAR PRIMARY KEY, prompt_version VARCHAR,
           model VARCHAR, response_text VARCHAR, created_at TIMESTAMP)"""
    )


def _cache_put(conn: duckdb_mod.DuckDBPyConnection, key: str, version: str, model: str, text: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?)",
        [key, version, model, text, datetime.now(UTC).replace(tzinfo=None)],
    )


def _mode(claude: ClaudeResource, context: dg.AssetExecutionContext) -> str:
    if claude.mode not in ("auto", "sync", "batch"):
        raise ConfigError(f"claude.mode must be auto, sync or batch, not {claude.mode!r}")
    if claude.mode in ("sync", "batch"):
        return claude.mode
    scheduled = "dagster/schedule_name" in context.run.tags
    return "batch" if scheduled else "sync"


def _call_log_row(
    run_id: str, day, index: int, batch_key: str, outcome: CallOutcome | None, audiences: int, meta: dict[str, Any]
) -> dict[str, Any]:
    u = outcome.usage if outcome else {}
    return {
        "decision_date": day,
        "run_id": run_id,
        "batch_index": index,
        "cache_key": batch_key,
        "audiences": audiences,
        "request_id": outcome.request_id if outcome else None,
        "input_tokens": u.get("input_tokens", 0),
        "output_tokens": u.get("output_tokens", 0),
        "cache_creation_input_tokens": u.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": u.get("cache_read_input_tokens", 0),
        "latency_ms": outcome.latency_ms if outcome else 0,
        "stop_reason": outcome.stop_reason if outcome else None,
        **meta,
    }


def run_analysis(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    claude: ClaudeResource,
    cfg: RulesConfig,
) -> tuple[pl.DataFrame, list[dict[str, Any]], dict[str, Any], list[tuple[str, str, str, str]]]:
    """Analysis rows for every decision of the partition, the call log, run figures and new cache entries.

    The warehouse is read first and closed before any request to Claude (a batch can take an
    hour): other writers are not held up by the wait.
    """
    day = as_of(context)
    with duckdb.get_connection() as conn:
        ensure_cache(conn)
        rows = load_partition(conn, "decisions", day)
        history = conn.execute(
            "SELECT decision_date, adset_id, action, bucket, trend FROM decisions WHERE decision_date < ?", [day]
        ).pl()
    template = template_analysis(rows)
    system, prompt_sha = load_prompt(claude.prompt_version)
    base = {
        "prompt_version": f"{PROMPT_TASK}/{claude.prompt_version}",
        "prompt_sha256": prompt_sha,
        "model": claude.model if claude.enabled() else None,
    }
    figures: dict[str, Any] = {
        "calls": 0,
        "cache_hits": 0,
        "analysed": 0,
        "accepted": 0,
        "tokens_in": 0,
        "tokens_out": 0,
    }
    results: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    to_cache: list[tuple[str, str, str, str]] = []
    if claude.enabled():
        selected = actionable(rows, claude.scope)
        extra = _extra_figures(cfg)
        batches = []
        for _account, group in selected.group_by("account_id", maintain_order=True):
            currency = group["currency"][0] or ""
            records = build_inputs(
                group, history.filter(pl.col("adset_id").is_in(group["adset_id"].implode())), claude.history_depth
            )
            for start in range(0, len(records), claude.batch_size):
                chunk = records[start : start + claude.batch_size]
                payload = prompt_payload(chunk, currency)
                batches.append((chunk, payload, cache_key(base["prompt_version"], prompt_sha, claude.model, payload)))
        with duckdb.get_connection() as conn:
            keys = [key for _chunk, _payload, key in batches]
            cached_texts = dict(
                conn.execute(
                    "SELECT cache_key, response_text FROM llm_cache WHERE list_contains(?, cache_key)", [keys]
                ).fetchall()
            )
        client = claude.client()
        schema = response_schema()
        texts: dict[str, str | None] = {}
        outcomes: dict[str, CallOutcome | None] = {}
        pending: dict[str, dict[str, Any]] = {}
        budget_used = 0
        for _chunk, payload, key in batches:
            cached = cached_texts.get(key)
            if cached is not None:
                texts[key], outcomes[key] = cached, None
                figures["cache_hits"] += 1
                continue
            estimate = (len(system) + len(payload)) // 4 + claude.max_tokens
            if budget_used + estimate > claude.run_token_budget:
                outcomes[key] = CallOutcome(key, error="run token budget exhausted")
                continue
            budget_used += estimate
            pending[key] = client.params(system, payload, schema, claude.max_tokens)
        mode = _mode(claude, context)
        if pending and mode == "batch":
            outcomes.update(client.batch(pending, claude.batch_poll_seconds, claude.batch_max_wait_seconds))
        else:
            for key, params in pending.items():
                outcomes[key] = client.create(key, params)
        run_id = context.run.run_id
        for index, (chunk, _payload, key) in enumerate(batches):
            outcome = outcomes.get(key)
            cached = outcome is None
            failure = None if cached else outcome.failure
            text = texts.get(key) if cached else (outcome.text if failure is None else None)
            response, parse_failure = parse_response(text) if failure is None else (None, failure)
            if parse_failure is None and not cached:
                to_cache.append((key, base["prompt_version"], claude.model, text))
            assessed = assess_batch(chunk, response, parse_failure, extra)
            results += assessed
            figures["analysed"] += len(chunk)
            figures["accepted"] += sum(r["accepted"] for r in assessed)
            if not cached:
                figures["calls"] += 1 if outcome.error != "run token budget exhausted" else 0
                figures["tokens_in"] += outcome.usage.get("input_tokens", 0)
                figures["tokens_out"] += outcome.usage.get("output_tokens", 0)
            calls.append(
                _call_log_row(
                    run_id,
                    day,
                    index,
                    key,
                    outcome,
                    len(chunk),
                    {
                        **base,
                        "mode": "cache" if cached else mode,
                        "cached": cached,
                        "validation": "ok" if parse_failure is None else "failed",
                        "fallback_reason": parse_failure,
                        "accepted_audiences": sum(r["accepted"] for r in assessed),
                    },
                )
            )
    answered = pl.DataFrame(
        results,
        schema={
            "adset_id": pl.Utf8,
            "ref": pl.Utf8,
            "accepted": pl.Boolean,
            "fallback_reason": pl.Utf8,
            "assessment": pl.Utf8,
            "explanation": pl.Utf8,
            "risk_flags": pl.List(pl.Utf8),
            "alternatives": pl.List(pl.Utf8),
            "dropped_alternatives": pl.List(pl.Utf8),
            "cited_metrics": pl.Utf8,
            "unknown_refs": pl.Utf8,
            "disagreed": pl.Boolean,
        },
    )
    merged = (
        template.join(answered.rename(lambda c: f"c_{c}" if c != "adset_id" else c), on="adset_id", how="left")
        .with_columns(
            pl.col("c_ref").is_not_null().alias("analysed"),
            pl.col("c_accepted").fill_null(False).alias("_ok"),
        )
        .select(
            "decision_date",
            "account_id",
            "adset_id",
            pl.col("c_ref").alias("ref"),
            "analysed",
            pl.when(pl.col("_ok")).then(pl.lit("claude")).otherwise(pl.lit("template")).alias("explanation_source"),
            pl.when(pl.col("_ok")).then(pl.col("c_assessment")).otherwise(pl.col("assessment")).alias("assessment"),
            pl.when(pl.col("_ok")).then(pl.col("c_explanation")).otherwise(pl.col("explanation")).alias("explanation"),
            pl.when(pl.col("_ok")).then(pl.col("c_risk_flags")).otherwise(pl.col("risk_flags")).alias("risk_flags"),
            pl.when(pl.col("_ok"))
            .then(pl.col("c_alternatives"))
            .otherwise(pl.col("alternatives"))
            .alias("alternatives"),
            pl.col("c_dropped_alternatives").fill_null([]).alias("dropped_alternatives"),
            pl.when(pl.col("_ok")).then(pl.col("c_cited_metrics")).alias("cited_metrics"),
            pl.when(pl.col("analysed") & pl.col("_ok"))
            .then(pl.lit(True))
            .when(pl.col("analysed"))
            .then(pl.lit(False))
            .alias("faithful"),
            pl.when(~pl.col("analysed") & pl.lit(not claude.enabled()))
            .then(pl.lit("no ANTHROPIC_API_KEY: template explanation"))
            .when(~pl.col("analysed"))
            .then(pl.lit("not selected for analysis (scope)"))
            .otherwise(pl.col("c_fallback_reason"))
            .alias("fallback_reason"),
            pl.col("c_disagreed").fill_null(False).alias("needs_review"),
            pl.col("c_unknown_refs").alias("unknown_refs"),
            pl.lit(base["prompt_version"]).alias("prompt_version"),
            pl.lit(prompt_sha).alias("prompt_sha256"),
            pl.lit(base["model"], dtype=pl.Utf8).alias("model"),
        )
        .sort("account_id", "adset_id")
    )
    figures["faithfulness_rate"] = round(figures["accepted"] / figures["analysed"], 4) if figures["analysed"] else None
    figures["prompt_version"] = base["prompt_version"]
    figures["prompt_sha256"] = prompt_sha
    return merged, calls, figures, to_cache


LLM_CALL_SCHEMA = {
    "decision_date": pl.Date,
    "run_id": pl.Utf8,
    "batch_index": pl.Int64,
    "cache_key": pl.Utf8,
    "audiences": pl.Int64,
    "request_id": pl.Utf8,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_creation_input_tokens": pl.Int64,
    "cache_read_input_tokens": pl.Int64,
    "latency_ms": pl.Int64,
    "stop_reason": pl.Utf8,
    "prompt_version": pl.Utf8,
    "prompt_sha256": pl.Utf8,
    "model": pl.Utf8,
    "mode": pl.Utf8,
    "cached": pl.Boolean,
    "validation": pl.Utf8,
    "fallback_reason": pl.Utf8,
    "accepted_audiences": pl.Int64,
}


def append_calls(conn: duckdb_mod.DuckDBPyConnection, calls: list[dict[str, Any]]) -> int:
    """Append this run's calls to the llm_calls log (a log: earlier runs are kept)."""
    frame = pl.DataFrame(calls, schema=LLM_CALL_SCHEMA)
    conn.register("_calls", frame)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS llm_calls AS SELECT * FROM _calls LIMIT 0")
        conn.execute("INSERT INTO llm_calls BY NAME SELECT * FROM _calls")
    finally:
        conn.unregister("_calls")
    return frame.height


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=[decisions],
    description=description("analysis"),
    kinds={"duckdb", "anthropic"},
)
def analysis(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, claude: ClaudeResource, rules: RulesResource
) -> dg.MaterializeResult:
    cfg = rules.load()
    started = time.monotonic()
    frame, calls, figures, to_cache = run_analysis(context, duckdb, claude, cfg)
    with duckdb.get_connection() as conn:
        for entry in to_cache:
            _cache_put(conn, *entry)
        logged = append_calls(conn, calls)
        per_audience_in = figures["tokens_in"] / figures["analysed"] if figures["analysed"] else 0
        per_audience_out = figures["tokens_out"] / figures["analysed"] if figures["analysed"] else 0
        counts = frame.group_by("explanation_source").len().sort("explanation_source")
        result = write_partition(
            context,
            conn,
            "analysis",
            frame,
            extra={
                "llm_enabled": claude.enabled(),
                "model": claude.model if claude.enabled() else "none (template)",
                "prompt_version": figures["prompt_version"],
                "prompt_sha256": figures["prompt_sha256"],
                "audiences_analysed": figures["analysed"],
                "audiences_accepted": figures["accepted"],
                "faithfulness_rate": figures["faithfulness_rate"] if figures["faithfulness_rate"] is not None else -1.0,
                "llm_calls": figures["calls"],
                "cache_hits": figures["cache_hits"],
                "input_tokens": figures["tokens_in"],
                "output_tokens": figures["tokens_out"],
                "input_tokens_per_audience": round(per_audience_in, 1),
                "output_tokens_per_audience": round(per_audience_out, 1),
                "calls_logged": logged,
                "seconds": round(time.monotonic() - started, 2),
                "by_source": dg.MetadataValue.md(markdown_preview(counts)),
                "needs_review": int(frame["needs_review"].sum()),
            },
            preview_columns=["adset_id", "explanation_source", "assessment", "needs_review", "fallback_reason"],
        )
    context.log.info(
        f"analysis: {figures['analysed']} audiences analysed, {figures['accepted']} accepted, "
        f"{figures['calls']} calls, {figures['cache_hits']} cache hits"
    )
    return result


@dg.asset_check(
    asset=analysis,
    name="faithfulness",
    pool=POOL,
    partitions_def=PARTITIONS,
    description="Share of Claude's answers whose every figure matches the input (WARN below the floor)",
)
def faithfulness_check(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, claude: ClaudeResource
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        rows = load_partition(conn, "analysis", as_of(context))
    analysed = rows.filter(pl.col("analysed"))
    rate = float(analysed["faithful"].mean()) if analysed.height else None
    reasons = analysed.filter(~pl.col("faithful")).group_by("fallback_reason").len().sort("len", descending=True)
    return dg.AssetCheckResult(
        passed=rate is None or rate >= claude.min_faithfulness,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "faithfulness_rate": rate if rate is not None else -1.0,
            "analysed": analysed.height,
            "floor": claude.min_faithfulness,
            "fallback_reasons": dg.MetadataValue.md(markdown_preview(reasons, rows=20) if reasons.height else "none"),
        },
    )


CHECKS = [faithfulness_check, doc_tests_check(analysis, "analysis")]
ASSETS = [analysis]
