"""Erlang staffing for 10k intervals (target <= 1 s)."""

from __future__ import annotations

import time

import numpy as np

from forecasting.erlang import required_agents


def run(intervals: int = 10_000) -> dict:
    rng = np.random.default_rng(0)
    volume = rng.uniform(0, 400, intervals)
    out = {}
    for model, patience in (("erlang_c", None), ("erlang_a", 180.0)):
        t0 = time.perf_counter()
        required_agents(volume, 1800, 180, 0.8, 20, patience_s=patience, model=model)
        out[f"{model}_seconds"] = round(time.perf_counter() - t0, 3)
    out["intervals"] = intervals
    out["target"] = "erlang_c <= 1 s"
    out["ok"] = out["erlang_c_seconds"] <= 1.0
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
