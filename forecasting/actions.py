"""Plain sentences a manager can act on, ranked by impact (``staffing_actions``).

Without a roster, the comparison is with a *usual* day: the median volume of the same
interval on the last four same weekdays without a calendar event, staffed by the same
Erlang rules (``usual_required_agents``). A block of consecutive open intervals of one
channel and day where the recommendation differs from the usual staffing by at least
``min_agents`` and the volume from the usual by at least ``min_change`` becomes one
action: "Fri 2026-09-18 19:00-23:00 Douyin: volume +120 % on a usual Friday (livestream),
add 3 agents (2 → 5 on the floor)".

With a roster, the comparison is with the roster: blocks where the rostered people fall
short of the required headcount (``gap < 0``) or exceed it by at least ``min_agents``.

A one-interval hole between two such runs is bridged. An action's ``agents`` is the
largest change inside the block when adding (so the peak is covered) and the smallest
when reducing (so no interval is left short). ``impact`` is the agent-hours the block
changes; actions under ``min_impact_hours`` (one agent for one interval, say) are left
out as noise, and the rest are ranked by impact.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from csw.settings import seeds_dir

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    path = seeds_dir() / "channels.csv"
    if not path.exists():
        return {}
    frame = pd.read_csv(path, dtype=str)
    return dict(zip(frame["channel"], frame["platform_name"], strict=True))


def display_name(channel: str) -> str:
    return _names().get(channel, channel)


def _pct(x: float) -> str:
    return f"{'+' if x >= 0 else '−'}{abs(x) * 100:.0f} %"


def _blocks(flags: np.ndarray, sign: np.ndarray) -> list[tuple[int, int]]:
    """Runs [start, end) of consecutive True flags with the same sign."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is not None and sign[i] == sign[start]:
            continue
        if start is not None:
            out.append((start, i))
            start = None
        if f:
            start = i
    if start is not None:
        out.append((start, len(flags)))
    return out


