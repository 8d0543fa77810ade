"""Simulation throughput at 1M conversations (target: <= 120 s and <= 4 GB)."""

from __future__ import annotations

import datetime as dt
import resource
import time

from sandbox.config import SimConfig
from sandbox.simulation import simulate


def run(conversations: int = 1_000_000, days: int = 90) -> dict:
    per_day = conversations / days / 1.08  # promotions add about 8 % over plain days
    cfg = SimConfig(seed=1, start=dt.date(2026, 8, 24), days=days, conversations_per_day=per_day)
    t0 = time.perf_counter()
    data = simulate(cfg)
    elapsed = time.perf_counter() - t0
    n_conv, n_msg = len(data["conversations"]), len(data["messages"])
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "conversations": n_conv,
        "messages": n_msg,
        "seconds": round(elapsed, 1),
        "conversations_per_s": round(n_conv / elapsed),
        "messages_per_s": round(n_msg / elapsed),
        "peak_memory_gb": round(peak_gb, 2),
        "target": "<= 120 s and <= 4 GB",
        "ok": elapsed <= 120 and peak_gb <= 4,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
