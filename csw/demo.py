"""The main job on the embedded default: simulate the company, serve its platforms on
127.0.0.1, ingest every platform into DuckDB, and summarise. Grows with the pipeline."""

from __future__ import annotations

import os
import time

import pandas as pd
from rich.console import Console
from rich.table import Table

from csw.settings import data_dir, warehouse_path
from sandbox.cli import default_dataset_dir, summary_table
from sandbox.config import SimConfig
from sandbox.simulation import SimData, simulate

console = Console()


def _dataset(cfg: SimConfig) -> SimData:
    """Reuse the data set on disk when it was made by the same config."""
    out = default_dataset_dir()
    if (out / "meta.json").exists():
        data = SimData.read(out)
        if (
            data.config.get("seed") == cfg.seed
            and data.config.get("start") == cfg.start.isoformat()
            and data.config.get("days") == cfg.days
        ):
            return data
    data = simulate(cfg)
    data.write(out)
    return data


def served_table(server) -> Table:
    from sandbox.server.app import API_PLATFORMS, CONSOLE_ONLY

    table = Table(title=f"Sandbox platforms on {server.url} (clock {server.state.now():%Y-%m-%d %H:%M} UTC)")
    table.add_column("platform")
    table.add_column("API")
    table.add_column("admin console")
    served = set(server.state.data.config["channels"])
    for p in API_PLATFORMS + CONSOLE_ONLY:
        if p in served:
            api = f"{server.url}/{p}/" if p in API_PLATFORMS else "none (console only)"
            table.add_row(p, api, f"{server.url}/console/{p}/login")
    return table


def _backfill_wecom(sandbox_url: str, since, as_of) -> None:
    """WeCom's API keeps 3 days: a first install reads older history from the console once."""
    from connectors.core.config import load_config, sandbox_overrides
    from connectors.core.landing import latest_manifest
    from connectors.scrapers import backfill

    if latest_manifest("wecom", "messages") is not None:
        return  # not a first install
    config = load_config(overrides=sandbox_overrides(sandbox_url))["wecom"]
    result = backfill("wecom", "messages", since, as_of - pd.Timedelta(days=3), config=config)
    console.print(
        f"WeCom history older than the API's 3 days: {result.rows:,} messages from the console export"
    )


def run_demo() -> None:
    from connectors.cli import _summary_table, run_ingest
    from sandbox.server.app import RunningServer
    from sandbox.server.state import SandboxState

    started = time.monotonic()
    cfg = SimConfig()
    console.rule("1. Simulate the sandbox company (5 weeks, 9 platforms)")
    with console.status("simulating ..."):
        data = _dataset(cfg)
    console.print(summary_table(data))

    console.rule("2. Serve the platforms on 127.0.0.1")
    state = SandboxState(data)
    with RunningServer(state) as server:
        console.print(served_table(server))
        as_of = state.now()
        since = pd.Timestamp(cfg.start).tz_localize("Asia/Shanghai").tz_convert("UTC")

        console.rule("3. Ingest every platform into DuckDB raw")
        os.environ.setdefault("CSW_CONNECTORS_CONFIG", str(data_dir() / "connectors.yaml"))
        _backfill_wecom(server.url, since, as_of)
        summary = run_ingest(None, None, since, as_of, server.url, show_progress=True)
        console.print(_summary_table(summary))
        for f in summary["failures"]:
            console.print(f"[red]{f['platform']}.{f['stream']} failed:[/] {f['error']}")

    console.rule("Done")
    console.print(
        f"Warehouse: {warehouse_path()}\n"
        f"Landing batches: {data_dir() / 'landing'}\n"
        f"Finished in {time.monotonic() - started:.0f} s."
    )