def _fill_holes(flags: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bridge one-interval holes between two flagged intervals of the same sign."""
    flags, sign = flags.copy(), sign.copy()
    for i in range(1, len(flags) - 1):
        if not flags[i] and flags[i - 1] and flags[i + 1] and sign[i - 1] == sign[i + 1]:
            flags[i], sign[i] = True, sign[i - 1]
    return flags, sign


def staffing_actions(
    rec: pd.DataFrame,
    min_agents: int = 1,
    min_change: float = 0.2,
    interval_minutes: float = 30.0,
    min_impact_hours: float = 1.0,
    top: int = 50,
) -> pd.DataFrame:
    """Actions from ``staffing_recommendations`` rows, ranked by impact (agent-hours)."""
    cols = [
        "rank",
        "channel",
        "medium",
        "local_date",
        "start_time",
        "end_time",
        "interval_start",
        "interval_end",
        "action",
        "agents",
        "volume_change_pct",
        "impact_agent_hours",
        "events",
        "sentence",
    ]
    if rec.empty:
        return pd.DataFrame(columns=cols)
    roster = "gap" in rec.columns and rec["gap"].notna().any()
    step = pd.Timedelta(minutes=interval_minutes)
    rows = []
    for (channel, medium, day), g in rec[rec["is_open"]].groupby(
        ["channel", "medium", "local_date"], sort=True
    ):
        g = g.sort_values("interval_start")
        need = g["required_agents"].to_numpy(np.int64)
        vol = g["volume"].to_numpy(float)
        usual = g["usual_volume"].to_numpy(float)
        if roster:
            delta = -g["gap"].fillna(0).to_numpy(np.int64)  # headcount needed − rostered
            flags = np.abs(delta) >= min_agents
        else:
            delta = need - g["usual_required_agents"].to_numpy(np.int64)
            with np.errstate(divide="ignore", invalid="ignore"):
                change = np.where(usual > 0, vol / usual - 1, np.where(vol > 0, np.inf, 0.0))
            flags = (
                (np.abs(delta) >= min_agents)
                & (np.abs(change) >= min_change)
                & (np.sign(change) == np.sign(delta))
            )
        # a block is broken where the interval sequence has a hole
        starts = g["interval_start"].to_numpy()
        flags, sign = _fill_holes(flags, np.sign(delta))
        for a, b in _blocks(flags, sign):
            for a2, b2 in _split_holes(starts, a, b, step):
                d = np.where(np.sign(delta[a2:b2]) == sign[a2], delta[a2:b2], 0)
                action = _action(g.iloc[a2:b2], d, roster, step, interval_minutes, channel, medium, day)
                if action["impact_agent_hours"] >= min_impact_hours:
                    rows.append(action)
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows).sort_values(["impact_agent_hours", "interval_start"], ascending=[False, True])
    out = out.head(top).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[cols]


def _split_holes(starts: np.ndarray, a: int, b: int, step: pd.Timedelta) -> list[tuple[int, int]]:
    cuts = [a]
    for i in range(a + 1, b):
        if pd.Timestamp(starts[i]) - pd.Timestamp(starts[i - 1]) != step:
            cuts.append(i)
    cuts.append(b)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _action(
    g: pd.DataFrame, delta: np.ndarray, roster: bool, step, minutes: float, channel, medium, day
) -> dict:
    add = bool(delta.sum() > 0)
    moved = np.abs(delta[delta != 0])
    agents = int(moved.max() if add else moved.min())
    first, last = g.iloc[0], g.iloc[-1]
    start = first["local_time"]
    end = (pd.Timestamp(f"2000-01-01 {last['local_time']}") + step).strftime("%H:%M")
    end = "24:00" if end == "00:00" else end
    vol, usual = float(g["volume"].sum()), float(g["usual_volume"].fillna(0).sum())
    change = vol / usual - 1 if usual > 0 else float("nan")
    weekday = WEEKDAYS[pd.Timestamp(day).weekday()]
    events = ", ".join(sorted({e for e in g["events"].fillna("") if e}))
    when = f"{weekday[:3]} {pd.Timestamp(day):%Y-%m-%d} {start}-{end} {display_name(channel)}"
    vs_usual = (
        f"volume {_pct(change)} on a usual {weekday}"
        if np.isfinite(change)
        else "volume where a usual day has none"
    )
    if events:
        vs_usual += f" ({events})"
    # the figures of the interval that sets the action's size
    nz = np.flatnonzero(delta)
    pick = nz[np.argmax(np.abs(delta[nz]))] if add else nz[np.argmin(np.abs(delta[nz]))]
    row = g.iloc[pick]
    need = int(row["required_agents"])
    noun = "agent" if agents == 1 else "agents"
    if roster:
        sched, heads = int(row["scheduled_agents"]), int(row["required_headcount"])
        if add:
            text = f"{when}: the roster is short by {agents} ({sched} rostered, {heads} needed; {vs_usual}), add {agents} {noun}"
        else:
            text = (
                f"{when}: {agents} more rostered than needed ({sched} rostered, {heads} needed; {vs_usual}), "
                f"{agents} can move to other work"
            )
    else:
        usual_n = int(row["usual_required_agents"])
        if add:
            text = f"{when}: {vs_usual}, add {agents} {noun} ({usual_n} → {need} on the floor at the peak)"
        else:
            text = f"{when}: {vs_usual}, {agents} fewer {noun} needed ({usual_n} → {need} on the floor)"
    return {
        "channel": channel,
        "medium": medium,
        "local_date": day,
        "start_time": start,
        "end_time": end,
        "interval_start": first["interval_start"],
        "interval_end": last["interval_start"] + step,
        "action": "add" if add else "reduce",
        "agents": agents,
        "volume_change_pct": round(change * 100, 1) if np.isfinite(change) else np.nan,
        "impact_agent_hours": float(np.abs(delta).sum() * minutes / 60.0),
        "events": events,
        "sentence": text + ".",
    }
