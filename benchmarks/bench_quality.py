"""Batch quality gate: validation time per 100k rows, and what the gate adds to an ingest
(target: <= 20 % of the ingest time).

A WeCom-only company (about 100k messages inside WeCom's 3-day window) is served by the
sandbox in its own process; `run_ingest` extracts, lands and loads it into a fresh data
directory, alternately without and with the batch gate (best of five each). The overhead
is the larger of the wall-clock difference and the gate's own time (DuckDB frames, GX
validations, storing results, Data Docs) over the ingest time; validation is also reported
per 100k rows, and the extra CPU time of the process (the gate's work, less sensitive to a
busy machine than wall time). Importing Great Expectations is a one-off per process,
reported apart.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.bench_serving import ServerProcess
from sandbox.config import SimConfig
from sandbox.server.state import SandboxState
from sandbox.simulation import simulate


def _ingest(url: str, as_of, gate: bool) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one `csw ingest` into a fresh data directory, and its summary."""
    from connectors.cli import run_ingest

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CSW_DATA_DIR"] = tmp
        os.environ["CSW_CONNECTORS_CONFIG"] = os.path.join(tmp, "none.yaml")
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_ingest(["wecom"], "messages", None, as_of, url, show_progress=False, quality_gate=gate)
        return time.perf_counter() - t0, time.process_time() - c0, summary


def run(conversations_per_day: int = 30_000) -> dict:
    cfg = SimConfig(
        seed=5,
        start=dt.date(2026, 11, 16),
        days=3,
        conversations_per_day=conversations_per_day,
        channels=("wecom",),
    )
    data = simulate(cfg)
    with tempfile.TemporaryDirectory() as dataset, tempfile.TemporaryDirectory() as warm:
        data.write(Path(dataset))
        as_of = pd.Timestamp(SandboxState(data).now())

        t0 = time.perf_counter()
        import great_expectations  # noqa: F401 - the one-off import, measured apart

        from expectations.context import get_context

        os.environ["CSW_DATA_DIR"] = warm
        get_context()
        gx_import = time.perf_counter() - t0
        return _measure(dataset, as_of, gx_import)


def _measure(dataset: str, as_of, gx_import: float, repeats: int = 5) -> dict:
    without, with_gate, cpu_without, cpu_with, gate_s, docs_s = [], [], [], [], [], []
    rows = 0
    with ServerProcess(dataset) as server:
        _ingest(server.url, as_of, gate=False)  # warm the server's caches
        for _ in range(repeats):
            seconds, cpu, summary = _ingest(server.url, as_of, gate=False)
            without.append(seconds)
            cpu_without.append(cpu)
            seconds, cpu, summary = _ingest(server.url, as_of, gate=True)
            with_gate.append(seconds)
            cpu_with.append(cpu)
            rows = summary["loaded"]["rows"]
            assert summary["quality"]["success"], summary["quality"]["summary"]
            gate_s.append(summary["quality"]["seconds"])
            docs_s.append(summary["quality"]["docs_seconds"])
    base, gated = min(without), min(with_gate)
    wall = (gated - base) / base * 100
    # the gate's own time (validation + Data Docs) against the ingest: not hidden by timing noise
    own = (min(gate_s) + min(docs_s)) / base * 100
    overhead = max(wall, own)
    return {
        "rows": rows,
        "ingest_s_without_gate": round(base, 2),
        "ingest_s_with_gate": round(gated, 2),
        "validation_ms_per_100k_rows": round(min(gate_s) / rows * 100_000 * 1000),
        "data_docs_s": round(min(docs_s), 2),
        "gate_overhead_pct": round(overhead, 1),
        "gate_cpu_overhead_pct": round((min(cpu_with) - min(cpu_without)) / min(cpu_without) * 100, 1),
        "gx_import_and_context_s_once_per_process": round(gx_import, 2),
        "target": "batch gate adds <= 20 % to ingest time",
        "ok": overhead <= 20.0,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
