"""dbt build times at about 1M and 5M conversations, and their cost against the floor.

Targets: the 1M build in <= 3 min; full build / floor <= 10 at each scale; an
incremental run adding one hour on top of the 1M set <= 10 % of the full build.

How the data gets there: the simulation writes landing batches directly in bulk mode
(sandbox/bulk.py), not over HTTP, and the connectors' loader loads them. Every channel's
conversations are written in WeCom's raw shape (`kf/sync_msg` records exactly as the
WeCom sandbox server builds them, one customer-service account per channel, bot replies
hidden as WeCom hides them), so all the volume goes through one platform's staging and
through sessionisation, the most expensive path; the CRM (customers, identities, orders)
is written in its own shape. 5M conversations are five consecutive 90-day simulations
(about 1M each, ids shifted apart) - 15 months of history - so memory stays near the 1M
case.

The floor is one DuckDB pass over every raw message that parses all the JSON fields the
staging models read (one parse per record, `json_extract_string(payload, [paths])`):
what any build must pay at least. Each dbt command runs in a child process with its own
target path; wall time and the child's CPU time are reported (the machine may be shared).

    python -m benchmarks dbt
    python -m benchmarks.bench_dbt --scales 1000000        # 1M only
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from sandbox.config import SimConfig
from sandbox.demand import channel_grid
from sandbox.simulation import SimData, simulate

CHUNK_DAYS = 90
CHUNK_CONVERSATIONS = 1_000_000
BASE_START = dt.date(2026, 8, 24)  # as bench_simulation: National Day, Double 11
TZ = "Asia/Shanghai"
MEMORY_LIMIT = os.environ.get("BENCH_DBT_MEMORY_LIMIT", "8GB")
TARGET = "1M build <= 180 s; build / floor <= 10; +1 h incremental <= 10 % of the full build"


def _chunk(k: int, conversations: float) -> SimData:
    """The k-th consecutive 90-day simulation, sized to `conversations` expected arrivals
    (holidays and promotions of its period included), ids shifted clear of the others."""
    start = BASE_START + dt.timedelta(days=CHUNK_DAYS * k)
    unit = SimConfig(seed=k + 1, start=start, days=CHUNK_DAYS, conversations_per_day=1.0)
    expected = sum(channel_grid(unit, ch, start, CHUNK_DAYS).rate.sum() for ch in unit.channels)
    data = simulate(unit.with_(conversations_per_day=conversations / expected))
    if k:
        _shift_ids(data, k)
    return data


def _shift_ids(data: SimData, k: int) -> None:
    offset = k * 10**9
    t = data.tables
    for name, cols in {
        "conversations": ["conversation_id"],
        "messages": ["message_id", "conversation_id"],
        "ratings": ["conversation_id", "rating_id"],
    }.items():
        for col in cols:
            t[name][col] = t[name][col] + offset
    prefix = f"K{k}"
    for name in ("customers", "identities", "orders", "conversations"):
        t[name]["customer_id"] = prefix + t[name]["customer_id"].astype(str)
    t["orders"]["order_id"] = prefix + t["orders"]["order_id"].astype(str)
    t["identities"]["platform_user_id"] = prefix + t["identities"]["platform_user_id"].astype(str)
    t["conversations"]["platform_user_id"] = prefix + t["conversations"]["platform_user_id"].astype(str)
    t["customers"]["union_id"] = prefix + t["customers"]["union_id"].astype(str)


def _load(warehouse: Path) -> int:
    from connectors.core.loader import Loader
    from connectors.platforms import all_streams

    with Loader(warehouse, all_streams()) as loader:
        return loader.load_pending(max_group_rows=5_000_000).rows


def _profiles(work: Path) -> Path:
    """The project's profile with a DuckDB memory limit: on a shared machine DuckDB's
    default (80 % of RAM) gets the build killed at 5M; with a limit it spills to disk."""
    from csw.transform import DBT_DIR

    profiles = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())
    for output in profiles["cs_warehouse"]["outputs"].values():
        output.setdefault("settings", {})["memory_limit"] = MEMORY_LIMIT
    directory = work / "profiles"
    directory.mkdir(exist_ok=True)
    (directory / "profiles.yml").write_text(yaml.safe_dump(profiles))
    return directory


def _dbt(args: list[str], as_of, work: Path) -> dict:
    """One dbt command in a child process (as csw.transform.run_dbt, with its own target
    path and profile); wall and CPU seconds, peak memory and the slowest nodes."""
    from csw.transform import DBT_DIR, TransformError, _as_utc_iso, dbt_env

    os.environ.update(dbt_env())  # the bench process is dbt's parent and nothing else
    env = {**os.environ, "DBT_TARGET_PATH": str(work / "dbt_target"), "DBT_LOG_PATH": str(work / "dbt_logs")}
    cli = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *args]
    cli += ["--project-dir", str(DBT_DIR), "--profiles-dir", str(_profiles(work))]
    cli += ["--vars", json.dumps({"as_of": _as_utc_iso(as_of)})]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cli, cwd=DBT_DIR, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise TransformError(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    out = {
        "seconds": round(wall, 1),
        "cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "peak_memory_gb": round(after.ru_maxrss / 1024**2, 1),
    }
    results = work / "dbt_target" / "run_results.json"
    if results.exists() and args[0] == "build":
        nodes = json.loads(results.read_text())["results"]
        nodes.sort(key=lambda r: -r["execution_time"])
        out["slowest"] = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 1) for r in nodes[:6]}
    return out


def _floor(warehouse: Path, work: Path) -> dict:
    """One pass over every raw message parsing every JSON field staging reads."""
    compiled = work / "dbt_target" / "compiled" / "cs_warehouse" / "models" / "staging"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        seconds, rows = 0.0, 0
        for sql_file in sorted(compiled.glob("*/stg_*__messages.sql")):
            platform = sql_file.stem.removeprefix("stg_").split("__")[0]
            table = f"{platform}__messages"
            n = con.execute(
                "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = ?",
                [table],
            ).fetchone()[0]
            if not n or not con.execute(f'select count(*) from raw."{table}"').fetchone()[0]:
                continue
            sql = sql_file.read_text()
            # field by field, or the list form (one parse of all the fields)
            paths = set(re.findall(r"json_extract_string\(payload, '(\$[^']+)'\)", sql))
            for listed_paths in re.findall(r"json_extract_string\(payload, \[([^\]]+)\]\)", sql):
                paths |= set(re.findall(r"'(\$[^']+)'", listed_paths))
            paths = sorted(paths)
            listed = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
            t0 = time.perf_counter()
            got = con.execute(
                f"select count(*), sum(length(list_aggregate(json_extract_string(payload, {listed}), 'string_agg', '')))"
                f' from raw."{table}"'
            ).fetchone()
            seconds += time.perf_counter() - t0
            rows += got[0]
        return {"seconds": round(seconds, 2), "raw_messages": rows}
    finally:
        con.close()


def _release(holding: Path, landing: Path) -> None:
    """Move held batches into landing as the landing protocol does: data, then manifest."""
    for manifest in sorted(holding.glob("*/*/*.manifest.json")):
        target = landing / manifest.parent.relative_to(holding)
        target.mkdir(parents=True, exist_ok=True)
        data_file = manifest.name.removesuffix(".manifest.json") + ".jsonl.gz"
        os.replace(manifest.parent / data_file, target / data_file)
        os.replace(manifest, target / manifest.name)


def _scale(conversations: int, incremental: bool, keep: bool = False) -> dict:
    from sandbox.bulk import BulkWriter

    work = Path(tempfile.mkdtemp(prefix=f"bench_dbt_{conversations}_"))
    os.environ["CSW_DATA_DIR"] = str(work)
    os.environ.pop("CSW_WAREHOUSE", None)
    warehouse = work / "warehouse" / "warehouse.duckdb"
    chunks = max(1, round(conversations / CHUNK_CONVERSATIONS))
    out: dict = {}
    t0 = time.perf_counter()
    n_conv = 0
    as_of = None
    holding = work / "holding"  # the incremental hour, landed after the full build
    for k in range(chunks):
        data = _chunk(k, conversations / chunks)
        n_conv += len(data["conversations"])
        end = pd.Timestamp(data.config["end"]).tz_localize(TZ)
        with BulkWriter(data, all_as_wecom=True) as writer:
            if k == chunks - 1:
                # stop at 15:00 on the last day: the incremental run adds 15:00-16:00
                as_of = (end - pd.Timedelta(hours=9)).tz_convert("UTC")
                writer.write(None, as_of)
                if incremental:
                    writer.root = holding
                    writer.write(as_of, as_of + pd.Timedelta(hours=1), batch_hours=1)
            else:
                writer.write(None, end.tz_convert("UTC"))
        del data
        gc.collect()
        _load(warehouse)
    out["conversations"] = n_conv
    out["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    _dbt(["parse"], as_of, work)  # both builds then use partial parsing
    full = _dbt(["build"], as_of, work)
    out["full_build_seconds"] = full["seconds"]
    out["full_build_cpu_seconds"] = full["cpu_seconds"]
    out["slowest_nodes"] = full.get("slowest", {})
    floor = _floor(warehouse, work)
    out["raw_messages"] = floor["raw_messages"]
    out["floor_seconds"] = floor["seconds"]
    out["build_over_floor"] = round(full["seconds"] / max(floor["seconds"], 1e-9), 1)
    if incremental:
        hour_end = as_of + pd.Timedelta(hours=1)
        _release(holding, work / "landing")
        _load(warehouse)
        inc = _dbt(["build"], hour_end, work)
        out["incremental_1h_seconds"] = inc["seconds"]
        out["incremental_share"] = round(inc["seconds"] / full["seconds"], 3)
        out["incremental_slowest_nodes"] = inc.get("slowest", {})
    out["dbt_peak_memory_gb"] = full["peak_memory_gb"]
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        out["work_dir"] = str(work)
    return out


def run(scales: tuple[int, ...] = (1_000_000, 5_000_000), keep: bool = False) -> dict:
    out: dict = {
        "data": "bulk mode: every channel in WeCom's raw shape + CRM; 5M = five consecutive 90-day simulations",
        "load_average": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }
    ok = True
    for n in scales:
        label = f"{n // 1_000_000}M" if n >= 1_000_000 else str(n)
        res = _scale(n, incremental=(n == min(scales)), keep=keep)
        print(json.dumps({label: res}), file=sys.stderr, flush=True)  # progress, scale by scale
        for key, value in res.items():
            out[f"{label}_{key}"] = value
        ok &= res["build_over_floor"] <= 10
        if n == 1_000_000:
            ok &= res["full_build_seconds"] <= 180
        if "incremental_share" in res:
            ok &= res["incremental_share"] <= 0.10
    out["load_average_after"] = round(os.getloadavg()[0], 1)
    out["target"] = TARGET
    out["ok"] = bool(ok)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()
    np.seterr(all="ignore")
    print(json.dumps(run(tuple(args.scales), keep=args.keep)))
