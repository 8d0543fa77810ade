"""Staffing recommendations: forecast volume → agents per interval (Erlang C / Erlang A).

Inputs per interval: the forecast volume; per series: the AHT measured from the marts
(the slot-holding time, see ``forecasting.series``), the concurrency (slots per agent),
the patience (Erlang A); per channel and medium: the SL target and threshold from the SLA
policy seed; and the max occupancy, the shrinkage and an optional roster.

Chat concurrency (``concurrency_model``)
    ``"slots"`` (default): an agent works ``c`` conversations at once, each holding a slot
    for the AHT. The queue is an M/M/(N·c) queue of slots, which is what a chat desk is:
    the slots are sized by Erlang and the agents are ``ceil(slots / c)``. Checked against
    the digital twin (``tests/test_staffing_twin.py``).
    ``"fast_server"``: the classic approximation of ``forecasting.erlang`` (one server
    working ``c`` times as fast, AHT / c). It has the same traffic but a higher waiting
    probability, so it staffs more than needed where the slots model applies.

Backlog media (an SL threshold of an hour or more, e.g. e-mail at 8 hours) are not queues
an agent must answer within the interval: their agents are sized by workload, the day's
contacts × AHT spread over the staffed intervals of the business-hours seed at the max
occupancy (work of a closed day is carried to the next staffed day). Those rows say
``erlang_model = 'workload'`` and have no Erlang SL.

The Erlang model for the required agents is ``erlang_c`` by default: the twin and the SLA
count an abandoned contact as a miss, and Erlang A's service level leaves out the ones
that hang up early, so Erlang A under-staffs for that measure. Erlang A still gives the
forecast abandonment when a patience is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from csw.settings import seeds_dir
from forecasting.erlang import erlang_a_metrics, erlang_c_metrics, required_agents
from forecasting.series import SeriesKey, SeriesParams

DEFAULT_SL_TARGET = 0.8
BACKLOG_THRESHOLD_S = 3600.0  # SL thresholds from here up are worked as a backlog
DEFAULT_CONCURRENCY = {"chat": 3, "email": 1, "phone": 1}


@dataclass(frozen=True)
class StaffingConfig:
    # a number for every medium, a {medium: number} mapping, or None for the SLA policy seed
    sl_target: float | Mapping[str, float] | None = None  # seed's sl_target column, else 0.8
    sl_seconds: float | Mapping[str, float] | None = None  # seed's frt_target_s
    max_occupancy: float = 0.85
    shrinkage: float = 0.30
    model: str = "erlang_c"
    concurrency_model: str = "slots"  # slots | fast_server
    concurrency: Mapping[str, int] = field(default_factory=dict)  # channel -> slots per agent
    default_concurrency: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    tier: str = "*"

    def __post_init__(self) -> None:
        if self.concurrency_model not in ("slots", "fast_server"):
            raise ValueError(
                f"concurrency_model must be 'slots' or 'fast_server' (got {self.concurrency_model!r})"
            )


@lru_cache(maxsize=1)
def _policies() -> pd.DataFrame:
    path = seeds_dir() / "sla_policies.csv"
    if not path.exists():
        return pd.DataFrame(columns=["channel", "medium", "tier", "frt_target_s"])
    return pd.read_csv(path, dtype={"channel": str, "medium": str, "tier": str})


def sla_policy(channel: str, medium: str, tier: str = "*") -> tuple[float, float]:
    """(threshold seconds, target share) for a channel and medium from the SLA policy seed.

    The most specific row wins (the channel before ``*``, the tier before ``*``). The seed's
    ``frt_target_s`` is the threshold; its ``sl_target`` column (when present) the share,
    else 0.8.
    """
    p = _policies()
    rows = p[p["channel"].isin([channel, "*"]) & (p["medium"] == medium) & p["tier"].isin([tier, "*"])]
    if rows.empty:
        return 60.0, DEFAULT_SL_TARGET
    rows = rows.assign(_c=(rows["channel"] == channel).astype(int), _t=(rows["tier"] == tier).astype(int))
    best = rows.sort_values(["_c", "_t"], ascending=False).iloc[0]
    target = best.get("sl_target", np.nan)
    target = float(target) if pd.notna(target) else DEFAULT_SL_TARGET
    return float(best["frt_target_s"]), target


def _pick(value, medium: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, Mapping):
        return float(value.get(medium, default))
    return float(value)


def _concurrency(key: SeriesKey, config: StaffingConfig, measured: Mapping[str, int]) -> int:
    if key.channel in config.concurrency:
        return int(config.concurrency[key.channel])
    if key.medium == "chat" and key.channel in measured:
        return int(measured[key.channel])
    return int(config.default_concurrency.get(key.medium, 1))


def required_floor(
    volume: np.ndarray,
    interval_s: float,
    aht_s: np.ndarray,
    concurrency: np.ndarray,
    sl_target: np.ndarray,
    sl_seconds: np.ndarray,
    config: StaffingConfig,
    patience_s: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Agents on the floor per interval and the queue measures at that staffing."""
    model = config.model if patience_s is not None else "erlang_c"
    c = np.asarray(concurrency, float)
    if config.concurrency_model == "slots":
        res = required_agents(
            volume,
            interval_s,
            aht_s,
            sl_target,
            sl_seconds,
            config.max_occupancy,
            0.0,
            1.0,
            model,
            patience_s if model == "erlang_a" else None,
        )
        agents = np.ceil(res.required_agents / c).astype(np.int64)
        servers, server_aht = agents * c, np.asarray(aht_s, float)
    else:
        res = required_agents(
            volume,
            interval_s,
            aht_s,
            sl_target,
            sl_seconds,
            config.max_occupancy,
            0.0,
            c,
            model,
            patience_s if model == "erlang_a" else None,
        )
        agents = res.required_agents.astype(np.int64)
        servers, server_aht = agents.astype(float), np.asarray(aht_s, float) / c
    measures = queue_measures(volume, interval_s, server_aht, servers, sl_seconds, patience_s)
    traffic = np.asarray(volume, float) * np.asarray(aht_s, float) / interval_s / c
    return {"agents": agents, "traffic": traffic, **measures}


