"""Analysis layer: Claude explains and challenges each decision; the template explainer backs it up.

The planning, validation and merging are pure (engine/analysis.py), the cache and the call log
are warehouse tables (warehouse.py), the SDK is behind ClaudeResource (integrations/). This module
only orders them: read, ask, check, write. The warehouse is closed while Claude answers (a batch
can take an hour).
"""

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from audience_assets.defs.common import (
    PARTITIONS,
    POOL,
    account_of,
    as_of,
    description,
    doc_check_spec,
    load_partition,
    markdown_preview,
    write_partition,
)
from audience_assets.defs.resources import ClaudeResource, RulesResource, WarehouseResource
from audience_assets.engine.analysis import (
    Batch,
    actionable,
    assess_batch,
    extra_figures,
    merge_analysis,
    parse_response,
    plan_batches,
    response_schema,
    template_analysis,
)
from audience_assets.warehouse import append_rows, llm_cache_get, llm_cache_put, resource_dir

GROUP = "analysis"
PROMPT_TASK = "audience_analysis"
BUDGET_EXHAUSTED = "run token budget exhausted"
FAITHFULNESS = "faithfulness"


def load_prompt(version: str) -> tuple[str, str]:
    """A versioned prompt file and its sha256; a used version never changes."""
    path = resource_dir("prompts") / PROMPT_TASK / f"{version}.md"
    if not path.is_file():
        raise FileNotFoundError(f"prompt {PROMPT_TASK}/{version}.md not found in prompts/")
    text = path.read_text()
    return text, hashlib.sha256(text.encode()).hexdigest()


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


@dataclass
class Outcome:
    """What one run of the layer produced: answers per audience, the call log, figures, new cache entries."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    to_cache: list[tuple[str, str, str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(
        default_factory=lambda: dict.fromkeys(
            ("calls", "cache_hits", "analysed", "accepted", "tokens_in", "tokens_out"), 0
        )
    )


def _ask(claude: ClaudeResource, system: str, batches: list[Batch], cached: dict[str, str], mode: str) -> dict:
    """Outcomes for the batches not answered from the cache, within the run's token budget."""
    client = claude.client()
    from audience_assets.integrations.anthropic_client import CallOutcome

    outcomes: dict[str, Any] = {}
    pending: dict[str, dict[str, Any]] = {}
    used = 0
    schema = response_schema()
    for batch in batches:
        if batch.key in cached:
            continue
        estimate = (len(system) + len(batch.payload)) // 4 + claude.max_tokens
        if used + estimate > claude.run_token_budget:
            outcomes[batch.key] = CallOutcome(batch.key, error=BUDGET_EXHAUSTED)
            continue
        used += estimate
        pending[batch.key] = client.params(system, batch.payload, schema, claude.max_tokens)
    if pending and mode == "batch":
        outcomes.update(client.batch(pending, claude.batch_poll_seconds, claude.batch_max_wait_seconds))
    else:
        for key, params in pending.items():
            outcomes[key] = client.create(key, params)
    return outcomes


def _call_row(run_id: str, day: date, index: int, batch: Batch, outcome: Any, base: dict[str, Any]) -> dict[str, Any]:
    usage = outcome.usage if outcome else {}
    return {
        "decision_date": day,
        "run_id": run_id,
        "batch_index": index,
        "cache_key": batch.key,
        "audiences": len(batch.records),
        "request_id": outcome.request_id if outcome else None,
        **{k: usage.get(k, 0) for k in ("input_tokens", "output_tokens")},
        **{k: usage.get(k, 0) for k in ("cache_creation_input_tokens", "cache_read_input_tokens")},
        "latency_ms": outcome.latency_ms if outcome else 0,
        "stop_reason": outcome.stop_reason if outcome else None,
        **base,
    }


def _assess(
    batches: list[Batch], cached: dict[str, str], outcomes: dict, extra: list[float], meta: dict[str, Any]
) -> Outcome:
    """Check every answer against its input; log each batch."""
    out = Outcome()
    for index, batch in enumerate(batches):
        outcome = outcomes.get(batch.key)
        from_cache = outcome is None
        failure = None if from_cache else outcome.failure
        text = cached.get(batch.key) if from_cache else (outcome.text if failure is None else None)
        response, parse_failure = parse_response(text) if failure is None else (None, failure)
        if parse_failure is None and not from_cache:
            out.to_cache.append((batch.key, meta["prompt_version"], meta["model_name"], text))
        assessed = assess_batch(batch.records, response, parse_failure, extra)
        accepted = sum(r["accepted"] for r in assessed)
        out.answers += assessed
        out.figures["analysed"] += len(batch.records)
        out.figures["accepted"] += accepted
        if from_cache:
            out.figures["cache_hits"] += 1
        else:
            out.figures["calls"] += 1 if outcome.error != BUDGET_EXHAUSTED else 0
            out.figures["tokens_in"] += outcome.usage.get("input_tokens", 0)
            out.figures["tokens_out"] += outcome.usage.get("output_tokens", 0)
        base = {
            "prompt_version": meta["prompt_version"],
            "prompt_sha256": meta["prompt_sha256"],
            "model": meta["model"],
            "mode": "cache" if from_cache else meta["mode"],
            "cached": from_cache,
            "validation": "ok" if parse_failure is None else "failed",
            "fallback_reason": parse_failure,
            "accepted_audiences": accepted,
        }
        out.calls.append(_call_row(meta["run_id"], meta["day"], index, batch, outcome, base))
    return out


