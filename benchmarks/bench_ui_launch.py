"""How long a run launched from the Dagster UI takes, end to end.

Starts `dg dev` (webserver and daemon, as `make dev` does) on a free loopback port with a fresh
instance and warehouse, launches `audience_engine_job` for the sample's decision date through
the webserver's GraphQL API (what the UI's "Materialize all" button calls), and waits for the
run to finish. Reports the time from launch to success, and the time the run itself recorded.

    python benchmarks/bench_ui_launch.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = "audience_engine_job"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(port: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("dg dev did not start")


def _launch_and_wait(client, account: str, day: str) -> tuple[float, float, str]:
    from dagster_graphql import DagsterGraphQLClientError

    started = time.monotonic()
    for _attempt in range(60):  # the code location may still be loading
        try:
            tags = {
                "dagster/partition": f"{account}|{day}",
                "dagster/partition/account": account,
                "dagster/partition/date": day,
            }
            run_id = client.submit_job_execution(JOB, tags=tags)
            break
        except DagsterGraphQLClientError as err:
            if "not found" not in str(err).lower() and "loading" not in str(err).lower():
                raise
            time.sleep(1)
    else:
        raise SystemExit("the job never became available")
    launched = time.monotonic()
    while True:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.25)
    return launched - started, time.monotonic() - launched, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs to launch one after another (default 2)")
    args = parser.parse_args()
    from dagster_graphql import DagsterGraphQLClient

    from audience_assets.sample.simulator import SAMPLE_ACCOUNT, SAMPLE_END_DATE

    day = (SAMPLE_END_DATE.fromordinal(SAMPLE_END_DATE.toordinal() + 1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        port = _free_port()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
            "AUDIENCE_ENGINE_DB": str(Path(tmp) / "warehouse.duckdb"),
            "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        }
        subprocess.run([sys.executable, "-m", "audience_assets.instance"], env=env, check=True, capture_output=True)
        # The sample's account partition, as the schedule or the CLI adds it when the account first appears.
        add = f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('accounts', [{SAMPLE_ACCOUNT!r}])"
        subprocess.run([sys.executable, "-c", add], env=env, check=True, capture_output=True)
        dg = Path(sys.executable).parent / "dg"
        server = subprocess.Popen(
            [str(dg), "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_server(port)
            client = DagsterGraphQLClient("127.0.0.1", port_number=port)
            print(f"dg dev on 127.0.0.1:{port}; launching {JOB} for partition {SAMPLE_ACCOUNT}|{day}")
            for i in range(args.repeat):
                submit, run, status = _launch_and_wait(client, SAMPLE_ACCOUNT, day)
                print(f"run {i + 1}: {status} in {run:.1f} s after launch (launch request {submit:.1f} s)")
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
