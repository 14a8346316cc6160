"""`audience-engine`: a thin command line over the same Dagster asset graph and instance as the UI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from audience_assets.cli_common import add_warehouse, parse_date
from audience_assets.cli_delivery import USER_ERRORS as DELIVERY_ERRORS
from audience_assets.cli_delivery import add_commands as add_delivery_commands
from audience_assets.cli_execution import USER_ERRORS as EXECUTION_ERRORS
from audience_assets.cli_execution import add_commands
from audience_assets.cli_feedback import USER_ERRORS as FEEDBACK_ERRORS
from audience_assets.cli_feedback import add_commands as add_feedback_commands
from audience_assets.engine.config import ConfigError, count_setting, load_config, parse_overrides, to_toml
from audience_assets.engine.schema import recommendation_json_schema_text
from audience_assets.sources import InputError, SourceSpec
from audience_assets.terminal import Column, render_table, say, terminal_width
from audience_assets.warehouse import check_database_file, database_path, is_lake, warehouse_lock

EXIT_INPUT = 2
EXIT_GUARDRAIL = 3
DEFAULT_OUT = "data/recommendations.json"
USER_ERRORS = ("InputError", "ConfigError", "MetaError", "WarehouseError")


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: expected 0 (no table) or more rows")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected 1 or more")
    return value


def _parse_set(items: list[str]) -> dict[str, Any]:
    """--set key=value pairs (value parsed as JSON when it can be) into a nested override dict."""
    return parse_overrides(items)


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
            loaded = mat.metadata.get("rows_on_days_loaded")
            count = (
                f"{rows.value:,} rows"
                if rows is not None
                else f"{loaded.value:,} rows on the days loaded"
                if loaded is not None
                else ""
            )
            say(f"  [{elapsed:5.1f}s] {mat.asset_key.to_user_string():<22} {count}", err=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            status = "passed" if ev.passed else f"FAILED ({ev.severity.value})"
            key = ev.asset_check_key
            say(f"  [{elapsed:5.1f}s]   check {key.asset_key.to_user_string()}:{key.name:<12} {status}", err=True)


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
        if event.event_type_value not in ("STEP_FAILURE", "RUN_FAILURE", "RESOURCE_INIT_FAILURE"):
            continue
        err = getattr(event.event_specific_data, "error", None)
        innermost = err
        while err is not None:
            if err.cls_name in USER_ERRORS:
                return CliError(err.message.split(": ", 1)[1].strip() if ": " in err.message else err.message)
            innermost = err
            err = err.cause
        if innermost is not None:
            where = f"step {event.step_key}" if event.step_key else "the run"
            return CliError(f"{where} failed: {innermost.cls_name}: {innermost.message.strip()}", 1)
    return None


CONCURRENCY_ENV = "AUDIENCE_ENGINE_CONCURRENCY"


@dataclasses.dataclass
class AccountRun:
    """How one account-day's run ended (picklable: parallel runs report from their own processes)."""

    account: str
    run_id: str | None
    error: str | None = None
    code: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)


def _run_config(db: str, source: dict[str, Any], rules_path: str | None, overrides: dict[str, Any] | None) -> dict:
    return {
        "resources": {
            "duckdb": {"config": {"database": db}},
            "source": {"config": source},
            "rules": {"config": {"config_path": rules_path, "overrides_json": json.dumps(overrides or {})}},
            # The CLI writes the JSON and the report itself, once every account's run has passed.
            "output": {"config": {"directory": "", "file": "", "reports_directory": "", "report_file": ""}},
        },
        # Failures reach the user as one clean line (see _user_error), not as Dagster's tracebacks.
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }


