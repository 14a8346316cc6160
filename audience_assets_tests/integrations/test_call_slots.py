"""The machine-wide cap on concurrent Meta calls: flock slots shared by threads and processes, and
MetaClient holding one around each request to the fake Graph API."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from audience_assets.engine.config import ConfigError
from audience_assets.integrations.call_slots import META_CALLS_ENV, CallSlots, meta_call_limit
from audience_assets.integrations.meta import MetaClient, MetaSettings
from audience_assets_tests.fakes.graph_server import FakeGraph, build_account
from audience_assets_tests.meta_helpers import END, INR, TOKEN

HOLD = """
import sys, time
from pathlib import Path
from audience_assets.integrations.call_slots import CallSlots
slots = CallSlots(int(sys.argv[2]), Path(sys.argv[1]))
with slots.held():
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def holder(folder, limit: int, seconds: float) -> subprocess.Popen:
    """Another process holding one slot for `seconds` (returns once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(limit), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_threads_never_exceed_the_cap_and_do_use_it(tmp_path):
    slots = CallSlots(2, tmp_path / "slots")
    active, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        for _ in range(3):
            with slots.held():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.05)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def test_a_slot_held_by_another_process_makes_a_call_wait(tmp_path):
    proc = holder(tmp_path / "slots", 1, 0.8)
    t0 = time.monotonic()
    with CallSlots(1, tmp_path / "slots").held():
        waited = time.monotonic() - t0
    proc.wait(timeout=30)
    assert waited >= 0.5
    # With two slots the other process's one leaves a free one: no wait.
    proc = holder(tmp_path / "slots", 2, 0.8)
    t0 = time.monotonic()
    with CallSlots(2, tmp_path / "slots").held():
        assert time.monotonic() - t0 < 0.5
    proc.wait(timeout=30)


def test_meta_client_requests_wait_for_the_machine_wide_cap(tmp_path):
    account = build_account(INR, "INR", n_adsets=5, days=10, end_date=END, seed=3)
    with FakeGraph({INR: account}) as fake:
        slots = CallSlots(1, tmp_path / "meta")
        client = MetaClient(MetaSettings(access_token=TOKEN, graph_url=fake.base_url), slots=slots)
        proc = holder(tmp_path / "meta", 1, 1.0)
        t0 = time.monotonic()
        info = client.account(INR)
        waited = time.monotonic() - t0
        proc.wait(timeout=30)
    assert info["currency"] == "INR"
    assert waited >= 0.7 and slots.waited_seconds >= 0.7


def test_the_cap_setting_is_checked(monkeypatch):
    monkeypatch.delenv(META_CALLS_ENV, raising=False)
    assert meta_call_limit() == 4
    monkeypatch.setenv(META_CALLS_ENV, "2")
    assert meta_call_limit() == 2
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(META_CALLS_ENV, bad)
        with pytest.raises(ConfigError, match=META_CALLS_ENV):
            meta_call_limit()
    with pytest.raises(ValueError, match="1 or more"):
        CallSlots(0, "unused")
