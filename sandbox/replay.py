"""The digital twin: replay a staffing plan against the simulated demand.

Given agents per channel and interval, re-simulate the same demand model (same rates,
promotions and holidays, same patience and handling behaviour) with fresh random draws
per replication, run the queue with the plan as the roster, and report the service level
actually achieved per interval. A published staffing recommendation is proved here.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sandbox.config import INTERVAL_S, SimConfig
from sandbox.demand import channel_grid, epoch_s, to_ts
from sandbox.simulation import run_channel


def _grid_days(plan: pd.DataFrame) -> tuple[dt.date, int]:
    local = plan["interval_start"].dt.tz_convert("Asia/Shanghai")
    first, last = local.min().date(), local.max().date()
    return first, (last - first).days + 1


def replay(
    cfg: SimConfig,
    plan: pd.DataFrame,
    replications: int = 5,
    sl_seconds: float = 20.0,
) -> pd.DataFrame:
    """Service achieved by `plan` (columns channel, interval_start (UTC), agents).

    Returns one row per replication, channel and interval: queued, answered,
    answered_within (wait <= `sl_seconds`), abandoned, service_level, mean_wait_s,
    agents. Intervals missing from the plan have no agents.
    """
    if replications < 1:
        raise ValueError("replications must be >= 1")
    missing = {"channel", "interval_start", "agents"} - set(plan.columns)
    if missing:
        raise ValueError(f"plan lacks columns {sorted(missing)}; expected channel, interval_start, agents")
    start, days = _grid_days(plan)
    out = []
    for channel, rows in plan.groupby("channel", sort=False):
        grid = channel_grid(cfg, channel, start, days)
        roster = np.zeros(grid.n, dtype=np.int64)
        idx = grid.interval_of(epoch_s(rows["interval_start"]))
        ok = (idx >= 0) & (idx < grid.n)
        roster[idx[ok]] = rows["agents"].to_numpy()[ok]
        for rep in range(replications):
            sim = run_channel(cfg, channel, grid, roster, rng_salt=("replay", rep))
            queued = np.isfinite(sim.queue_start)
            q_idx = grid.interval_of(np.where(queued, sim.queue_start, grid.t0))[queued]
            wait = (sim.assigned_at - sim.queue_start)[queued]
            answered = np.isfinite(wait)
            n = grid.n
            offered = np.bincount(q_idx, minlength=n)
            ans = np.bincount(q_idx, weights=answered, minlength=n)
            within = np.bincount(q_idx, weights=answered & (wait <= sl_seconds), minlength=n)
            abandoned = np.bincount(
                q_idx, weights=~answered & np.isfinite(sim.patience_s[queued]), minlength=n
            )
            wait_sum = np.bincount(q_idx, weights=np.where(answered, wait, 0.0), minlength=n)
            frame = pd.DataFrame(
                {
                    "replication": rep,
                    "channel": channel,
                    "interval_start": to_ts(grid.t0 + np.arange(n) * INTERVAL_S),
                    "agents": roster,
                    "queued": offered,
                    "answered": ans.astype(int),
                    "answered_within": within.astype(int),
                    "abandoned": abandoned.astype(int),
                }
            )
            frame["service_level"] = np.where(offered > 0, within / np.maximum(offered, 1), np.nan)
            frame["mean_wait_s"] = np.where(ans > 0, wait_sum / np.maximum(ans, 1), np.nan)
            out.append(frame)
    return pd.concat(out, ignore_index=True)


def summarise(result: pd.DataFrame, sl_target: float = 0.8) -> dict:
    """Overall SL (pooled over intervals, mean over replications), share of open
    intervals meeting the target (per interval SL averaged over replications), and
    agent-hours of the plan."""
    per_rep = result.groupby("replication")[["queued", "answered_within"]].sum()
    overall = float((per_rep["answered_within"] / per_rep["queued"].clip(lower=1)).mean())
    by_interval = result.groupby(["channel", "interval_start"]).agg(
        queued=("queued", "mean"), within=("answered_within", "mean"), agents=("agents", "first")
    )
    active = by_interval[by_interval["queued"] > 0]
    sl = active["within"] / active["queued"]
    agent_hours = float(by_interval["agents"].sum() * INTERVAL_S / 3600)
    return {
        "overall_service_level": overall,
        "intervals_meeting_target": float((sl >= sl_target).mean()) if len(sl) else float("nan"),
        "agent_hours": agent_hours,
        "intervals": int(len(active)),
    }
