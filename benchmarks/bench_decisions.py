"""Decision benchmark: the engine's money decisions against naive rules, on simulated accounts with a known truth.

For each seed: build a scenario (audience_assets/sample/scenarios.py), write its CSVs to a temporary
folder, run the engine through its CLI on a fresh warehouse (`audience-engine recommend --quiet`,
temporary --db, --out and DAGSTER_HOME), run the reference policies (audience_assets/sample/policies.py)
and value every action against the truth of the next 7 days (per day, in account-currency units of
spend earning above the account's average; the oracle's value is the denominator).

Seeds: tuning 1-20, held-out 1001-1040. Progress goes to stderr, markdown tables to stdout.

  python benchmarks/bench_decisions.py --seeds tune
  python benchmarks/bench_decisions.py --seeds heldout --jobs 2 --json heldout.json
  python benchmarks/bench_decisions.py --seeds tune --set min_confidence_to_act=LOW
  python benchmarks/bench_decisions.py --seeds tune --engine-src /tmp/engine_head   # a snapshot of the engine
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from audience_assets.sample import policies
from audience_assets.sample.scenarios import (
    HELDOUT_SEEDS,
    TUNING_SEEDS,
    TYPE_GROUPS,
    Scenario,
    make_scenario,
    write_scenario_csvs,
)

ENGINE = "engine"
POLICY_ORDER = ("engine", "spec_table_point_estimates", "meta_style_rule_3d", "spec_table_on_truth", "oracle")
SHORT = {
    "engine": "engine (CLI)",
    "spec_table_point_estimates": "spec table, 7-day point estimates",
    "meta_style_rule_3d": "Meta-style rule, 3 days",
    "spec_table_on_truth": "spec table on the truth",
    "oracle": "oracle",
}
# Stripped from the engine's environment: the benchmark runs offline and reads no account.
_SCRUBBED_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "META_ACCESS_TOKEN",
    "META_APP_SECRET",
    "META_AD_ACCOUNT_IDS",
    "META_GRAPH_URL",
    "AUDIENCE_ENGINE_DB",
    "AUDIENCE_ENGINE_SOURCE",
)
ENGINE_TIMEOUT_S = 900
BOOTSTRAP_RESAMPLES = 2000

EngineRunner = Callable[[Path, Path, Path, Sequence[str]], pl.DataFrame]


class EngineError(RuntimeError):
    pass


# ---- the engine, through its CLI ---------------------------------------------------------------


def _branch(rec: dict[str, Any]) -> str:
    """The engine's decision path for one recommendation, from its reasons (numbers left out)."""
    reasons = [str(r) for r in rec.get("reasons") or []]
    held = next((r for r in reasons if re.match(r"^(SCALE|PAUSE|RETEST) held", r)), None)
    held_tag = ""
    if held:
        what = held.split(" ", 1)[0]
        low = held.lower()
        kind = next(
            (k for k in ("confidence", "cooldown", "ceiling", "account", "minimum", "budget") if k in low),
            re.sub(r"[\d.,₹%]+", "#", held.split(":", 1)[-1].strip())[:40],
        )
        held_tag = f" [{what} held: {kind}]"
    if not rec.get("eligible"):
        text = next((r for r in reasons if r.startswith("Not enough data")), reasons[0] if reasons else "")
        parts = []
        for part in text.split(":", 1)[-1].split(";"):
            p = part.lower()
            if "spend" in p:
                parts.append("low spend")
            elif "purchase" in p:
                parts.append("few purchases")
            elif "launched" in p or "age" in p:
                parts.append("too young")
            elif part.strip():
                parts.append(re.sub(r"[\d.,₹%]+", "#", part.strip())[:40])
        label = "not eligible: " + " + ".join(parts or ["?"])
        if rec.get("action") == "RETEST":
            label += " -> RETEST"
        return label + held_tag
    matrix = next((r.split(":", 1)[1].strip() for r in reasons if r.startswith("Decision matrix:")), None)
    return (matrix or f"{rec.get('bucket')} + {rec.get('trend')} -> ?") + held_tag