def _run_account(as_of: date, account: str, run_config: dict[str, Any], quiet: bool) -> AccountRun:
    """Materialise the whole asset graph for one account-day in the shared Dagster instance."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from audience_assets.definitions import defs
    from audience_assets.defs.automation import MAIN_JOB
    from audience_assets.defs.common import partition_key

    job = defs.resolve_job_def(MAIN_JOB)
    config = json.loads(json.dumps(run_config))
    if not quiet:
        config["loggers"]["progress"] = {}
        job = job.with_logger_defs({**job.loggers, "progress": _progress_logger()})
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=partition_key(as_of, account),
            run_config=config,
            instance=instance,
            raise_on_error=False,
            tags={"audience_engine/launched_by": "cli"},
        )
    if not result.success:
        err = _user_error(result) or CliError("the run failed", 1)
        return AccountRun(account, result.run_id, str(err), getattr(err, "code", 1))
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity.value == "ERROR":
            message = f"guardrail check {check.asset_check_key.name} failed: recommendations were not produced"
            return AccountRun(account, result.run_id, message, EXIT_GUARDRAIL)
    return AccountRun(account, result.run_id, notes=_notes(result))


def concurrency(db: str, given: int | None = None) -> int:
    """How many account runs go at once: one on a DuckDB file (one writer); on a lake --concurrency,
    else AUDIENCE_ENGINE_CONCURRENCY, else the machine's cores."""
    if not is_lake(db):
        return 1
    if given is not None:
        return given
    return count_setting(CONCURRENCY_ENV, os.environ.get(CONCURRENCY_ENV), os.cpu_count() or 1, "runs")


def run_graph(
    *,
    as_of: date,
    source: dict[str, Any],
    db: str,
    rules_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
    parallel: int = 1,
) -> list[AccountRun]:
    """Every account of the source, one run per account-day (`parallel` at once, each in a process
    of its own), in the shared Dagster instance. Raises CliError naming the accounts that failed;
    the others' partitions stay materialised."""
    import dagster as dg

    from audience_assets.defs.common import ACCOUNTS
    from audience_assets.defs.resources import account_ids
    from audience_assets.instance import ensure_home
    from audience_assets.sources.accounts import source_accounts

    # Fail fast on a bad rules file or source, before any run starts.
    load_config(rules_path, overrides)
    meta_accounts = account_ids(os.environ.get("META_AD_ACCOUNT_IDS", "")) if source.get("kind") == "meta" else []
    accounts = source_accounts(SourceSpec(**source), meta_accounts)
    run_config = _run_config(db, source, rules_path, overrides)
    ensure_home()
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(ACCOUNTS.name))
        new = [a for a in accounts if a not in known]
        if new:
            instance.add_dynamic_partitions(ACCOUNTS.name, new)
    if len(accounts) == 1:
        runs = [_run_account(as_of, accounts[0], run_config, quiet)]
    elif parallel <= 1:
        t0, runs = time.monotonic(), []
        for a in accounts:
            runs.append(_run_account(as_of, a, run_config, True))
            if not quiet:
                state = "failed" if runs[-1].error else "done"
                say(f"  [{time.monotonic() - t0:5.1f}s] {a:<22} {state} ({len(runs)}/{len(accounts)})", err=True)
    else:
        runs = _run_parallel(as_of, accounts, run_config, min(parallel, len(accounts)), quiet)
    failed = [r for r in runs if r.error]
    if failed:
        done = [r.account for r in runs if not r.error]
        kept = f"; stored for {', '.join(done)}" if done else ""
        if len(runs) == 1:
            raise CliError(failed[0].error or "the run failed", failed[0].code)
        raise CliError(
            f"{len(failed)} of {len(runs)} accounts failed{kept}: "
            + "; ".join(f"{r.account}: {r.error}" for r in failed),
            max(r.code for r in failed),
        )
    return runs


