"""Sandbox serving rate: records per second a plain `requests` loop reads over loopback
(target >= 20k records/s), and the connector's land+load rate on the same pages with the
ratio between the two (target: connector overhead <= 1.5x). Best of three runs each, after
one warm-up loop (the machine is shared: the best run is the least disturbed one)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests

from sandbox.config import SimConfig
from sandbox.server.state import DEFAULT_CREDENTIALS, SandboxState
from sandbox.simulation import simulate


def bare_wecom_loop(url: str) -> int:
    creds = DEFAULT_CREDENTIALS["wecom"]
    token = requests.get(
        f"{url}/wecom/cgi-bin/gettoken", params={"corpid": creds["corpid"], "corpsecret": creds["corpsecret"]}
    ).json()["access_token"]
    cursor, n = None, 0
    session = requests.Session()
    while True:
        body = {"limit": 1000, "open_kfid": creds["open_kfid"], **({"cursor": cursor} if cursor else {})}
        page = session.post(
            f"{url}/wecom/cgi-bin/kf/sync_msg", params={"access_token": token}, json=body
        ).json()
        n += len(page["msg_list"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return n


def bare_loop(url: str) -> tuple[float, int, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    n = bare_wecom_loop(url)
    return time.perf_counter() - t0, n, time.process_time() - c0


def connector_run(url: str, as_of) -> tuple[float, int, float]:
    """`csw ingest` of the same messages into a fresh data directory: land and load, without
    the quality gate (its cost is the `quality` section's figure)."""
    from connectors.cli import run_ingest

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CSW_DATA_DIR"] = tmp
        os.environ["CSW_CONNECTORS_CONFIG"] = os.path.join(tmp, "none.yaml")
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_ingest(
            ["wecom"], "messages", None, pd.Timestamp(as_of), url, show_progress=False, quality_gate=False
        )
        return time.perf_counter() - t0, summary["loaded"]["rows"], time.process_time() - c0


class ServerProcess:
    """The sandbox in its own process, as in production the platform is another machine:
    the measured client does not share a GIL with the server."""

    def __init__(self, dataset: str):
        from sandbox.server.app import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "csw.cli",
            "sandbox",
            "serve",
            "--dataset",
            dataset,
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self):
        for _ in range(600):
            try:
                requests.get(f"{self.url}/_sandbox/health", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("sandbox server did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


def run() -> dict:
    # 3 days of a busy company: all inside WeCom's 3-day window
    cfg = SimConfig(
        seed=5, start=dt.date(2026, 11, 16), days=3, conversations_per_day=40000, channels=("wecom",)
    )
    data = simulate(cfg)
    dataset = tempfile.mkdtemp()
    data.write(Path(dataset))
    as_of = SandboxState(data).now()
    out: dict = {}
    with ServerProcess(dataset) as server:
        bare_loop(server.url)  # warm the server's caches
        bare, n, bare_cpu = min(bare_loop(server.url) for _ in range(3))
        out["records"] = n
        out["bare_requests_records_per_s"] = round(n / bare)
        ours, rows, ours_cpu = min(connector_run(server.url, as_of) for _ in range(3))
        out["connector_land_load_records_per_s"] = round(rows / ours)
        out["connector_over_bare_ratio"] = round(ours / bare, 2)
        # the client's CPU seconds (DuckDB's threads included): the work, whatever the machine's load
        out["client_cpu_s_bare_vs_connector"] = f"{bare_cpu:.2f} vs {ours_cpu:.2f}"
    out["target"] = "serving >= 20k records/s; connector/bare <= 1.5"
    out["ok"] = out["bare_requests_records_per_s"] >= 20000 and out["connector_over_bare_ratio"] <= 1.5
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