def engine_actions(recs: dict[str, Any]) -> pl.DataFrame:
    """The engine's recommendations JSON as policy rows, with its bucket, trend, confidence and branch."""
    rows = [
        {
            "adset_id": str(r["audience_id"]),
            "action": str(r["action"]),
            "scale_percentage": float(r.get("scale_percentage") or 0.0),
            "eligible": bool(r.get("eligible")),
            "bucket": r.get("bucket"),
            "trend": r.get("trend"),
            "confidence": r.get("confidence"),
            "branch": _branch(r),
        }
        for r in recs["recommendations"]
    ]
    schema = {
        "adset_id": pl.Utf8,
        "action": pl.Utf8,
        "scale_percentage": pl.Float64,
        "eligible": pl.Boolean,
        "bucket": pl.Utf8,
        "trend": pl.Utf8,
        "confidence": pl.Utf8,
        "branch": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


BACKENDS = ("file", "lake")


def run_engine_cli(
    insights: Path,
    audiences: Path,
    workdir: Path,
    sets: Sequence[str] = (),
    engine_src: str | None = None,
    backend: str = "file",
) -> pl.DataFrame:
    """`python -m audience_assets.cli recommend ... --quiet` on a fresh warehouse in `workdir`: a
    DuckDB file, or (`backend="lake"`) a DuckLake lake with a SQLite catalog and local Parquet.

    `engine_src`: a folder holding another copy of the project (e.g. `git archive HEAD`), put first
    on the child's PYTHONPATH so that copy's engine runs instead of the installed one.
    """
    workdir = Path(workdir)
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    out = workdir / "recs.json"
    cmd = [
        sys.executable,
        "-m",
        "audience_assets.cli",
        "recommend",
        "--insights",
        str(insights),
        "--audiences",
        str(audiences),
        "--db",
        str(workdir / "warehouse.duckdb") if backend == "file" else f"ducklake:sqlite:{workdir / 'catalog.sqlite'}",
        "--out",
        str(out),
        "--quiet",
    ]
    for item in sets:
        cmd += ["--set", item]
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["DAGSTER_HOME"] = str(home)
    if engine_src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(engine_src).resolve()), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=ENGINE_TIMEOUT_S)
    if proc.returncode != 0:
        raise EngineError(f"engine exited {proc.returncode}: {(proc.stderr or proc.stdout)[-3000:]}")
    return engine_actions(json.loads(out.read_text()))


# ---- one seed ------------------------------------------------------------------------------------


def reference_policies(scenario: Scenario) -> dict[str, pl.DataFrame]:
    ins, aud, truth, d = scenario.insights, scenario.audiences, scenario.truth, scenario.decision_date
    return {
        "spec_table_point_estimates": policies.spec_table_point_estimates(ins, aud, d),
        "meta_style_rule_3d": policies.meta_style_rule_3d(ins, aud, d),
        "spec_table_on_truth": policies.spec_table_on_truth(truth),
        "oracle": policies.oracle(truth),
    }