def _run_parallel(
    as_of: date, accounts: list[str], run_config: dict[str, Any], workers: int, quiet: bool
) -> list[AccountRun]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    t0 = time.monotonic()
    runs: dict[str, AccountRun] = {}
    # spawn: a fresh interpreter per worker (no forked DuckDB or Dagster state).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_account, as_of, a, run_config, True): a for a in accounts}
        for future in as_completed(futures):
            account = futures[future]
            try:
                run = future.result()
            except Exception as err:  # a worker that died: its account failed, the others go on
                run = AccountRun(account, None, f"{type(err).__name__}: {err}", 1)
            runs[account] = run
            if not quiet:
                state = "failed" if run.error else "done"
                say(f"  [{time.monotonic() - t0:5.1f}s] {account:<22} {state} ({len(runs)}/{len(accounts)})", err=True)
    return [runs[a] for a in accounts]


def _why(rec: dict[str, Any]) -> str:
    from audience_assets.engine.recommend import decisive_reason

    return decisive_reason(rec["reasons"])


def _fmt(value: float | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:,.{places}f}"


# Narrow terminals drop the columns with the highest `drop` first; names are cut in the middle
# (they tend to differ at the end), reasons at the end, every cut marked with an ellipsis.
TABLE = (
    Column("#", "#", right=True),
    Column("id", "id"),
    Column("audience", "audience", flex=3, min_width=40, cut_middle=True),
    Column("type", "type", drop=5),
    Column("action", "action"),
    Column("conf", "conf", drop=3),
    Column("roas", "ROAS", right=True, drop=6),
    Column("vs", "vs acct", right=True),
    Column("spend", "spend 7d", right=True, drop=4),
    Column("purch", "purch", right=True, drop=8),
    Column("bucket", "bucket", drop=9),
    Column("trend", "trend", drop=7),
    Column("why", "why", flex=2, min_width=26),
)


def print_table(data: dict[str, Any], top: int, width: int | None = None) -> None:
    """The ranked recommendations as a table fitting the terminal, then the summary line."""
    from audience_assets.engine.fmt import currency_symbol

    recs = data["recommendations"]
    currencies = {r["currency"] for r in recs if r["currency"]}
    single = next(iter(currencies)) if len(currencies) == 1 else None
    # One currency: its sign in the header. Several: each amount carries its own code.
    spend_title = f"spend 7d {currency_symbol(single).strip()}" if single else "spend 7d"
    columns = tuple(dataclasses.replace(c, title=spend_title) if c.key == "spend" else c for c in TABLE)
    rows = [
        {
            "#": r["rank"],
            "id": r["audience_id"],
            "audience": r["audience_name"],
            "type": r["audience_type"] or "-",
            "action": r["action"] + (f" +{r['scale_percentage']}%" if r["scale_percentage"] else ""),
            "conf": r["confidence"],
            "roas": _fmt(r["metrics"]["roas"]),
            "vs": _fmt(r["metrics"]["normalized_roas"]) + "x",
            "spend": ("" if single else f"{r['currency']} ") + _fmt(r["metrics"]["spend"], 0),
            "purch": _fmt(r["metrics"]["purchases"], 0),
            "bucket": r["bucket"] or "-",
            "trend": r["trend"] or "-",
            "why": _why(r),
        }
        for r in recs[:top]
    ]
    if rows:
        say(render_table(rows, columns, width or terminal_width()))
    s = data["summary"]
    shown = min(top, s["audiences"])
    say(
        f"\nDecision date {data['decision_date']}: {s['audiences']} audiences ({shown} shown, best score first), "
        f"{s['eligible']} with enough data. SCALE {s['SCALE']} | HOLD {s['HOLD']} | PAUSE {s['PAUSE']} | "
        f"RETEST {s['RETEST']}   rules {data['config_hash']}"
    )


