"""`audience-engine`: a thin command line over the same Dagster asset graph."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from audience_assets.engine.config import ConfigError, load_config, to_toml
from audience_assets.engine.schema import recommendation_json_schema_text
from audience_assets.engine.validation import InputError
from audience_assets.sources import SourceSpec, newest_day
from audience_assets.warehouse import database_path

EXIT_INPUT = 2
EXIT_GUARDRAIL = 3
DEFAULT_OUT = "data/recommendations.json"


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _parse_set(items: list[str]) -> dict[str, Any]:
    """--set key=value pairs (value parsed as JSON when it can be) into a nested override dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"--set {item!r}: expected key=value, e.g. min_spend=5000")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _progress_logger():
    import dagster as dg

    @dg.logger(description="One line per finished asset, for the terminal")
    def progress(_init_context) -> logging.Logger:
        log = logging.getLogger("audience_engine.progress")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        if not log.handlers:
            log.addHandler(_ProgressHandler())
        return log

    return progress


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = (
            getattr(meta, "get", lambda *_: None)("dagster_event")
            if isinstance(meta, dict)
            else getattr(meta, "dagster_event", None)
        )
        if event is None:
            return
        kind = event.event_type_value
        elapsed = time.monotonic() - self.started
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            rows = mat.metadata.get("dagster/row_count")
            count = f"{rows.value:,} rows" if rows is not None else ""
            print(f"  [{elapsed:5.1f}s] {mat.asset_key.to_user_string():<22} {count}", file=sys.stderr)
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            status = "passed" if ev.passed else f"FAILED ({ev.severity.value})"
            key = ev.asset_check_key
            print(
                f"  [{elapsed:5.1f}s]   check {key.asset_key.to_user_string()}:{key.name:<12} {status}", file=sys.stderr
            )


def _user_error(result) -> Exception | None:
    """The first user-facing error behind a failed run: a blocking check, bad input or configuration."""
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity.value == "ERROR":
            key = check.asset_check_key
            return CliError(
                f"guardrail check {key.asset_key.to_user_string()}:{key.name} failed: "
                "recommendations were not produced",
                EXIT_GUARDRAIL,
            )
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        err = event.event_specific_data.error
        while err is not None:
            if err.cls_name in ("InputError", "ConfigError", "MetaError"):
                return CliError(err.message.split(": ", 1)[1].strip() if ": " in err.message else err.message)
            err = err.cause
        return CliError(f"step {event.step_key} failed: {event.event_specific_data.error.message.strip()}", 1)
    return None


