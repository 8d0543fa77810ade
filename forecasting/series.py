"""The forecast input: volume series per channel and medium (the ``VolumeSeries`` contract).

A *history* is a DataFrame with one row per series and interval:

=================  ==========================================================================
``channel``        the platform (``taobao``, ``douyin``, ...); any string for a user's series
``medium``         ``chat`` | ``email`` | ``phone`` (optional; default ``chat``)
``interval_start`` start of the interval, timezone-aware (UTC in the warehouse)
``volume``         contacts that entered the human queue (the Erlang arrivals, ``queued``)
``aht_s``          mean slot-holding time per answered contact, seconds (optional, see below)
``is_open``        business hours: contacts can arrive (optional; inferred when missing)
``answered``       answered contacts, weights ``aht_s`` (optional)
``abandoned``      contacts that hung up before an answer (optional)
``wait_exposure_s`` total seconds queued contacts spent waiting, answered or not (optional)
``mean_patience_s`` the mart's patience estimate (optional; used when the above are missing)
=================  ==========================================================================

Missing rows are *unknown* (a gap), not zero; a row with ``volume = 0`` is an observed zero.

AHT mapping (DESIGN §7, validated by the digital twin in ``tests/test_forecast_sandbox.py``).
A chat agent holds a conversation's slot from assignment until the conversation closes,
including the wrap after the last message, so the Erlang service time is the *slot time*
``first_resolution_at − assigned_at`` of ``marts.fct_conversations``, and an agent offers
``concurrency`` such slots (``forecasting.staffing`` sizes slots, then agents). The marts'
``handle_time_s`` (assignment → last agent message) leaves the wrap out: on the sandbox it is
about half the slot time, and staffing on it misses the target by far. ``load_history``
therefore takes the slot time from ``fct_conversations`` when it is there and falls back to
``mart_volume_interval.aht_s`` (with a warning) when it is not. E-mail is different: a mail
stays open for hours while the customer writes back, so its work time is assignment → the
agent's reply (``first_response_at − assigned_at``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("channel", "interval_start", "volume")
OPTIONAL_COLUMNS = (
    "medium",
    "aht_s",
    "is_open",
    "answered",
    "abandoned",
    "wait_exposure_s",
    "mean_patience_s",
)
MART = "marts.mart_volume_interval"
CONVERSATIONS = "marts.fct_conversations"


class HistoryError(ValueError):
    """The history does not satisfy the VolumeSeries contract, or is not in the warehouse."""


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One forecast series: a channel (platform) and a medium."""

    channel: str
    medium: str = "chat"

    @property
    def label(self) -> str:
        return f"{self.channel}/{self.medium}"