def _check_decision_date(as_of: date) -> None:
    """Decision dates the partitions admit: from the configured start to tomorrow (UTC)."""
    from audience_assets.defs.common import PARTITIONS_START, PARTITIONS_START_ENV

    first = date.fromisoformat(PARTITIONS_START)
    last = datetime.now(UTC).date() + timedelta(days=1)
    if as_of < first:
        raise CliError(
            f"decision date {as_of} is before the first partition, {first}: to decide on older data, "
            f"set {PARTITIONS_START_ENV}={as_of} (the Dagster UI then lists partitions from there too)"
        )
    if as_of > last:
        raise CliError(
            f"decision date {as_of} is in the future: the latest decision date is tomorrow (UTC), {last}, "
            "since a decision uses only days that are over"
        )


def _check_out(out: Path) -> None:
    """--out must be a writable file path; checked before anything is written to the warehouse."""
    if out.is_dir():
        raise CliError(f"--out {out} is a directory: expected a file path such as {out / 'recommendations.json'}")
    parent = out.parent if str(out.parent) else Path(".")
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise CliError(f"--out {out}: no permission to write there (checked before running; nothing was written)")


def _partial_path(out: Path) -> Path:
    """A private file beside --out for the JSON (renamed to --out once it is whole)."""
    return out.with_name(f".{out.name}.{os.getpid()}.partial")


def _deliver(db: str, day: date, runs: list[AccountRun], out: Path, report: Path) -> None:
    """Write --out and the report from the stored recommendations of this command's runs (every one
    passed its blocking checks), the JSON through a private file renamed into place."""
    from audience_assets.delivery.publish import report_html
    from audience_assets.engine.recommend import recommendation_json
    from audience_assets.warehouse import connect, write_atomically

    run_ids = [r.run_id for r in runs]
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT * FROM recommendations WHERE decision_date = ? AND list_contains(?, run_id) "
            "ORDER BY account_id, rank",
            [day, run_ids],
        ).pl()
        # A concurrent command may have decided one of these account-days again since: its rows now
        # carry that run's id, and this command's JSON would miss them.
        stamped = dict(
            conn.execute(
                "SELECT account_id, any_value(run_id) FROM recommendations WHERE decision_date = ? "
                "AND list_contains(?, account_id) GROUP BY account_id",
                [day, [r.account for r in runs]],
            ).fetchall()
        )
        replaced = [r.account for r in runs if r.account in stamped and stamped[r.account] != r.run_id]
        if replaced:
            raise CliError(f"the recommendations of {', '.join(replaced)} were replaced by a concurrent run", 1)
        generated = datetime.now(UTC).isoformat(timespec="seconds")
        partial = _partial_path(out)
        try:
            partial.write_text(recommendation_json(rows, day, generated), encoding="utf-8")
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        if rows.height:
            write_atomically(report, report_html(conn, day, str(out), [r.account for r in runs]))


def _table_data(db: str, day: date, run_ids: list[str], top: int) -> dict[str, Any]:
    """What the terminal table prints: these runs' first `top` recommendations (by account, then
    rank) and their summary."""
    from audience_assets.engine.recommend import json_records
    from audience_assets.warehouse import connect

    with connect(db) as conn:
        head = conn.execute(
            "SELECT * FROM recommendations WHERE decision_date = ? AND list_contains(?, run_id) "
            "ORDER BY account_id, rank LIMIT ?",
            [day, run_ids, top],
        ).pl()
        counts = dict(
            conn.execute(
                "SELECT action, count(*) FROM recommendations WHERE decision_date = ? AND list_contains(?, run_id) "
                "GROUP BY action",
                [day, run_ids],
            ).fetchall()
        )
        total, eligible, config_hash = conn.execute(
            "SELECT count(*), count_if(eligible), any_value(config_hash) FROM recommendations "
            "WHERE decision_date = ? AND list_contains(?, run_id)",
            [day, run_ids],
        ).fetchone()
    summary = {a: int(counts.get(a, 0)) for a in ("SCALE", "HOLD", "PAUSE", "RETEST")}
    summary |= {"audiences": int(total), "eligible": int(eligible)}
    return {
        "decision_date": day.isoformat(),
        "config_hash": config_hash,
        "summary": summary,
        "recommendations": json_records(head),
    }