def queue_measures(volume, interval_s, server_aht, servers, sl_seconds, patience_s) -> dict[str, np.ndarray]:
    """SL, ASA, occupancy and abandonment with ``servers`` (slots or agents) per interval."""
    servers = np.asarray(servers, float)
    m = erlang_c_metrics(volume, interval_s, server_aht, servers, sl_seconds)
    out = {
        "service_level": m.service_level,
        "asa_s": m.asa_s,
        "occupancy": m.occupancy,
        "abandonment": np.full(np.shape(m.traffic), np.nan),
    }
    if patience_s is not None:
        p = np.where(np.isfinite(patience_s), patience_s, 1e9)
        a = erlang_a_metrics(volume, interval_s, server_aht, servers, sl_seconds, p)
        out["abandonment"] = a.p_abandon
    return out


def workload_agents(
    frame: pd.DataFrame, volume: np.ndarray, aht_s: np.ndarray, interval_s: float, max_occupancy: float
) -> np.ndarray:
    """Agents per interval for backlog work: each local day's contacts × AHT over the
    day's staffed intervals (business-hours seed), carrying closed days' work forward."""
    from forecasting.promotions import channel_calendar, seed_open

    out = np.zeros(len(frame), np.int64)
    work = volume * aht_s
    for channel, rows in frame.groupby("channel", sort=False):
        cal = channel_calendar(str(channel))
        idx = rows.index.to_numpy()
        local = pd.to_datetime(rows["interval_start"], utc=True).dt.tz_convert("Asia/Shanghai")
        minute = (local.dt.hour * 60 + local.dt.minute).to_numpy()
        day = local.dt.date.to_numpy()
        day_type = cal.day_types(pd.DatetimeIndex(local.dt.tz_localize(None)))
        staffed = np.zeros(len(rows), bool)
        for t in np.unique(day_type):
            sel = day_type == t
            o = seed_open(str(channel), str(t), minute[sel])
            staffed[sel] = o if o is not None else (minute[sel] >= 9 * 60) & (minute[sel] < 18 * 60)
        carry = 0.0
        for d in sorted(set(day)):
            sel = day == d
            total = carry + float(work[idx[sel]].sum())
            slots = int(staffed[sel].sum())
            if slots == 0:
                carry = total
                continue
            carry = 0.0
            agents = int(np.ceil(round(total / (slots * interval_s * max_occupancy), 9)))
            out[idx[sel][staffed[sel]]] = agents
    return out