def validate_history(frame: pd.DataFrame, freq: str = "30min", tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """Check and normalise a VolumeSeries frame; returns a sorted copy. Intervals must sit
    on the ``freq`` grid of the local clock ``tz`` (daily data starts at local midnight).

    Raises ``HistoryError`` naming the problem and the fix.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise HistoryError(
            f"history lacks columns {missing}; expected at least channel, interval_start, volume "
            "(volume = contacts queued for a human per interval)"
        )
    out = frame.copy()
    ts = pd.to_datetime(out["interval_start"])
    if ts.dt.tz is None:
        raise HistoryError(
            "interval_start has no time zone; pass timezone-aware timestamps (UTC in the warehouse)"
        )
    out["interval_start"] = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    step = pd.Timedelta(freq)
    local = out["interval_start"].dt.tz_convert(tz).dt.tz_localize(None)
    off_grid = (local - local.dt.floor(step)) != pd.Timedelta(0)
    if off_grid.any():
        bad = out.loc[off_grid, "interval_start"].iloc[0]
        raise HistoryError(
            f"interval_start {bad} is not on the {freq} grid; aggregate to {freq} intervals first"
        )
    if "medium" not in out.columns:
        out["medium"] = "chat"
    out["medium"] = out["medium"].fillna("chat").astype(str)
    out["channel"] = out["channel"].astype(str)
    out["volume"] = pd.to_numeric(out["volume"], errors="coerce").astype(float)
    if (out["volume"] < 0).any():
        raise HistoryError("volume has negative values; pass contacts per interval, 0 or more")
    if "is_open" in out.columns:
        out["is_open"] = out["is_open"].astype("boolean")
    dup = out.duplicated(["channel", "medium", "interval_start"])
    if dup.any():
        row = out.loc[dup].iloc[0]
        raise HistoryError(
            f"duplicate rows for {row['channel']}/{row['medium']} at {row['interval_start']}; "
            "one row per series and interval"
        )
    return out.sort_values(["channel", "medium", "interval_start"]).reset_index(drop=True)


def series_keys(history: pd.DataFrame) -> list[SeriesKey]:
    pairs = history[["channel", "medium"]].drop_duplicates().itertuples(index=False)
    return sorted(SeriesKey(str(c), str(m)) for c, m in pairs)


def history_of(history: pd.DataFrame, key: SeriesKey) -> pd.DataFrame:
    sel = (history["channel"] == key.channel) & (history["medium"] == key.medium)
    return history.loc[sel]


# ------------------------------------------------------------------------ the warehouse


def _table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, table = qualified.split(".")
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return {r[0] for r in rows}


def load_history(
    con: duckdb.DuckDBPyConnection,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The VolumeSeries of every channel and medium from ``marts.mart_volume_interval``.

    ``aht_s`` is the slot time from ``marts.fct_conversations`` (see the module docstring)
    when that mart has ``assigned_at`` and ``first_resolution_at``, else the interval mart's
    ``aht_s``. ``since``/``until`` bound ``interval_start`` (``until`` exclusive).
    """
    cols = _table_columns(con, MART)
    if not cols:
        raise HistoryError(
            f"{MART} is not in the warehouse; run `csw transform` (dbt build) first, "
            "or forecast a CSV with `csw forecast --input history.csv`"
        )
    need = {"channel", "interval_start", "queued"}
    if not need <= cols:
        raise HistoryError(f"{MART} lacks columns {sorted(need - cols)}; rebuild the marts")
    select = ["channel", "medium" if "medium" in cols else "'chat' as medium", "interval_start"]
    select.append("queued as volume")
    for c in ("aht_s", "is_open", "mean_patience_s"):
        if c in cols:
            select.append(c)
    where, params = _bounds("interval_start", since, until)
    frame = con.execute(f"select {', '.join(select)} from {MART} {where}", params).df()
    conv_cols = _table_columns(con, CONVERSATIONS)
    if {"assigned_at", "first_resolution_at", "queue_start_at", "channel"} <= conv_cols:
        medium = "medium" if "medium" in conv_cols else "'chat'"
        abandoned = "is_abandoned" if "is_abandoned" in conv_cols else "false"
        # e-mail: the agent works a mail from assignment to the reply, not until it closes
        email_work = (
            "epoch(first_response_at) - epoch(assigned_at)" if "first_response_at" in conv_cols else "null"
        )
        where, params = _bounds("queue_start_at", since, until)
        extra = "and" if where else "where"
        per_interval = con.execute(
            f"""
            select
                channel,
                {medium} as medium,
                time_bucket(interval '30 minutes', queue_start_at) as interval_start,
                avg(case
                    when assigned_at is null then null
                    when {medium} <> 'chat' then {email_work}
                    else epoch(first_resolution_at) - epoch(assigned_at) end) as slot_s,
                count(assigned_at) as answered,
                sum(case when {abandoned} then 1 else 0 end) as abandoned,
                sum(epoch(coalesce(assigned_at, first_resolution_at)) - epoch(queue_start_at))
                    as wait_exposure_s
            from {CONVERSATIONS}
            {where} {extra} queue_start_at is not null
            group by all
            """,
            params,
        ).df()
        per_interval["interval_start"] = pd.to_datetime(per_interval["interval_start"], utc=True)
        frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
        frame = frame.merge(per_interval, how="left", on=["channel", "medium", "interval_start"])
        if "aht_s" in frame.columns:
            frame["handle_time_s"] = frame["aht_s"]
        frame["aht_s"] = frame["slot_s"]
        frame = frame.drop(columns="slot_s")
    elif "aht_s" in frame.columns:
        log.warning(
            "%s has no assigned_at/first_resolution_at: staffing uses the interval mart's "
            "aht_s (handle time without wrap-up), which understates the slot time",
            CONVERSATIONS,
        )
    return validate_history(frame)


def latest_interval(con: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    """The newest ``interval_start`` of the interval mart (None when it is empty or missing)."""
    if not _table_columns(con, MART):
        return None
    value = con.execute(f"select max(interval_start) from {MART}").fetchone()[0]
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _bounds(col: str, since, until) -> tuple[str, list]:
    conds, params = [], []
    if since is not None:
        conds.append(f"{col} >= ?")
        params.append(pd.Timestamp(since).to_pydatetime())
    if until is not None:
        conds.append(f"{col} < ?")
        params.append(pd.Timestamp(until).to_pydatetime())
    return ("where " + " and ".join(conds)) if conds else "", params


def estimate_concurrency(con: duckdb.DuckDBPyConnection, quantile: float = 0.9) -> dict[str, int]:
    """Conversations an agent holds at once, per channel, measured from the marts.

    Per agent account, the most conversations open at the same time (assignment → first
    resolution); the channel's concurrency is the ``quantile`` of that over agents with at
    least 20 conversations (busy agents fill every slot at the peaks). Empty when the mart
    lacks the columns.
    """
    cols = _table_columns(con, CONVERSATIONS)
    if not {"channel", "first_agent_account", "assigned_at", "first_resolution_at"} <= cols:
        return {}
    rows = con.execute(
        f"""
        with events as (
            select channel, first_agent_account as agent, assigned_at as event_at, 1 as delta
            from {CONVERSATIONS}
            where assigned_at is not null and first_resolution_at is not null
            union all
            select channel, first_agent_account, first_resolution_at, -1
            from {CONVERSATIONS}
            where assigned_at is not null and first_resolution_at is not null
        ),
        running as (
            select channel, agent,
                sum(delta) over (partition by channel, agent order by event_at, delta
                    rows between unbounded preceding and current row) as open_now,
                count(*) over (partition by channel, agent) as n
            from events
        ),
        per_agent as (
            select channel, agent, max(open_now) as peak
            from running where n >= 40 group by all
        )
        select channel, quantile_disc(peak, {float(quantile)}) as concurrency
        from per_agent group by channel
        """
    ).fetchall()
    return {str(ch): max(int(c), 1) for ch, c in rows if c is not None}


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SeriesParams:
    """What staffing needs about a series besides its volume."""

    key: SeriesKey
    aht_s: float  # slot-holding time per contact (see the module docstring)
    patience_s: float | None  # mean patience for Erlang A; None when unknown


def estimate_params(
    history: pd.DataFrame, lookback: str = "28D", default_aht_s: float = 180.0
) -> dict[SeriesKey, SeriesParams]:
    """AHT (answered-weighted, over the last ``lookback`` of each series) and patience
    (seconds of waiting per abandon, the maximum-likelihood estimate for exponential
    patience, over the whole history) per series."""
    out: dict[SeriesKey, SeriesParams] = {}
    for key in series_keys(history):
        whole = history_of(history, key)
        h = whole[whole["interval_start"] >= whole["interval_start"].max() - pd.Timedelta(lookback)]
        aht = default_aht_s
        if "aht_s" in h.columns and h["aht_s"].notna().any():
            w = h["answered"] if "answered" in h.columns else h["volume"]
            ok = h["aht_s"].notna() & (w.fillna(0) > 0)
            if ok.any():
                aht = float(np.average(h.loc[ok, "aht_s"], weights=w[ok]))
        # patience changes slowly and abandons are rare when staffing is good: use it all
        patience = None
        if {"abandoned", "wait_exposure_s"} <= set(whole.columns) and whole["abandoned"].fillna(0).sum() > 0:
            patience = float(whole["wait_exposure_s"].fillna(0).sum() / whole["abandoned"].fillna(0).sum())
        elif "mean_patience_s" in whole.columns and whole["mean_patience_s"].notna().any():
            patience = float(whole["mean_patience_s"].median())
        out[key] = SeriesParams(key, aht, patience)
    return out


def from_csv(path, freq: str = "30min", tz: str = "Asia/Shanghai", channel: str = "input") -> pd.DataFrame:
    """A user's ``ds,y`` CSV as a VolumeSeries (naive ``ds`` is local time in ``tz``).

    Rows with an empty ``y`` are gaps (unknown), like rows that are not there at all.
    """
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from exc
    if not {"ds", "y"} <= set(raw.columns):
        raise HistoryError(f"{path} needs columns ds,y (got {list(raw.columns)})")
    ds = pd.to_datetime(raw["ds"], errors="coerce")
    if ds.isna().any():
        bad = raw.loc[ds.isna(), "ds"].iloc[0]
        raise HistoryError(f"{path}: cannot parse ds value {bad!r}; use e.g. 2026-01-05 09:30")
    if ds.dt.tz is None:
        ds = ds.dt.tz_localize(tz)
    y = pd.to_numeric(raw["y"], errors="coerce")
    frame = pd.DataFrame({"channel": channel, "medium": "chat", "interval_start": ds, "volume": y})
    frame = frame.dropna(subset=["volume"])
    step = pd.Timedelta(freq)
    local = frame["interval_start"].dt.tz_convert(tz).dt.tz_localize(None)
    off = (local - local.dt.floor(step)) != pd.Timedelta(0)
    if off.any():
        raise HistoryError(
            f"{path}: ds {local[off].iloc[0]} is not on the {freq} grid; pass --freq matching the data"
        )
    frame["interval_start"] = frame["interval_start"].dt.tz_convert("UTC")
    return validate_history(frame, freq, tz)