def _notes(result) -> list[str]:
    notes = []
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() != "raw_insights":
            continue
        ignored = mat.metadata.get("rows_on_or_after_decision_date_ignored")
        if ignored is not None and ignored.value:
            notes.append(
                f"note: {ignored.value:,} insight rows dated on or after the decision date were ignored "
                "(a decision uses complete days before its date; see --as-of)"
            )
    return notes


def _finish(args, as_of: date, source: dict[str, Any]) -> int:
    _check_decision_date(as_of)
    out = Path(args.out)
    _check_out(out)
    check_database_file(args.db)
    if is_lake(args.db):  # the definitions then know there is no one-writer pool
        os.environ["AUDIENCE_ENGINE_WAREHOUSE"] = args.db
    parallel = concurrency(args.db, getattr(args, "concurrency", None))
    if not is_lake(args.db) and (getattr(args, "concurrency", None) or 1) > 1 and not args.quiet:
        say("note: a DuckDB file has one writer, so its accounts are decided one after another", err=True)
    t0 = time.monotonic()

    def waiting(message: str) -> None:
        say(message + " ...", err=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    report = Path(args.report) if getattr(args, "report", None) else out.parent / "reports" / f"report_{as_of}.html"
    with warehouse_lock(args.db, f"audience-engine {args.command}", args.lock_timeout, on_wait=waiting):
        _decide_history(args, as_of, source, parallel)
        if not args.quiet:
            how = f", {parallel} accounts at a time" if parallel > 1 else ""
            say(f"Materialising the asset graph for decision date {as_of} into {args.db}{how}", err=True)
        runs = run_graph(
            as_of=as_of,
            source=source,
            db=args.db,
            rules_path=args.config,
            overrides=_parse_set(args.set or []),
            quiet=args.quiet,
            parallel=parallel,
        )
        _deliver(args.db, as_of, runs, out, report)
        run_ids = [r.run_id for r in runs if r.run_id]
        data = _table_data(args.db, as_of, run_ids, args.top) if not args.quiet else {}
    for note in dict.fromkeys(n for r in runs for n in r.notes):
        say(note, err=True)
    if not args.quiet:
        which = f"run {run_ids[0][:8]}" if len(run_ids) == 1 else f"{len(run_ids)} account runs"
        say(
            f"Done in {time.monotonic() - t0:.1f}s; recommendations written to {out} ({which})\n"
            f"Report: {report}  (open it in a browser)\n",
            err=True,
        )
        print_table(data, args.top)
    return 0


def _decide_history(args, as_of: date, source: dict[str, Any], parallel: int) -> None:
    """The weekly decision dates before `as_of` (demo --history-weeks), oldest first, quietly: the days
    after each are then in the warehouse, so its decisions have outcomes."""
    weeks = getattr(args, "history_weeks", 0) or 0
    for k in range(weeks, 0, -1):
        day = as_of - timedelta(days=7 * k)
        if not args.quiet:
            say(f"Deciding the history: {day}", err=True)
        run_graph(
            as_of=day, source=source, db=args.db, rules_path=args.config,
            overrides=_parse_set(args.set or []), quiet=True, parallel=parallel,
        )  # fmt: skip


def _file_source(args) -> dict[str, Any]:
    if not args.insights or not args.audiences:
        raise CliError("recommend needs --insights and --audiences CSV files (or --source sample)")
    for flag, path in (("--insights", args.insights), ("--audiences", args.audiences)):
        if not Path(path).is_file():
            raise CliError(f"{flag} {path}: {'not a file' if Path(path).exists() else 'file not found'}")
    return {
        "kind": "csv",
        "insights_path": str(Path(args.insights).resolve()),
        "audiences_path": str(Path(args.audiences).resolve()),
        "encoding": args.encoding,
        "delimiter": args.delimiter,
    }


def cmd_recommend(args) -> int:
    if args.source == "meta":
        # Live accounts: decide on the complete days before today; recommend never writes to Meta.
        return _finish(args, args.as_of or datetime.now(UTC).date(), {"kind": "meta"})
    if args.source == "sample":
        return cmd_demo(args)
    from audience_assets.sources.files import newest_day

    source = _file_source(args)
    as_of = args.as_of or newest_day(SourceSpec(**source)) + timedelta(days=1)
    return _finish(args, as_of, source)


def cmd_demo(args) -> int:
    from audience_assets.sample.simulator import SAMPLE_END_DATE

    return _finish(args, args.as_of or SAMPLE_END_DATE + timedelta(days=1), {"kind": "sample"})


def cmd_config(args) -> int:
    print(to_toml(load_config(args.config, _parse_set(args.set or []))), end="")
    return 0


def cmd_schema(_args) -> int:
    print(recommendation_json_schema_text(), end="")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as-of",
        type=parse_date,
        help="decision date YYYY-MM-DD: only complete days before it are used (default: the day after the newest row)",
    )
    p.add_argument("--config", help="rules file (TOML); see `audience-engine config` for every setting and its default")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one rule for this run, e.g. --set min_spend=5000 --set modifiers.BROAD.winner_roas=1.15",
    )
    add_warehouse(p)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"recommendations JSON to write (default {DEFAULT_OUT})")
    p.add_argument(
        "--report",
        help="the HTML report to write (default: reports/report_<date>.html beside --out, e.g. data/reports/)",
    )
    p.add_argument("--top", type=_count, default=40, help="rows of the ranked table to print (default 40; 0 = none)")
    p.add_argument("--quiet", action="store_true", help="no progress and no table; just write the JSON")
    p.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="on a lake, how many accounts are decided at once, each in a process of its own (default "
        f"${CONCURRENCY_ENV}, else the machine's cores); a DuckDB file decides them one after another",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audience-engine",
        description="ROAS-first audience recommendations for Meta Ads: runs the Dagster asset graph over DuckDB. "
        "Writes to an ad account only what a person approved, and only with `execute --apply`.",
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
        help="insights CSV: date_start, account_id, campaign_id, campaign_name, adset_id, adset_name, spend, impressions, clicks, purchases, purchase_value [, account_currency]; or an Ads Manager export (ad-set level, by day; CSV or .xlsx)",
    )
    rec.add_argument(
        "--audiences",
        help="audiences CSV: adset_id, audience_type [, lookalike_pct, source_quality, launched_on, daily_budget, last_budget_change_at]",
    )
    rec.add_argument(
        "--encoding",
        help="text encoding of the CSV files when they are not UTF-8 (UTF-16 with a BOM is detected), e.g. cp1252",
    )
    rec.add_argument("--delimiter", help="field separator when not detected from the header: ',' ';' or '\\t'")
    _add_run_options(rec)
    rec.set_defaults(func=cmd_recommend)

    demo = sub.add_parser(
        "demo",
        help="the main job on the embedded sample account",
        description="Materialise the whole graph on the embedded sample account (seeded, INR) and print the ranked recommendations.",
    )
    _add_run_options(demo)
    demo.add_argument(
        "--history-weeks",
        type=_count,
        default=4,
        metavar="N",
        help="first decide the N weekly decision dates before it, so outcomes and replay have a history (default 4; 0: none)",
    )
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
    add_commands(sub)
    add_feedback_commands(sub)
    add_delivery_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "db", "") is None:  # --db not given: the environment's warehouse (errors here are clear)
            args.db = database_path()
        return args.func(args)
    except (CliError, InputError, ConfigError, *EXECUTION_ERRORS, *FEEDBACK_ERRORS, *DELIVERY_ERRORS) as err:
        say(f"error: {err}", err=True)
        return getattr(err, "code", EXIT_INPUT)


if __name__ == "__main__":
    sys.exit(main())
