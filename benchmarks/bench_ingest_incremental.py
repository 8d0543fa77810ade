"""Incremental load: one more hour on top of 90 days of ingested data, against the same
hour into an empty warehouse (target: <= 2x).

A WeCom-only company is simulated for 90 days; the bulk writer (sandbox/bulk.py) lands the
first 90 days minus one hour as daily batches, the loader loads them (the history), and the
last hour is landed as hourly batches beside them. Then the loader runs on that hour:

- incremental: a copy of the history warehouse, with every history batch still in landing
  (the loader lists them and skips them, as a real incremental run does);
- empty: a fresh warehouse, with only the hour's batches in landing.

Each is the whole loader run (open the warehouse, list pending batches, load, commit,
close), best of seven (a run takes tenths of a second: fixed costs and a busy machine
weigh); the warehouse copy is not timed.

    python -m benchmarks ingest_incremental
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from sandbox.config import SimConfig
from sandbox.simulation import simulate

DAYS = 90
TARGET = "one hour on top of 90 days <= 2x the same hour into an empty warehouse"


def _load(warehouse: Path, landing: Path, quarantine: Path) -> tuple[float, int]:
    from connectors.core.loader import Loader
    from connectors.platforms import all_streams

    t0 = time.perf_counter()
    with Loader(warehouse, all_streams(), landing=landing, quarantine=quarantine) as loader:
        rows = loader.load_pending().rows
    return time.perf_counter() - t0, rows


def run(conversations_per_day: int = 8000, repeats: int = 7) -> dict:
    from connectors.core.loader import Loader
    from connectors.platforms import all_streams
    from sandbox.bulk import BulkWriter

    cfg = SimConfig(
        seed=7,
        start=dt.date(2026, 8, 24),
        days=DAYS,
        conversations_per_day=conversations_per_day,
        channels=("wecom",),
    )
    t0 = time.perf_counter()
    data = simulate(cfg)
    end = pd.Timestamp(data.config["end"]).tz_localize("Asia/Shanghai")
    hour_end = (end - pd.Timedelta(hours=8)).tz_convert("UTC")  # 16:00 on the last day
    hour_start = hour_end - pd.Timedelta(hours=1)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["CSW_DATA_DIR"] = str(work)
        landing, hour, quarantine = work / "landing", work / "hour", work / "quarantine"
        history = work / "history.duckdb"
        with BulkWriter(data, shapes=("wecom",), root=landing) as writer:
            writer.write(None, hour_start, batch_hours=24)
            writer.root = hour
            writer.write(hour_start, hour_end, batch_hours=1)
        del data
        with Loader(history, all_streams(), landing=landing, quarantine=quarantine) as loader:
            out["history_rows"] = loader.load_pending(max_group_rows=5_000_000).rows
            out["history_batches"] = loader.con.execute("select count(*) from raw._batches").fetchone()[0]
        out["prepare_s"] = round(time.perf_counter() - t0, 1)
        shutil.copytree(hour, landing, dirs_exist_ok=True)  # the hour lands beside the history

        incremental, empty = [], []
        for i in range(repeats):
            warm = work / f"warm{i}.duckdb"
            shutil.copy(history, warm)
            seconds, rows = _load(warm, landing, quarantine)
            incremental.append(seconds)
            warm.unlink()
            seconds, empty_rows = _load(work / f"empty{i}.duckdb", hour, quarantine)
            empty.append(seconds)
            assert rows == empty_rows > 0, f"the hour loaded {rows} rows on the history, {empty_rows} alone"
    out["hour_rows"] = rows
    out["incremental_load_s"] = round(min(incremental), 3)
    out["empty_load_s"] = round(min(empty), 3)
    out["incremental_over_empty"] = round(min(incremental) / min(empty), 2)
    out["target"] = TARGET
    out["ok"] = out["incremental_over_empty"] <= 2.0
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