def run_graph(
    *,
    as_of: date,
    source: dict[str, Any],
    db: str,
    output_dir: str,
    rules_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
):
    """Materialise the whole asset graph for one decision date; returns the Dagster result."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from audience_assets.definitions import defs
    from audience_assets.defs.automation import MAIN_JOB

    # Fail fast on a bad rules file, before any run starts.
    load_config(rules_path, overrides)
    run_config: dict[str, Any] = {
        "resources": {
            "duckdb": {"config": {"database": db}},
            "source": {"config": source},
            "rules": {"config": {"config_path": rules_path, "overrides_json": json.dumps(overrides or {})}},
            "output": {"config": {"directory": output_dir}},
        },
        # Failures reach the user as one clean line (see _user_error), not as Dagster's tracebacks.
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    job = defs.resolve_job_def(MAIN_JOB)
    loggers = {} if quiet else {"progress": _progress_logger()}
    if loggers:
        run_config["loggers"]["progress"] = {}
    job = job.with_logger_defs({**job.loggers, **loggers}) if loggers else job
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            partition_key=as_of.isoformat(), run_config=run_config, instance=instance, raise_on_error=False
        )
    if not result.success:
        err = _user_error(result)
        raise err or CliError("the run failed", 1)
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity.value == "ERROR":
            raise CliError(
                f"guardrail check {check.asset_check_key.name} failed: recommendations were not produced",
                EXIT_GUARDRAIL,
            )
    return result


def _why(rec: dict[str, Any]) -> str:
    """The decisive reason: a guardrail or gate that held the action, else the matrix rule."""
    reasons = rec["reasons"]
    for r in reasons:
        if " held" in r:
            return r
    for r in reasons:
        if r.startswith(("Decision matrix:", "Delivery stalled")):
            return r.replace("Decision matrix: ", "")
    return reasons[0].replace("Not enough data to decide: ", "not enough data: ") if reasons else ""


def _fmt(value: float | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:,.{places}f}"


def _print_table(doc_path: Path, top: int) -> None:
    data = json.loads(doc_path.read_text())
    recs = data["recommendations"]
    rows = [
        {
            "#": r["rank"],
            "audience": r["audience_name"][:40],
            "type": r["audience_type"] or "-",
            "action": r["action"] + (f" +{r['scale_percentage']}%" if r["scale_percentage"] else ""),
            "conf": r["confidence"],
            "ROAS": _fmt(r["metrics"]["roas"]),
            "vs acct": _fmt(r["metrics"]["normalized_roas"]) + "x",
            "spend 7d": _fmt(r["metrics"]["spend"], 0),
            "purch": _fmt(r["metrics"]["purchases"], 0),
            "bucket": r["bucket"] or "-",
            "trend": r["trend"] or "-",
            "why": _why(r)[:90],
        }
        for r in recs
    ][:top]
    frame = pl.DataFrame(rows) if rows else pl.DataFrame()
    with pl.Config(
        tbl_rows=top,
        tbl_cols=20,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="ASCII_MARKDOWN",
        fmt_str_lengths=100,
        tbl_width_chars=400,
    ):
        print(frame)
    s = data["summary"]
    shown = min(top, len(recs))
    print(
        f"\nDecision date {data['decision_date']}: {s['audiences']} audiences ({shown} shown, best score first), "
        f"{s['eligible']} with enough data. SCALE {s['SCALE']} | HOLD {s['HOLD']} | PAUSE {s['PAUSE']} | "
        f"RETEST {s['RETEST']}   rules {data['config_hash']}"
    )


def _check_decision_date(as_of: date) -> None:
    """Decision dates the partitions admit: from 2015 to tomorrow (UTC)."""
    from audience_assets.defs.common import PARTITIONS_START

    first = date.fromisoformat(PARTITIONS_START)
    last = datetime.now(UTC).date() + timedelta(days=1)
    if not first <= as_of <= last:
        raise CliError(
            f"decision date {as_of} is outside {first} .. {last} (tomorrow, UTC): "
            "data dated in the future cannot be decided on yet"
        )


def _finish(args, as_of: date, source: dict[str, Any]) -> int:
    _check_decision_date(as_of)
    out = Path(args.out)
    out_dir = Path(args.db).parent / "recommendations"
    t0 = time.monotonic()
    if not args.quiet:
        print(f"Materialising the asset graph for decision date {as_of} into {args.db}", file=sys.stderr)
    run_graph(
        as_of=as_of,
        source=source,
        db=args.db,
        output_dir=str(out_dir),
        rules_path=args.config,
        overrides=_parse_set(args.set or []),
        quiet=args.quiet,
    )
    produced = out_dir / f"recommendations_{as_of.isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(produced, out)
    if not args.quiet:
        print(f"Done in {time.monotonic() - t0:.1f}s; recommendations written to {out}\n", file=sys.stderr)
        _print_table(out, args.top)
    return 0


def cmd_recommend(args) -> int:
    if args.source == "csv":
        if not args.insights or not args.audiences:
            raise CliError("recommend needs --insights and --audiences CSV files (or --source sample)")
        for flag, path in (("--insights", args.insights), ("--audiences", args.audiences)):
            if not Path(path).is_file():
                raise CliError(f"{flag} {path}: file not found")
        source = {
            "kind": "csv",
            "insights_path": str(Path(args.insights).resolve()),
            "audiences_path": str(Path(args.audiences).resolve()),
        }
    elif args.source == "meta":
        # Live accounts: decide on the complete days before today; recommend never writes to Meta.
        source = {"kind": "meta"}
        return _finish(args, args.as_of or datetime.now(UTC).date(), source)
    else:
        source = {"kind": "sample"}
    spec = SourceSpec(**source)
    as_of = args.as_of or newest_day(spec) + timedelta(days=1)
    return _finish(args, as_of, source)


def cmd_demo(args) -> int:
    source = {"kind": "sample"}
    as_of = args.as_of or newest_day(SourceSpec(kind="sample")) + timedelta(days=1)
    return _finish(args, as_of, source)


def cmd_config(args) -> int:
    print(to_toml(load_config(args.config, _parse_set(args.set or []))), end="")
    return 0


def cmd_schema(_args) -> int:
    print(recommendation_json_schema_text(), end="")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as-of",
        type=_parse_date,
        help="decision date YYYY-MM-DD: only complete days before it are used (default: the day after the newest row)",
    )
    p.add_argument("--config", help="rules file (TOML); see `audience-engine config` for every setting and its default")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one rule for this run, e.g. --set min_spend=5000 --set modifiers.BROAD.winner_roas=1.15",
    )
    p.add_argument(
        "--db",
        default=database_path(),
        help="DuckDB warehouse file (default: $AUDIENCE_ENGINE_DB or data/warehouse.duckdb)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"recommendations JSON to write (default {DEFAULT_OUT})")
    p.add_argument("--top", type=int, default=40, help="rows of the ranked table to print (default 40)")
    p.add_argument("--quiet", action="store_true", help="no progress and no table; just write the JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audience-engine",
        description="ROAS-first audience recommendations for Meta Ads: runs the Dagster asset graph over DuckDB. Never writes to an ad account.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser(
        "recommend",
        help="recommendations from CSV exports (or the sample account)",
        description="Load insights and audiences, run the whole asset graph for a decision date, write recommendations JSON and print the ranked table.",
    )
    rec.add_argument(
        "--source",
        choices=["csv", "sample", "meta"],
        default="csv",
        help="where data comes from (default csv; meta reads META_ACCESS_TOKEN and META_AD_ACCOUNT_IDS)",
    )
    rec.add_argument(
        "--insights",
        help="insights CSV: date_start, account_id, campaign_id, campaign_name, adset_id, adset_name, spend, impressions, clicks, purchases, purchase_value [, account_currency]",
    )
    rec.add_argument(
        "--audiences",
        help="audiences CSV: adset_id, audience_type [, lookalike_pct, source_quality, launched_on, daily_budget, last_budget_change_at]",
    )
    _add_run_options(rec)
    rec.set_defaults(func=cmd_recommend)

    demo = sub.add_parser(
        "demo",
        help="the main job on the embedded sample account",
        description="Materialise the whole graph on the embedded sample account (seeded, INR) and print the ranked recommendations.",
    )
    _add_run_options(demo)
    demo.set_defaults(func=cmd_demo)

    cfg = sub.add_parser(
        "config",
        help="print the rules configuration as TOML",
        description="Print every rule setting with its value: the defaults, or a rules file with overrides applied.",
    )
    cfg.add_argument("--config", help="rules file (TOML) to validate and print")
    cfg.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting")
    cfg.set_defaults(func=cmd_config)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the recommendations file",
        description="Print the JSON Schema of the recommendations file written by recommend and demo.",
    )
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, InputError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "code", EXIT_INPUT)


if __name__ == "__main__":
    sys.exit(main())