def evaluate_seed(
    seed: int,
    *,
    engine_runner: EngineRunner | None = None,
    sets: Sequence[str] = (),
    keep_dir: Path | None = None,
    scenario_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Valued actions of every policy on one seed: {'rows': long frame, 'params', 'engine_seconds', ...}."""
    t0 = time.perf_counter()
    scenario = make_scenario(seed, **(scenario_overrides or {}))
    gen_s = time.perf_counter() - t0
    acts = reference_policies(scenario)
    engine_s = None
    if engine_runner is not None:
        tmp = None
        if keep_dir is not None:
            work = Path(keep_dir) / f"seed_{seed}"
            work.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory(prefix=f"decision_bench_{seed}_")
            work = Path(tmp.name)
        try:
            ins_path, aud_path = write_scenario_csvs(scenario, work)
            t1 = time.perf_counter()
            acts[ENGINE] = engine_runner(ins_path, aud_path, work, tuple(sets))
            engine_s = time.perf_counter() - t1
        except Exception as exc:
            raise EngineError(f"seed {seed}: {exc}") from exc
        finally:
            if tmp is not None:
                tmp.cleanup()
    truth = scenario.truth
    oracle_valued = policies.value_actions(acts["oracle"], truth).select(
        "adset_id", pl.col("action").alias("oracle_action"), pl.col("value").alias("oracle_value")
    )
    frames = []
    for name in POLICY_ORDER:
        if name not in acts:
            continue
        act = acts[name]
        valued = policies.value_actions(act.select("adset_id", "action", "scale_percentage"), truth)
        extra = [c for c in ("branch", "bucket", "trend", "confidence", "eligible") if c in act.columns]
        if extra:
            valued = valued.join(act.select("adset_id", *extra), on="adset_id", how="left")
        for c, dtype in (("branch", pl.Utf8), ("bucket", pl.Utf8), ("trend", pl.Utf8), ("confidence", pl.Utf8)):
            if c not in valued.columns:
                valued = valued.with_columns(pl.lit(None, dtype=dtype).alias(c))
        if "eligible" not in valued.columns:
            valued = valued.with_columns(pl.lit(None, dtype=pl.Boolean).alias("eligible"))
        frames.append(
            valued.join(oracle_valued, on="adset_id", how="left").with_columns(
                pl.lit(seed, dtype=pl.Int64).alias("seed"), pl.lit(name).alias("policy")
            )
        )
    rows = pl.concat(frames, how="diagonal_relaxed")
    return {
        "seed": seed,
        "rows": rows,
        "params": scenario.params.as_dict(),
        "n_adsets": scenario.params.n_adsets,
        "days": scenario.params.days,
        "generate_seconds": round(gen_s, 4),
        "engine_seconds": None if engine_s is None else round(engine_s, 2),
    }


# ---- aggregation ---------------------------------------------------------------------------------


def _share(num: int, den: int) -> float | None:
    return None if den == 0 else round(100.0 * num / den, 1)


def _pct(value: float, oracle_value: float) -> float | None:
    return None if oracle_value <= 0 else round(100.0 * value / oracle_value, 1)


def _bootstrap(per_seed: pl.DataFrame, policy_names: Iterable[str]) -> dict[str, Any]:
    """90 % intervals over seeds (resampled with replacement) of each policy's % of the oracle, and of
    its difference with the engine in percentage points (paired: the same seeds for both)."""
    seeds = per_seed["seed"].unique().sort().to_list()
    if len(seeds) < 2:
        return {}
    oracle_v = np.array(
        [per_seed.filter((pl.col("seed") == s) & (pl.col("policy") == "oracle"))["value"][0] for s in seeds]
    )
    rng = np.random.default_rng(20260)
    idx = rng.integers(0, len(seeds), (BOOTSTRAP_RESAMPLES, len(seeds)))
    den = oracle_v[idx].sum(axis=1)
    values: dict[str, np.ndarray] = {}
    for name in policy_names:
        sub = per_seed.filter(pl.col("policy") == name)
        if sub.height != len(seeds):
            continue
        v = np.array([sub.filter(pl.col("seed") == s)["value"][0] for s in seeds])
        values[name] = 100.0 * v[idx].sum(axis=1) / den
    out: dict[str, Any] = {}
    for name, dist in values.items():
        lo, hi = np.percentile(dist, [5, 95])
        entry: dict[str, Any] = {"pct_of_oracle_90ci": [round(float(lo), 1), round(float(hi), 1)]}
        if ENGINE in values and name != ENGINE:
            dlo, dhi = np.percentile(dist - values[ENGINE], [5, 95])
            entry["minus_engine_pp_90ci"] = [round(float(dlo), 1), round(float(dhi), 1)]
        out[name] = entry
    return out


def _policy_summary(rows: pl.DataFrame) -> dict[str, Any]:
    act = rows["action"]
    n_pause = int((act == "PAUSE").sum())
    n_scale = int((act == "SCALE").sum())
    bad_pauses = int(rows["bad_pause"].sum())
    bad_scales = int(rows["bad_scale"].sum())
    value = float(rows["value"].sum())
    oracle_value = float(rows["oracle_value"].sum())
    held = rows.filter(pl.col("action").is_in(["HOLD", "RETEST"]))
    value_scale = float(rows.filter(pl.col("action") == "SCALE")["value"].sum())
    value_pause = float(rows.filter(pl.col("action") == "PAUSE")["value"].sum())
    oracle_scale = float(rows.filter(pl.col("oracle_action") == "SCALE")["oracle_value"].sum())
    oracle_pause = float(rows.filter(pl.col("oracle_action") == "PAUSE")["oracle_value"].sum())
    return {
        "adsets": rows.height,
        "value_per_day": round(value, 1),
        "oracle_value_per_day": round(oracle_value, 1),
        "pct_of_oracle": _pct(value, oracle_value),
        "n_scale": n_scale,
        "n_hold": int((act == "HOLD").sum()),
        "n_pause": n_pause,
        "n_retest": int((act == "RETEST").sum()),
        "bad_pauses": bad_pauses,
        "bad_pause_share_pct": _share(bad_pauses, n_pause),
        "bad_scales": bad_scales,
        "bad_scale_share_pct": _share(bad_scales, n_scale),
        "value_from_scale": round(value_scale, 1),
        "value_from_pause": round(value_pause, 1),
        "scale_side_pct_of_oracle": _pct(value_scale, oracle_scale),
        "pause_side_pct_of_oracle": _pct(value_pause, oracle_pause),
        "loss_from_bad_pauses": round(float(rows.filter(pl.col("bad_pause"))["value"].sum()), 1),
        "loss_from_bad_scales": round(float(rows.filter(pl.col("bad_scale"))["value"].sum()), 1),
        "oracle_value_left_in_holds": round(float(held["oracle_value"].sum()), 1),
        "holds_where_oracle_scales": int((held["oracle_action"] == "SCALE").sum()),
        "holds_where_oracle_pauses": int((held["oracle_action"] == "PAUSE").sum()),
    }


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report: per policy, per policy x audience group, per seed, and the engine's branches."""
    rows = pl.concat([r["rows"] for r in results], how="diagonal_relaxed")
    names = [p for p in POLICY_ORDER if p in set(rows["policy"].unique().to_list())]
    per_seed = rows.group_by("seed", "policy").agg(pl.col("value").sum(), pl.col("oracle_value").sum())
    pct_by_seed = per_seed.with_columns((100.0 * pl.col("value") / pl.col("oracle_value")).alias("pct"))
    boot = _bootstrap(per_seed, names)
    report: dict[str, Any] = {"policies": {}, "by_type": {}, "per_seed": [], "engine_branches": []}
    for name in names:
        sub = rows.filter(pl.col("policy") == name)
        summary = _policy_summary(sub)
        pcts = pct_by_seed.filter(pl.col("policy") == name)["pct"]
        summary["per_seed_pct_median"] = round(float(pcts.median()), 1) if pcts.len() else None
        summary["per_seed_pct_min"] = round(float(pcts.min()), 1) if pcts.len() else None
        summary.update(boot.get(name, {}))
        report["policies"][name] = summary
        report["by_type"][name] = {
            g: _policy_summary(sub.filter(pl.col("type_group") == g))
            for g in TYPE_GROUPS
            if sub.filter(pl.col("type_group") == g).height
        }
    for r in results:
        entry = {"seed": r["seed"], "n_adsets": r["n_adsets"], "days": r["days"], "engine_seconds": r["engine_seconds"]}
        for name in names:
            p = pct_by_seed.filter((pl.col("seed") == r["seed"]) & (pl.col("policy") == name))
            entry[name] = None if p.is_empty() else round(float(p["pct"][0]), 1)
        entry["oracle_value_per_day"] = round(
            float(per_seed.filter((pl.col("seed") == r["seed"]) & (pl.col("policy") == "oracle"))["value"].sum()), 1
        )
        report["per_seed"].append(entry)
    eng = rows.filter(pl.col("policy") == ENGINE)
    if eng.height:
        branches = (
            eng.group_by("branch", "action")
            .agg(
                pl.len().alias("n"),
                (pl.col("oracle_action") == "SCALE").sum().alias("oracle_scales"),
                (pl.col("true_ratio") >= 1.2).sum().alias("true_winners_1_2"),
                (pl.col("oracle_action") == "PAUSE").sum().alias("oracle_pauses"),
                pl.col("bad_pause").sum().alias("bad_pauses"),
                pl.col("bad_scale").sum().alias("bad_scales"),
                pl.col("oracle_value").sum().round(1).alias("oracle_value"),
                pl.col("value").sum().round(1).alias("engine_value"),
            )
            .with_columns((pl.col("oracle_value") - pl.col("engine_value")).round(1).alias("forgone"))
            .sort(["forgone", "branch", "action"], descending=[True, False, False])
        )
        report["engine_branches"] = branches.to_dicts()
    return report


def evaluate(
    seeds: Sequence[int],
    *,
    engine_runner: EngineRunner | None | str = "cli",
    sets: Sequence[str] = (),
    engine_src: str | None = None,
    backend: str = "file",
    jobs: int = 1,
    keep_dir: Path | str | None = None,
    scenario_overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark on `seeds` and return the report (JSON-ready dict).

    `engine_runner`: "cli" (the default: `run_engine_cli`, with `sets` passed as `--set` and
    `engine_src` and `backend` as above), None (skip the engine), or any callable
    `(insights_csv, audiences_csv, workdir, sets) -> frame of adset_id, action, scale_percentage`.
    """
    if engine_runner == "cli":

        def runner(ins: Path, aud: Path, work: Path, s: Sequence[str]) -> pl.DataFrame:
            return run_engine_cli(ins, aud, work, s, engine_src=engine_src, backend=backend)

        chosen: EngineRunner | None = runner
    else:
        chosen = engine_runner  # type: ignore[assignment]
    say = progress or (lambda _msg: None)
    seeds = [int(s) for s in seeds]
    t0 = time.perf_counter()
    done: list[int] = []
    lock = threading.Lock()

    def one(seed: int) -> dict[str, Any]:
        res = evaluate_seed(
            seed,
            engine_runner=chosen,
            sets=sets,
            keep_dir=Path(keep_dir) if keep_dir else None,
            scenario_overrides=scenario_overrides,
        )
        rows = res["rows"]
        per = rows.group_by("policy").agg(pl.col("value").sum(), pl.col("oracle_value").sum())
        pcts = {
            p: 100.0 * v / o if o > 0 else float("nan")
            for p, v, o in per.select("policy", "value", "oracle_value").iter_rows()
        }
        shown = ", ".join(f"{p} {pcts[p]:.0f}%" for p in POLICY_ORDER if p in pcts and p != "oracle")
        eng = f", engine {res['engine_seconds']:.1f}s" if res["engine_seconds"] is not None else ""
        with lock:
            done.append(seed)
            count = len(done)
        say(
            f"[{count}/{len(seeds)}] seed {seed}: {res['n_adsets']} ad sets x {res['days']} days{eng}; "
            f"% of oracle: {shown} ({time.perf_counter() - t0:.0f}s elapsed)"
        )
        return res

    if jobs > 1 and len(seeds) > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, seeds))
    else:
        results = [one(s) for s in seeds]
    report = summarise(results)
    wall = time.perf_counter() - t0
    engine_times = [r["engine_seconds"] for r in results if r["engine_seconds"] is not None]
    report["meta"] = {
        "seeds": seeds,
        "horizon_days": int(results[0]["params"]["horizon_days"]) if results else None,
        "value_unit": "account currency per day: spend earning above the account's true average ROAS",
        "engine_sets": list(sets),
        "engine_src": engine_src,
        "jobs": jobs,
        "wall_seconds": round(wall, 1),
        "engine_seconds_total": round(sum(engine_times), 1) if engine_times else None,
        "engine_seconds_mean": round(sum(engine_times) / len(engine_times), 2) if engine_times else None,
        "scenario_overrides": scenario_overrides or {},
    }
    report["params"] = {r["seed"]: r["params"] for r in results}
    return report


# ---- printing ------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list) and len(v) == 2:
        return f"{v[0]:.1f} .. {v[1]:.1f}"
    return str(v)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n_share(n: int, share: float | None) -> str:
    return f"{n:,} ({share:.1f} %)" if share is not None else f"{n:,} (-)"


def render_markdown(report: dict[str, Any]) -> str:
    meta = report.get("meta", {})
    seeds = meta.get("seeds", [])
    pol = report["policies"]
    out = [
        f"## Decision benchmark: {len(seeds)} seeds ({_seed_range(seeds)}), horizon {meta.get('horizon_days')} days",
        "",
        f"Value: {meta.get('value_unit')}. Engine settings: {' '.join(meta.get('engine_sets') or []) or 'defaults'}"
        + (f"; engine from {meta['engine_src']}" if meta.get("engine_src") else "")
        + f". Wall {meta.get('wall_seconds')} s (engine {meta.get('engine_seconds_mean')} s a seed on average).",
        "",
        "### Value captured",
        "",
        _table(
            [
                "policy",
                "% of oracle",
                "90% CI",
                "vs engine, pp (90% CI)",
                "per-seed median / min %",
                "value / day",
                "from SCALE (% of oracle's)",
                "from PAUSE (% of oracle's)",
                "SCALE",
                "HOLD",
                "PAUSE",
                "RETEST",
            ],
            [
                (
                    SHORT.get(name, name),
                    s["pct_of_oracle"],
                    s.get("pct_of_oracle_90ci"),
                    s.get("minus_engine_pp_90ci"),
                    f"{_fmt(s['per_seed_pct_median'])} / {_fmt(s['per_seed_pct_min'])}",
                    s["value_per_day"],
                    f"{_fmt(s['value_from_scale'])} ({_fmt(s['scale_side_pct_of_oracle'])} %)",
                    f"{_fmt(s['value_from_pause'])} ({_fmt(s['pause_side_pct_of_oracle'])} %)",
                    s["n_scale"],
                    s["n_hold"],
                    s["n_pause"],
                    s["n_retest"],
                )
                for name, s in pol.items()
            ],
        ),
        "",
        "### Mistakes",
        "",
        "Bad PAUSE: paused while true_ratio > 1. Bad SCALE: scaled while the true marginal ratio of its step < 1.",
        "",
        _table(
            [
                "policy",
                "bad PAUSEs (share of PAUSEs)",
                "lost by bad PAUSEs",
                "bad SCALEs (share of SCALEs)",
                "lost by bad SCALEs",
                "HOLD/RETEST where oracle SCALEs",
                "HOLD/RETEST where oracle PAUSEs",
                "oracle value left in HOLD/RETEST",
            ],
            [
                (
                    SHORT.get(name, name),
                    _n_share(s["bad_pauses"], s["bad_pause_share_pct"]),
                    s["loss_from_bad_pauses"],
                    _n_share(s["bad_scales"], s["bad_scale_share_pct"]),
                    s["loss_from_bad_scales"],
                    s["holds_where_oracle_scales"],
                    s["holds_where_oracle_pauses"],
                    s["oracle_value_left_in_holds"],
                )
                for name, s in pol.items()
            ],
        ),
        "",
        "### By audience type",
        "",
    ]
    groups = [g for g in TYPE_GROUPS if any(g in report["by_type"][p] for p in pol)]
    n_by_group = {g: report["by_type"].get("oracle", {}).get(g, {}).get("adsets", 0) for g in groups}
    headers = ["policy"] + [f"{g} ({n_by_group[g]:,})" for g in groups]
    cells: dict[str, Callable[[dict[str, Any]], str]] = {
        "% of oracle": lambda s: _fmt(s["pct_of_oracle"]),
        "bad PAUSEs (share of PAUSEs)": lambda s: _n_share(s["bad_pauses"], s["bad_pause_share_pct"]),
        "bad SCALEs (share of SCALEs)": lambda s: _n_share(s["bad_scales"], s["bad_scale_share_pct"]),
    }
    for title, cell in cells.items():
        out += [
            f"{title}, by audience group (ad sets over all seeds in the header):",
            "",
            _table(
                headers,
                [
                    [SHORT.get(name, name)]
                    + [cell(report["by_type"][name][g]) if g in report["by_type"][name] else "-" for g in groups]
                    for name in pol
                ],
            ),
            "",
        ]
    if report.get("engine_branches"):
        out += [
            "",
            "### Engine branches (sorted by oracle value forgone)",
            "",
            _table(
                [
                    "branch",
                    "action",
                    "ad sets",
                    "oracle SCALEs",
                    "true ratio >= 1.2",
                    "oracle PAUSEs",
                    "bad PAUSEs",
                    "bad SCALEs",
                    "oracle value",
                    "engine value",
                    "forgone",
                ],
                [
                    (
                        b["branch"],
                        b["action"],
                        b["n"],
                        b["oracle_scales"],
                        b["true_winners_1_2"],
                        b["oracle_pauses"],
                        b["bad_pauses"],
                        b["bad_scales"],
                        b["oracle_value"],
                        b["engine_value"],
                        b["forgone"],
                    )
                    for b in report["engine_branches"]
                ],
            ),
        ]
    return "\n".join(out) + "\n"


def _seed_range(seeds: Sequence[int]) -> str:
    if not seeds:
        return "none"
    s = sorted(seeds)
    if s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ", ".join(str(x) for x in s[:8]) + (" ..." if len(s) > 8 else "")


def choose_seeds(which: str, n: int | None = None) -> list[int]:
    """tune (1-20), heldout (1001-1040), all, or a comma-separated list; the first `n` of them."""
    if which == "tune":
        seeds = list(TUNING_SEEDS)
    elif which == "heldout":
        seeds = list(HELDOUT_SEEDS)
    elif which == "all":
        seeds = list(TUNING_SEEDS) + list(HELDOUT_SEEDS)
    else:
        try:
            seeds = [int(x) for x in which.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"--seeds {which!r}: expected tune, heldout, all or a list such as 1,2,5") from None
    return seeds[:n] if n else seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seeds", default="tune", help="tune (1-20), heldout (1001-1040), all, or a comma list (default tune)"
    )
    parser.add_argument("--n", type=int, default=None, help="use only the first N of those seeds")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="passed to the engine as --set"
    )
    parser.add_argument("--json", dest="json_out", help="also write the whole report (and per-seed figures) here")
    parser.add_argument("--jobs", type=int, default=1, help="engine runs in parallel (default 1)")
    parser.add_argument("--skip-engine", action="store_true", help="only the reference policies (seconds, not minutes)")
    parser.add_argument(
        "--engine-src",
        help="run the engine from this copy of the project (e.g. `git archive HEAD | tar -x -C DIR`) instead of the installed one",
    )
    parser.add_argument("--keep", help="keep each seed's CSVs, warehouse and recommendations under this folder")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="file", help="the engine's warehouse: a DuckDB file (default) or a lake"
    )
    args = parser.parse_args(argv)
    seeds = choose_seeds(args.seeds, args.n)
    print(
        f"decision benchmark: {len(seeds)} seeds ({_seed_range(seeds)})"
        + ("" if args.skip_engine else f", engine through the CLI, {args.jobs} at a time"),
        file=sys.stderr,
    )
    try:
        report = evaluate(
            seeds,
            engine_runner=None if args.skip_engine else "cli",
            sets=args.sets,
            engine_src=args.engine_src,
            backend=args.backend,
            jobs=max(1, args.jobs),
            keep_dir=args.keep,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render_markdown(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str))
        print(f"report written to {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