def run_analysis(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, claude: ClaudeResource, extra: list[float]
) -> tuple[pl.DataFrame, Outcome, dict[str, Any]]:
    """Analysis rows for every decision of the partition, with what the run did."""
    day, account = as_of(context), account_of(context)
    with duckdb.get_connection() as conn:
        rows = load_partition(conn, "decisions", day, account)
        history = conn.execute(
            "SELECT decision_date, adset_id, action, bucket, trend FROM decisions WHERE decision_date < $day "
            "AND ($account::VARCHAR IS NULL OR account_id = $account)",
            {"day": day, "account": account},
        ).pl()
    system, prompt_sha = load_prompt(claude.prompt_version)
    meta = {
        "prompt_version": f"{PROMPT_TASK}/{claude.prompt_version}",
        "prompt_sha256": prompt_sha,
        "model": claude.model if claude.enabled() else None,
        "model_name": claude.model,
        "run_id": context.run.run_id,
        "day": day,
    }
    out = Outcome()
    if claude.enabled():
        meta["mode"] = claude.run_mode("dagster/schedule_name" in context.run.tags)
        selected = actionable(rows, claude.scope)
        batches = plan_batches(
            selected, history, claude.batch_size, claude.history_depth, meta["prompt_version"], prompt_sha, claude.model
        )
        with duckdb.get_connection() as conn:
            cached = llm_cache_get(conn, [b.key for b in batches])
        with duckdb.released():
            outcomes = _ask(claude, system, batches, cached, meta["mode"])
        out = _assess(batches, cached, outcomes, extra, meta)
    frame = merge_analysis(
        template_analysis(rows), out.answers, claude.enabled(), meta["prompt_version"], prompt_sha, meta["model"]
    )
    return frame, out, meta


@dg.asset(
    partitions_def=PARTITIONS,
    pool=POOL,
    group_name=GROUP,
    deps=["decisions"],
    description=description("analysis"),
    kinds={"duckdb", "anthropic"},
    check_specs=[
        doc_check_spec("analysis"),
        dg.AssetCheckSpec(
            FAITHFULNESS,
            asset="analysis",
            description="Share of Claude's answers whose every figure matches the input (WARN below the floor)",
        ),
    ],
)
def analysis(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, claude: ClaudeResource, rules: RulesResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    frame, out, meta = run_analysis(context, duckdb, claude, extra_figures(rules.load()))
    f = out.figures
    analysed = f["analysed"]
    rate = round(f["accepted"] / analysed, 4) if analysed else None
    with duckdb.get_connection() as conn:
        llm_cache_put(conn, out.to_cache)
        logged = append_rows(conn, "llm_calls", pl.DataFrame(out.calls, schema=LLM_CALL_SCHEMA))
        counts = frame.group_by("explanation_source").len().sort("explanation_source")
        result = write_partition(
            context,
            conn,
            "analysis",
            frame,
            extra={
                "llm_enabled": claude.enabled(),
                "model": claude.model if claude.enabled() else "none (template)",
                "prompt_version": meta["prompt_version"],
                "prompt_sha256": meta["prompt_sha256"],
                "audiences_analysed": analysed,
                "audiences_accepted": f["accepted"],
                "faithfulness_rate": rate if rate is not None else -1.0,
                "llm_calls": f["calls"],
                "cache_hits": f["cache_hits"],
                "input_tokens": f["tokens_in"],
                "output_tokens": f["tokens_out"],
                "input_tokens_per_audience": round(f["tokens_in"] / analysed, 1) if analysed else 0.0,
                "output_tokens_per_audience": round(f["tokens_out"] / analysed, 1) if analysed else 0.0,
                "calls_logged": logged,
                "seconds": round(time.monotonic() - started, 2),
                "by_source": dg.MetadataValue.md(markdown_preview(counts)),
                "needs_review": int(frame["needs_review"].sum()),
            },
            preview_columns=["adset_id", "explanation_source", "assessment", "needs_review", "fallback_reason"],
        )
    context.log.info(
        f"analysis: {analysed} audiences analysed, {f['accepted']} accepted, "
        f"{f['calls']} calls, {f['cache_hits']} cache hits"
    )
    return result._replace(check_results=[*result.check_results, faithfulness_result(frame, claude.min_faithfulness)])


def faithfulness_result(rows: pl.DataFrame, floor: float) -> dg.AssetCheckResult:
    """WARN when fewer than `floor` of the audiences Claude answered kept Claude's answer."""
    analysed = rows.filter(pl.col("analysed"))
    rate = float(analysed["faithful"].mean()) if analysed.height else None
    reasons = analysed.filter(~pl.col("faithful")).group_by("fallback_reason").len().sort("len", descending=True)
    return dg.AssetCheckResult(
        asset_key="analysis",
        check_name=FAITHFULNESS,
        passed=rate is None or rate >= floor,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "faithfulness_rate": rate if rate is not None else -1.0,
            "analysed": analysed.height,
            "floor": floor,
            "fallback_reasons": dg.MetadataValue.md(markdown_preview(reasons, rows=20) if reasons.height else "none"),
        },
    )
