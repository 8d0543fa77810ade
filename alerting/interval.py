"""Interval rules, run after each transform (`cs_alerts`), and pipeline monitoring.

Marts are read through a READ-ONLY DuckDB connection (alerting never writes the
warehouse); the task runs in the writer pool so it never blocks the writer.

Rules (thresholds in `rules.yaml`, window ending at `as_of`):
- `channel_frt`: a channel's mean FRT over the window above the threshold (60 s);
- `sla_attainment`: a channel's share of conversations within SLA below target;
- `volume`: a channel's volume against the forecast for the window, else the usual level
  (same weekday and time over the previous weeks); above `above_ratio` or below
  `below_ratio`;
- `topic_share`: a topic's share of contacts up `jump_pct` % against the previous days;
- pipeline: `stream_freshness` (newest raw record older than the stream's declared
  freshness allows), `ops_event` (fallback used, quarantined batches and rows, cursors near
  or beyond a platform's retention limit, from `ops.events`), `dag_failure` (callbacks).

Anomalies and SLA drops carry a root-cause hint (`alerting.hints`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from alerting.engine import Alert
from alerting.hints import NAMES, channel_hint, top_contributor
from alerting.rules import Rules
from csw.settings import warehouse_path

log = logging.getLogger("alerting.interval")

FCT_COLUMNS = (
    "channel, medium, topic, started_at, queue_start_at, frt_s, sla_target_s, sla_breached, "
    "customer_tier, is_abandoned, is_unattended, first_agent_account, customer_key"
)


@dataclass
class IntervalResult:
    as_of: pd.Timestamp
    alerts: list[Alert] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    vips: list[tuple[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def read_only(path: Path | None = None):
    path = Path(path or warehouse_path())
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `csw ingest` and `csw transform` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


def _table_exists(con, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def load_conversations(con, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    df = con.execute(
        f"select {FCT_COLUMNS} from marts.fct_conversations where started_at >= ? and started_at < ?",
        [start.to_pydatetime(), end.to_pydatetime()],
    ).df()
    if _table_exists(con, "marts", "dim_agents") and len(df):
        teams = con.execute("select agent_account, channel, team from marts.dim_agents").df()
        df = df.merge(
            teams.rename(columns={"agent_account": "first_agent_account"}),
            on=["channel", "first_agent_account"],
            how="left",
        )
    for col in ("started_at", "queue_start_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


def _baseline(con, as_of: pd.Timestamp, window: pd.Timedelta, weeks: int) -> pd.DataFrame:
    """The same weekday and time of day in each of the previous `weeks` weeks."""
    frames = [
        load_conversations(con, as_of - window - pd.Timedelta(weeks=k), as_of - pd.Timedelta(weeks=k))
        for k in range(1, weeks + 1)
    ]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else load_conversations(con, as_of, as_of)


def _weeks_with_data(con, as_of: pd.Timestamp, weeks: int) -> int:
    first = con.execute("select min(started_at) from marts.fct_conversations").fetchone()[0]
    if first is None:
        return 0
    first = pd.Timestamp(first).tz_convert("UTC")
    return sum(
        1 for k in range(1, weeks + 1) if as_of - pd.Timedelta(weeks=k) > first + pd.Timedelta(hours=1)
    )


def _days_with_data(con, as_of: pd.Timestamp, days: int) -> int:
    first = con.execute("select min(started_at) from marts.fct_conversations").fetchone()[0]
    if first is None:
        return 0
    first = pd.Timestamp(first).tz_convert("UTC")
    return sum(1 for k in range(1, days + 1) if as_of - pd.Timedelta(days=k) > first + pd.Timedelta(hours=1))


def _forecast(con, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    if not _table_exists(con, "forecast", "forecast_volume"):
        return pd.Series(dtype=float)
    df = con.execute(
        "select channel, sum(yhat) as yhat from forecast.forecast_volume "
        "where interval_start >= ? and interval_start < ? group by channel",
        [start.to_pydatetime(), end.to_pydatetime()],
    ).df()
    return df.set_index("channel")["yhat"] if len(df) else pd.Series(dtype=float)


def evaluate_marts(rules: Rules, as_of, con) -> IntervalResult:
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    cfg = rules.interval
    res = IntervalResult(as_of=as_of)
    window = pd.Timedelta(minutes=cfg["window_min"])
    now_df = load_conversations(con, as_of - window, as_of)
    weeks = _weeks_with_data(con, as_of, int(cfg["volume"]["baseline_weeks"]))
    if weeks:
        base_df = _baseline(con, as_of, window, weeks)
        usual_label = f"usual {as_of.tz_convert('Asia/Shanghai'):%a} level"
    else:
        # less than a week of history: the same time of day on the previous days
        days = _days_with_data(con, as_of, 7)
        frames = [
            load_conversations(con, as_of - window - pd.Timedelta(days=k), as_of - pd.Timedelta(days=k))
            for k in range(1, days + 1)
        ]
        frames = [f for f in frames if len(f)]
        base_df = pd.concat(frames, ignore_index=True) if frames else now_df.iloc[:0]
        weeks = days  # the divisor that turns the baseline into one period's level
        usual_label = "usual level at this time"
    local = as_of.tz_convert("Asia/Shanghai")
    span = f"{(as_of - window).tz_convert('Asia/Shanghai'):%H:%M}–{local:%H:%M}"

    # channel FRT
    c = cfg["channel_frt"]
    if c["enabled"] and len(now_df):
        answered = now_df[now_df["frt_s"].notna()]
        for channel, g in answered.groupby("channel"):
            if len(g) >= c["min_conversations"] and g["frt_s"].mean() > c["threshold_s"]:
                name = NAMES.get(channel, channel)
                res.alerts.append(
                    Alert(
                        rule="channel_frt",
                        key=f"channel_frt:{channel}",
                        severity=c["severity"],
                        title=f"{name} FRT {g['frt_s'].mean():.0f} s > {c['threshold_s']:.0f} s",
                        message=f"{name}: mean first response {g['frt_s'].mean():.0f} s over {len(g)} answered "
                        f"conversations {span} (p90 {g['frt_s'].quantile(0.9):.0f} s; threshold {c['threshold_s']:.0f} s).",
                        channel=channel,
                        hint=channel_hint(now_df, base_df, channel, max(weeks, 1)),
                        details={"frt_mean_s": round(float(g["frt_s"].mean()), 1), "n": len(g)},
                    )
                )

    # SLA attainment
    c = cfg["sla_attainment"]
    if c["enabled"]:
        sla_window = pd.Timedelta(minutes=c["window_min"])
        sla_df = load_conversations(con, as_of - sla_window, as_of) if sla_window != window else now_df
        judged = sla_df[sla_df["sla_breached"].notna()]
        for channel, g in judged.groupby("channel"):
            met = 1 - g["sla_breached"].astype(bool).mean()
            if len(g) >= c["min_conversations"] and met < c["target"]:
                name = NAMES.get(channel, channel)
                vip = g[g["customer_tier"] == "vip"]
                vip_txt = (
                    f"; VIP {1 - vip['sla_breached'].astype(bool).mean():.0%} of {len(vip)}"
                    if len(vip)
                    else ""
                )
                res.alerts.append(
                    Alert(
                        rule="sla_attainment",
                        key=f"sla_attainment:{channel}",
                        severity=c["severity"],
                        title=f"{name} SLA {met:.0%} < {c['target']:.0%}",
                        message=f"{name}: {met:.0%} of {len(g)} conversations within SLA over the last "
                        f"{int(c['window_min'])} min (target {c['target']:.0%}{vip_txt}).",
                        channel=channel,
                        hint=channel_hint(sla_df, base_df, channel, max(weeks, 1)),
                        details={"sla_pct": round(float(met), 3), "n": len(g)},
                    )
                )

    # volume vs forecast or usual
    c = cfg["volume"]
    if c["enabled"]:
        counts = now_df["channel"].value_counts()
        forecast = _forecast(con, as_of - window, as_of)
        usual = base_df["channel"].value_counts() / weeks if weeks else pd.Series(dtype=float)
        for channel in sorted(set(counts.index) | set(usual.index) | set(forecast.index)):
            actual = int(counts.get(channel, 0))
            if channel in forecast.index and forecast[channel] >= c["min_expected"]:
                expected, against = float(forecast[channel]), "forecast"
            elif channel in usual.index and usual[channel] >= c["min_expected"]:
                expected, against = float(usual[channel]), usual_label
            else:
                continue
            ratio = actual / expected
            name = NAMES.get(channel, channel)
            if ratio >= c["above_ratio"] or ratio <= c["below_ratio"]:
                direction = "above" if ratio >= c["above_ratio"] else "below"
                res.alerts.append(
                    Alert(
                        rule="volume",
                        key=f"volume:{channel}:{direction}",
                        severity=c["severity"],
                        title=f"{name} volume {ratio - 1:+.0%} vs {against}",
                        message=f"{name}: {actual} conversations {span}, {against} {expected:.0f} ({ratio - 1:+.0%}).",
                        channel=channel,
                        hint=channel_hint(now_df, base_df, channel, max(weeks, 1)),
                        details={"actual": actual, "expected": round(expected, 1), "against": against},
                    )
                )

    # topic share jump
    c = cfg["topic_share"]
    if c["enabled"] and len(now_df) >= c["min_conversations"]:
        prev = load_conversations(con, as_of - pd.Timedelta(days=c["baseline_days"]), as_of - window)
        if len(prev):
            share_now = now_df["topic"].fillna("other").value_counts(normalize=True)
            share_prev = prev["topic"].fillna("other").value_counts(normalize=True)
            count_now = now_df["topic"].fillna("other").value_counts()
            for topic, share in share_now.items():
                before = float(share_prev.get(topic, 0.0))
                jump = (share / before - 1) * 100 if before > 0 else float("inf")
                if count_now[topic] >= c["min_conversations"] and jump >= c["jump_pct"]:
                    top_channel = now_df[now_df["topic"].fillna("other") == topic]["channel"].value_counts()
                    res.alerts.append(
                        Alert(
                            rule="topic_share",
                            key=f"topic_share:{topic}",
                            severity=c["severity"],
                            title=f"Topic '{topic}' share {share:.0%} (was {before:.0%})",
                            message=f"Topic '{topic}': {count_now[topic]} of {len(now_df)} contacts {span} "
                            f"({share:.0%}, previous {int(c['baseline_days'])} days {before:.1%}; "
                            f"{'+' + format(jump, '.0f') + ' %' if before > 0 else 'new'}).",
                            hint=f"mostly on {NAMES.get(top_channel.index[0], top_channel.index[0])} "
                            f"({top_channel.iloc[0] / count_now[topic]:.0%} of them); "
                            + channel_hint(now_df, base_df, top_channel.index[0], max(weeks, 1)),
                            details={"share": round(float(share), 3), "before": round(before, 4)},
                        )
                    )
    # an overall SLA hint for SLA alerts spanning several channels
    if sum(a.rule == "sla_attainment" for a in res.alerts) > 1:
        res.notes["sla_overall"] = top_contributor(now_df, base_df, max(weeks, 1))

    # VIP keys for the real-time rule
    vips = con.execute(
        "select distinct channel, customer_key from marts.fct_conversations "
        "where customer_tier = 'vip' and customer_key is not null"
    ).fetchall()
    res.vips = [(c_, k) for c_, k in vips]
    return res


def evaluate_pipeline(rules: Rules, as_of, con) -> list[Alert]:
    """Stream freshness and `ops.events` (fallback, quarantine, retention)."""
    from connectors.platforms import all_streams

    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    out: list[Alert] = []
    cfg = rules.pipeline
    if cfg["freshness"]["enabled"]:
        grace = cfg["freshness"]["grace_min"]
        covered = {}
        if _table_exists(con, "raw", "_batches"):
            rows = con.execute(
                "select platform, stream, max(cast(\"window\"->>'until' as timestamptz)) from raw._batches "
                'where "window" is not null group by all'
            ).fetchall()
            covered = {(p, s): u for p, s, u in rows if u is not None}
        for table, stream in all_streams().items():
            newest = covered.get((stream.platform, stream.name))
            if newest is None:
                continue
            newest = min(pd.Timestamp(newest).tz_convert("UTC"), as_of)
            limit = pd.Timedelta(minutes=grace.get(stream.freshness, 60))
            age = as_of - newest
            if age > limit:
                name = NAMES.get(stream.platform, stream.platform)
                out.append(
                    Alert(
                        rule="stream_freshness",
                        key=f"stream_freshness:{table}",
                        severity=cfg["freshness"]["severity"],
                        title=f"{name} {stream.name} stale ({age.total_seconds() / 3600:.1f} h)",
                        message=f"{name} {stream.name}: newest landed window ended {age.total_seconds() / 60:.0f} min ago, "
                        f"declared freshness {stream.freshness} allows {limit.total_seconds() / 60:.0f} min.",
                        channel=stream.platform,
                        details={"age_min": round(age.total_seconds() / 60), "freshness": stream.freshness},
                    )
                )
    c = cfg["events"]
    if c["enabled"] and _table_exists(con, "ops", "events"):
        since = as_of - pd.Timedelta(minutes=c["window_min"])
        events = con.execute(
            "select occurred_at, platform, stream, kind, severity, message from ops.events "
            "where occurred_at > ? order by occurred_at",
            [since.to_pydatetime()],
        ).df()
        for (platform, stream, kind), g in events.groupby(["platform", "stream", "kind"], dropna=False):
            if kind not in c["kinds"]:
                continue
            name = NAMES.get(platform, platform)
            last = g.iloc[-1]
            out.append(
                Alert(
                    rule="ops_event",
                    key=f"ops_event:{kind}:{platform}:{stream}",
                    severity=c["kinds"][kind],
                    title=f"{name} {stream}: {kind.replace('_', ' ')}",
                    message=f"{last['message']} ({len(g)} event(s) in the last {int(c['window_min'])} min)",
                    channel=platform,
                    details={"kind": kind, "count": len(g)},
                )
            )
    return out


INTERVAL_RULES = ["channel_frt", "sla_attainment", "volume", "topic_share", "stream_freshness", "ops_event"]


def evaluate_interval(rules: Rules, as_of, path: Path | None = None) -> IntervalResult:
    """Every interval rule and the pipeline monitors, on one read-only connection."""
    with read_only(path) as con:
        res = evaluate_marts(rules, as_of, con)
        res.alerts.extend(evaluate_pipeline(rules, as_of, con))
    return res