def recommend(
    volume: pd.DataFrame,
    params: Mapping[SeriesKey, SeriesParams],
    config: StaffingConfig | None = None,
    measured_concurrency: Mapping[str, int] | None = None,
    roster: pd.DataFrame | None = None,
    interval_s: float = 1800.0,
) -> pd.DataFrame:
    """``staffing_recommendations`` rows for a forecast (``ForecastRun.volume``).

    ``roster`` (optional): ``channel, interval_start, scheduled_agents`` = people rostered
    per interval (before shrinkage); gives ``scheduled_agents``, ``gap`` (scheduled −
    required headcount; negative = short) and the SL the roster would reach.
    """
    config = config or StaffingConfig()
    measured = dict(measured_concurrency or {})
    v = volume.reset_index(drop=True)
    n = len(v)
    keys = [SeriesKey(c, m) for c, m in zip(v["channel"], v["medium"], strict=True)]
    uniq = {k: None for k in keys}
    info = {}
    for k in uniq:
        p = params.get(k)
        threshold, target = sla_policy(k.channel, k.medium, config.tier)
        info[k] = {
            "aht_s": p.aht_s if p else 180.0,
            "patience_s": p.patience_s if p and p.patience_s else np.nan,
            "concurrency": _concurrency(k, config, measured),
            "sl_seconds": _pick(config.sl_seconds, k.medium, threshold),
            "sl_target": _pick(config.sl_target, k.medium, target),
        }
    col = {name: np.array([info[k][name] for k in keys], float) for name in next(iter(info.values()), {})}
    if n == 0:
        return pd.DataFrame()
    vol = np.clip(v["yhat"].to_numpy(float), 0, None)
    patience = col["patience_s"]
    has_patience = np.isfinite(patience).any()
    pat = np.where(np.isfinite(patience), patience, 1e9) if has_patience else None
    rec = required_floor(
        vol, interval_s, col["aht_s"], col["concurrency"], col["sl_target"], col["sl_seconds"], config, pat
    )
    usual = required_floor(
        np.nan_to_num(v["usual"].to_numpy(float), nan=0.0),
        interval_s,
        col["aht_s"],
        col["concurrency"],
        col["sl_target"],
        col["sl_seconds"],
        config,
        pat,
    )
    agents = rec["agents"]
    backlog = col["sl_seconds"] >= BACKLOG_THRESHOLD_S
    if backlog.any():
        sub = v.loc[backlog, ["channel", "interval_start"]]
        agents = np.where(backlog, 0, agents)
        agents[backlog] = workload_agents(
            sub.reset_index(drop=True), vol[backlog], col["aht_s"][backlog], interval_s, config.max_occupancy
        )
        usual_vol = np.nan_to_num(v["usual"].to_numpy(float), nan=0.0)
        usual["agents"] = np.asarray(usual["agents"]).copy()
        usual["agents"][backlog] = workload_agents(
            sub.reset_index(drop=True),
            usual_vol[backlog],
            col["aht_s"][backlog],
            interval_s,
            config.max_occupancy,
        )
        for name in ("service_level", "asa_s", "occupancy", "abandonment"):
            rec[name] = np.where(backlog, np.nan, rec[name])
    headcount = np.ceil(np.round(agents / (1.0 - config.shrinkage), 9)).astype(np.int64)
    quiet = vol <= 0
    out = pd.DataFrame(
        {
            "channel": v["channel"],
            "medium": v["medium"],
            "interval_start": v["interval_start"],
            "local_date": v["local_date"],
            "local_time": v["local_time"],
            "is_open": v["is_open"],
            "volume": vol,
            "volume_lower": v["yhat_lower"],
            "volume_upper": v["yhat_upper"],
            "usual_volume": v["usual"],
            "aht_s": col["aht_s"],
            "concurrency": col["concurrency"].astype(np.int64),
            "traffic_erlangs": rec["traffic"],
            "sl_target": col["sl_target"],
            "sl_seconds": col["sl_seconds"],
            "max_occupancy": config.max_occupancy,
            "erlang_model": np.where(backlog, "workload", config.model if has_patience else "erlang_c"),
            "concurrency_model": config.concurrency_model,
            "required_agents": agents,
            "shrinkage": config.shrinkage,
            "required_headcount": headcount,
            "usual_required_agents": usual["agents"],
            "forecast_service_level": np.where(quiet, np.nan, rec["service_level"]),
            "forecast_asa_s": np.where(quiet, np.nan, rec["asa_s"]),
            "forecast_occupancy": np.where(quiet, np.nan, rec["occupancy"]),
            "forecast_abandonment": np.where(quiet, np.nan, rec["abandonment"]),
            "events": v["events"],
            "forecast_model": v["model"],
        }
    )
    out["scheduled_agents"] = pd.array([pd.NA] * n, dtype="Int64")
    out["gap"] = pd.array([pd.NA] * n, dtype="Int64")
    out["scheduled_service_level"] = np.nan
    if roster is not None and len(roster):
        r = roster.copy()
        if "scheduled_agents" not in r.columns and "agents" in r.columns:
            r = r.rename(columns={"agents": "scheduled_agents"})
        r["interval_start"] = pd.to_datetime(r["interval_start"], utc=True)
        r = r.groupby(["channel", "interval_start"], as_index=False)["scheduled_agents"].sum()
        m = out[["channel", "interval_start"]].merge(r, how="left", on=["channel", "interval_start"])
        sched = m["scheduled_agents"].fillna(0).to_numpy(float)
        out["scheduled_agents"] = pd.array(sched.astype(np.int64), dtype="Int64")
        out["gap"] = pd.array((sched - headcount).astype(np.int64), dtype="Int64")
        floor = np.floor(sched * (1.0 - config.shrinkage) + 1e-9)
        if config.concurrency_model == "slots":
            servers, server_aht = floor * col["concurrency"], col["aht_s"]
        else:
            servers, server_aht = floor, col["aht_s"] / col["concurrency"]
        sm = queue_measures(vol, interval_s, server_aht, servers, col["sl_seconds"], None)
        out["scheduled_service_level"] = np.where(quiet, np.nan, sm["service_level"])
    first = list(out.columns[: out.columns.get_loc("required_headcount") + 1])
    roster_cols = ["scheduled_agents", "gap", "scheduled_service_level"]
    rest = [c for c in out.columns if c not in first and c not in roster_cols]
    return out[first + roster_cols + rest]
