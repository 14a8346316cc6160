"""The Slack digest and approvals from Slack, through the real slack_sdk and slack_bolt against a local
fake Slack: the digest within Slack's limits, posting by webhook and by bot, retries and failures that
never fail a run, and the interactivity endpoint refusing forged, stale and unlisted clicks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import dagster as dg
import duckdb
import polars as pl
import pytest
import requests

from audience_assets.delivery.digest import digest_blocks
from audience_assets.delivery.notify import notify
from audience_assets.integrations.slack import SlackPoster, SlackSettings
from audience_assets_tests.conftest import JOB, VENV_BIN, DayRuns, run_config, run_day
from audience_assets_tests.fakes.slack_server import MAX_BLOCKS, FakeSlack, blocks_problem

BOT = "xoxb-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def warehouse(sample_warehouse, tmp_path) -> Path:
    db = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse.db, db)
    return db


@pytest.fixture
def slack():
    with FakeSlack(bot_token=BOT) as fake:
        yield fake


def _recs(db: Path) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT * FROM recommendations ORDER BY rank").pl()


def test_the_digest_fits_slack_and_escapes_names(warehouse):
    rows = _recs(warehouse)
    day = rows["decision_date"][0]
    hostile = "<!channel> \x1b[2J <https://evil.example|click> & co"
    rows = rows.with_columns(
        pl.when(pl.col("rank") == 1).then(pl.lit(hostile)).otherwise("audience_name").alias("audience_name")
    )
    big = pl.concat(
        [rows]
        + [rows.filter(pl.col("action") == "SCALE").with_columns(pl.col("rank") + 1000 * k) for k in range(1, 12)]
    )
    approvals = {
        r: {"approval_id": f"p{i}", "status": "pending", "button_value": "{}"} for i, r in enumerate(big["audience_id"])
    }
    text, blocks = digest_blocks(
        big, day, approvals=approvals, report_path="data/reports/report.html", interactive=True
    )
    assert len(blocks) <= MAX_BLOCKS and blocks_problem(blocks) is None
    flat = json.dumps(blocks)
    assert "<!channel>" not in flat and "&lt;!channel&gt;" in flat and "\\u001b" not in flat and "\\\\x1b[2J" in flat
    assert "and " in flat and "more SCALE items" in flat
    assert '"action_id": "approve"' in flat and "data/reports/report.html" in flat
    plain_text, plain = digest_blocks(rows, day, approvals=approvals, interactive=False)
    assert '"action_id"' not in json.dumps(plain)  # a webhook message has no buttons
    assert f"SCALE {int((rows['action'] == 'SCALE').sum())} · PAUSE" in plain_text and "SCALE 180" in text


def test_notify_by_webhook_and_by_bot(warehouse, slack):
    day = _recs(warehouse)["decision_date"][0]
    with duckdb.connect(str(warehouse)) as conn:
        hook = notify(
            conn, day, SlackPoster(SlackSettings(webhook_url=slack.webhook_url)), report_path="r.html", run_id="r1"
        )
        bot = notify(conn, day, SlackPoster(SlackSettings(bot_token=BOT, channel="#buying", api_url=slack.api_url)),
                     report_path="r.html", run_id="r2")  # fmt: skip
        stored = conn.execute(
            "SELECT run_id, status, mode FROM notifications WHERE run_id IN ('r1', 'r2') ORDER BY run_id"
        ).fetchall()
    assert hook["status"].to_list() == ["posted"] and bot["status"].to_list() == ["posted"]
    assert stored == [("r1", "posted", "webhook"), ("r2", "posted", "bot")]
    webhook_post = slack.posts("/services/")[0]["json"]
    assert webhook_post["blocks"][0]["type"] == "header" and '"action_id"' not in json.dumps(webhook_post["blocks"])
    message = slack.messages[bot["ts"][0]]
    assert message["channel"] == "#buying" and '"action_id": "approve"' in json.dumps(message["blocks"])
    assert BOT not in json.dumps(bot.to_dicts(), default=str)


def test_failures_are_retried_logged_and_never_raised(warehouse, slack):
    day = _recs(warehouse)["decision_date"][0]
    poster = SlackPoster(SlackSettings(webhook_url=slack.webhook_url, max_retries=2))
    slack.fail_next((429, "rate limited", {"Retry-After": "0"}))
    with duckdb.connect(str(warehouse)) as conn:
        assert notify(conn, day, poster, report_path=None, run_id="a")["status"].to_list() == ["posted"]
        slack.fail_next(*[(500, "oops", {})] * 3)
        failed = notify(conn, day, poster, report_path=None, run_id="b")
    assert failed["status"].to_list() == ["failed"] and "500" in failed["error"][0]
    assert len(slack.posts("/services/")) == 2 + 3  # one retry after the 429; three attempts on the 500s
    with duckdb.connect(str(warehouse)) as conn:
        quiet = notify(conn, day, None, report_path=None, run_id="c")
    assert quiet["status"].to_list() == ["not_configured"]


def _graph(db: Path, slack_config: dict) -> DayRuns:
    cfg = run_config(db, source={"kind": "sample", "sample_adsets": 40})
    cfg["resources"]["slack"] = {"config": slack_config}
    return run_day(JOB, "2026-11-26", cfg)


def test_the_daily_job_posts_and_a_failed_post_never_fails_it(tmp_path, slack):
    ok = _graph(tmp_path / "a.duckdb", {"webhook_url": slack.webhook_url})
    assert ok.success and len(slack.posts("/services/")) == 1
    check = next(c for c in ok.get_asset_check_evaluations() if c.asset_check_key.name == "posted")
    assert check.passed
    slack.fail_next(*[(500, "down", {})] * 4)
    down = _graph(tmp_path / "b.duckdb", {"webhook_url": slack.webhook_url, "max_retries": 3})
    assert down.success  # the recommendations are delivered whatever Slack does
    check = next(c for c in down.get_asset_check_evaluations() if c.asset_check_key.name == "posted")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    with duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT status FROM notifications").fetchall() == [("failed",)]
        assert conn.execute("SELECT count(*) FROM recommendations").fetchone()[0] == 40


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AUDIENCE_ENGINE_", "ANTHROPIC_", "META_"))
    }
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


def test_notify_command(warehouse, slack, tmp_path):
    engine = str(VENV_BIN / "audience-engine")
    quiet = subprocess.run(
        [engine, "notify", "--db", str(warehouse)], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0 and "not configured" in quiet.stdout and slack.requests == []
    posted = subprocess.run([engine, "notify", "--db", str(warehouse)], env=_env(SLACK_WEBHOOK_URL=slack.webhook_url),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    assert "act_1001 2026-11-26: posted" in posted.stdout and len(slack.posts("/services/")) == 1


# ---- approvals from Slack: the interactivity endpoint --------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(warehouse, slack, tmp_path):
    port = _free_port()
    env = _env(SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=BOT, SLACK_API_URL=slack.api_url, SLACK_APPROVERS="U1,U3")
    proc = subprocess.Popen(
        [str(VENV_BIN / "audience-engine"), "slack-app", "--port", str(port), "--db", str(warehouse),
         "--max-decision-age-days", "3650"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ready when the port accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/slack/events"
    proc.terminate()
    proc.wait(timeout=10)


def _click(db: Path, slack: FakeSlack, user: str, action: str = "approve") -> tuple[str, bytes]:
    """A block_actions payload for the first pending SCALE of the digest the bot posted."""
    with duckdb.connect(str(db)) as conn:
        day = conn.execute("SELECT max(decision_date) FROM recommendations").fetchone()[0]
        notify(conn, day, SlackPoster(SlackSettings(bot_token=BOT, channel="C1", api_url=slack.api_url)),
               report_path=None, run_id="n")  # fmt: skip
    ts, message = next(iter(slack.messages.items()))
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")
    value = buttons["elements"][0]["value"]
    payload = {
        "type": "block_actions", "user": {"id": user, "username": "maria"}, "team": {"id": "T000"},
        "channel": {"id": "C1"}, "message": {"ts": ts, "blocks": message["blocks"]},
        "response_url": f"{slack.base_url}/services/response", "trigger_id": "1.2.3",
        "actions": [{"action_id": action, "block_id": buttons["block_id"], "value": value, "type": "button"}],
    }  # fmt: skip
    return json.loads(value)["adset_id"], urlencode({"payload": json.dumps(payload)}).encode()


def _signed(body: bytes, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    ts = str(int(time.time()) - age)
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _decision(db: Path, adset_id: str) -> tuple:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "SELECT status, decided_by, decided_via FROM approvals WHERE adset_id = ? AND status <> 'superseded'",
            [adset_id],
        ).fetchone()


@pytest.mark.parametrize(
    ("how", "status"),
    [("forged", 401), ("stale", 401), ("tampered", 401), ("unlisted", 200)],
)
def test_forged_stale_tampered_or_unlisted_clicks_change_nothing(app, warehouse, slack, how, status):
    adset_id, body = _click(warehouse, slack, "U2" if how == "unlisted" else "U1")
    headers = {
        "forged": _signed(body, secret="not-the-secret"),
        "stale": _signed(body, age=600),
        "tampered": _signed(body.replace(b"approve", b"reject")),
        "unlisted": _signed(body),
    }[how]
    response = requests.post(app, data=body, headers=headers, timeout=30)
    assert response.status_code == status
    assert _decision(warehouse, adset_id) == ("pending", None, None)
    assert slack.posts("chat.update") == []


def test_an_allowed_click_records_the_approval_and_updates_the_message(app, warehouse, slack):
    adset_id, body = _click(warehouse, slack, "U1")
    response = requests.post(app, data=body, headers=_signed(body), timeout=30)
    assert response.status_code == 200
    assert _decision(warehouse, adset_id) == ("approved", "slack:maria", "slack")
    updated = slack.posts("chat.update")
    assert len(updated) == 1
    blocks = json.dumps(updated[0]["json"]["blocks"])
    assert "Approved by maria" in blocks
    # The clicked item's buttons are gone; the other items keep theirs.
    before = json.dumps(slack.posts("chat.postMessage")[0]["json"]["blocks"]).count('"action_id": "approve"')
    assert blocks.count('"action_id": "approve"') == before - 1 > 0
