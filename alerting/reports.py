"""Daily and weekly manager reports: one self-contained HTML file (charts inline as
base64 PNG), readable in a browser or a mail client, saved under `<data>/reports/`.

Sections: headline numbers; FRT and SLA by channel; volume against forecast (or the usual
level); CSAT by FRT band; the staffing gap of the coming day; "what to do" (the
forecast's `staffing_actions`, root-cause hints, the period's alerts). Reads the marts
through a read-only connection; carries no customer identifier.

The daily report covers the local (Asia/Shanghai) day before `as_of`; the weekly one the
seven days before the Monday of `as_of`'s week (or before `as_of`'s day when it is not
a Monday).
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alerting.hints import NAMES, channel_hint
from alerting.interval import _table_exists, load_conversations, read_only
from csw.settings import data_dir

log = logging.getLogger("alerting.reports")
TZ = "Asia/Shanghai"


@dataclass
class Report:
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    path: Path
    html: str
    charts: int


def period(kind: str, as_of) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) in UTC of the report period before `as_of`."""
    local = (
        pd.Timestamp(as_of).tz_convert(TZ)
        if pd.Timestamp(as_of).tzinfo
        else pd.Timestamp(as_of).tz_localize("UTC").tz_convert(TZ)
    )
    end = local.normalize()
    start = end - pd.Timedelta(days=1 if kind == "daily" else 7)
    return start.tz_convert("UTC"), end.tz_convert("UTC")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<figure><img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/><figcaption>{html.escape(alt)}</figcaption></figure>'


def _charts(
    conv: pd.DataFrame, expected: pd.DataFrame, sat: pd.DataFrame, staff: pd.DataFrame, kind: str
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    # 1. FRT and SLA by channel
    by = conv.groupby("channel").agg(
        frt=("frt_s", "mean"),
        sla=(
            "sla_breached",
            lambda s: 1 - s.dropna().astype(bool).mean() if s.notna().any() else float("nan"),
        ),
    )
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [NAMES.get(c, c) for c in by.index]
    ax.bar(names, by["frt"].fillna(0), color="#4C78A8")
    ax.set_ylabel("mean FRT (s)")
    ax2 = ax.twinx()
    ax2.plot(names, by["sla"] * 100, "o-", color="#E45756")
    ax2.set_ylabel("within SLA (%)")
    ax2.set_ylim(0, 105)
    ax.set_title("FRT (bars) and SLA attainment (line) by channel")
    ax.tick_params(axis="x", rotation=30)
    out.append(_img(_png(fig), "FRT and SLA by channel"))
    # 2. volume vs forecast / usual
    freq = "30min" if kind == "daily" else "D"
    actual = conv.set_index(conv["started_at"].dt.tz_convert(TZ)).resample(freq).size()
    fig, ax = plt.subplots(figsize=(7, 3.0))
    ax.plot(actual.index, actual.values, label="actual", color="#4C78A8")
    if len(expected):
        exp = (
            expected.set_index(expected["interval_start"].dt.tz_convert(TZ))["expected"].resample(freq).sum()
        )
        ax.plot(exp.index, exp.values, "--", label=str(expected["label"].iloc[0]), color="#F58518")
    ax.set_title(
        "Contact volume vs " + (str(expected["label"].iloc[0]) if len(expected) else "(no forecast)")
    )
    ax.legend()
    fig.autofmt_xdate()
    out.append(_img(_png(fig), "Volume vs forecast"))
    # 3. CSAT by FRT band
    fig, ax = plt.subplots(figsize=(7, 3.0))
    if len(sat):
        ax.bar(sat["frt_band"], sat["csat_pct"] * 100, color="#54A24B")
    ax.set_ylabel("CSAT (% rating 4-5)")
    ax.set_title("CSAT by first-response band")
    out.append(_img(_png(fig), "CSAT by FRT band"))
    # 4. staffing gap of the coming day
    fig, ax = plt.subplots(figsize=(7, 3.0))
    if len(staff):
        pivot = staff.pivot_table(index="hour", columns="channel", values="need", aggfunc="max").fillna(0)
        pivot.rename(columns=NAMES).plot(kind="bar", stacked=True, ax=ax, width=0.9)
        ax.set_ylabel("agents (gap or required)")
    ax.set_title(
        "Staffing for the coming day (" + (str(staff["what"].iloc[0]) if len(staff) else "no forecast") + ")"
    )
    out.append(_img(_png(fig), "Staffing gap"))
    return out


def build_report(kind: str, as_of, warehouse: Path | None = None, out_dir: Path | None = None) -> Report:
    if kind not in ("daily", "weekly"):
        raise ValueError(f"report kind must be daily or weekly, got {kind!r}")
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    start, end = period(kind, as_of)
    with read_only(warehouse) as con:
        conv = load_conversations(con, start, end)
        base = pd.concat(
            [
                load_conversations(con, start - pd.Timedelta(weeks=k), end - pd.Timedelta(weeks=k))
                for k in (1, 2)
            ],
            ignore_index=True,
        )
        expected = pd.DataFrame()
        if _table_exists(con, "forecast", "forecast_volume"):
            expected = con.execute(
                "select interval_start, sum(yhat) as expected from forecast.forecast_volume "
                "where interval_start >= ? and interval_start < ? group by 1 order by 1",
                [start.to_pydatetime(), end.to_pydatetime()],
            ).df()
            expected["label"] = "forecast"
        if not len(expected) and len(base):
            usual = base.copy()
            usual["interval_start"] = usual["started_at"].dt.floor("30min")
            usual = usual.groupby("interval_start").size().rename("expected").reset_index()
            usual["interval_start"] = usual["interval_start"] + pd.Timedelta(weeks=1)
            usual = usual[(usual["interval_start"] >= start) & (usual["interval_start"] < end)]
            usual["expected"] = usual["expected"] / 2
            usual["label"] = "usual (previous weeks)"
            expected = usual
        if len(expected):
            expected["interval_start"] = pd.to_datetime(expected["interval_start"], utc=True)
        sat = pd.DataFrame()
        if _table_exists(con, "marts", "mart_satisfaction"):
            sat = con.execute(
                "select frt_band, min(frt_band_order) o, sum(csat_satisfied) / nullif(sum(rated), 0) as csat_pct, "
                "sum(rated) as rated from marts.mart_satisfaction where local_date >= ? and local_date < ? "
                "and frt_band is not null group by 1 order by o",
                [start.tz_convert(TZ).date(), end.tz_convert(TZ).date()],
            ).df()
        staff, actions = pd.DataFrame(), pd.DataFrame()
        if _table_exists(con, "forecast", "staffing_recommendations"):
            nxt = as_of.tz_convert(TZ).normalize()
            staff = con.execute(
                "select channel, interval_start, required_headcount, scheduled_agents, gap from forecast.staffing_recommendations "
                "where interval_start >= ? and interval_start < ?",
                [
                    nxt.tz_convert("UTC").to_pydatetime(),
                    (nxt + pd.Timedelta(days=1)).tz_convert("UTC").to_pydatetime(),
                ],
            ).df()
            if len(staff):
                has_gap = staff["gap"].notna().any()
                staff["need"] = (staff["gap"] if has_gap else staff["required_headcount"]).astype(float)
                staff["what"] = "gap vs roster" if has_gap else "required headcount; no roster given"
                staff["hour"] = (
                    pd.to_datetime(staff["interval_start"], utc=True).dt.tz_convert(TZ).dt.strftime("%H")
                )
        if _table_exists(con, "forecast", "staffing_actions"):
            actions = con.execute(
                "select rank, sentence from forecast.staffing_actions order by rank limit 8"
            ).df()
    charts = _charts(conv, expected, sat, staff, kind)

    # headline table
    rows = []
    for channel, g in conv.groupby("channel"):
        judged = g["sla_breached"].dropna()
        rows.append(
            {
                "Channel": NAMES.get(channel, channel),
                "Conversations": len(g),
                "FRT mean (s)": f"{g['frt_s'].mean():.0f}" if g["frt_s"].notna().any() else "–",
                "FRT p90 (s)": f"{g['frt_s'].quantile(0.9):.0f}" if g["frt_s"].notna().any() else "–",
                "Within SLA": f"{1 - judged.astype(bool).mean():.0%}" if len(judged) else "–",
                "Abandoned": f"{g['is_abandoned'].fillna(False).astype(bool).mean():.0%}",
            }
        )
    table = (
        pd.DataFrame(rows).to_html(index=False, border=0, classes="kpi")
        if rows
        else "<p>No conversations in this period.</p>"
    )

    # what to do
    todo = [html.escape(s) for s in (actions["sentence"].tolist() if len(actions) else [])]
    by_sla = (
        conv[conv["sla_breached"].notna()]
        .groupby("channel")["sla_breached"]
        .apply(lambda s: 1 - s.astype(bool).mean())
    )
    for channel in by_sla[by_sla < 0.8].sort_values().index[:3]:
        todo.append(
            html.escape(
                f"{NAMES.get(channel, channel)} met SLA for only {by_sla[channel]:.0%}: "
                + channel_hint(conv, base, channel, weeks=2)
            )
        )
    alerts_html = ""
    try:
        from alerting.store import AlertStore, store_path

        if store_path().exists():
            with AlertStore() as store:
                evs = [
                    e for e in store.events(since=start) if e["kind"] == "fired" and e["at"] < end.isoformat()
                ]
            if evs:
                alerts_html = (
                    "<h2>Alerts in this period</h2><ul>"
                    + "".join(
                        f"<li>{html.escape(e['at'][:16])} {html.escape(e['message'])}</li>" for e in evs[:30]
                    )
                    + "</ul>"
                )
    except Exception as exc:  # a report without the alert list is still a report
        log.warning("report: alert store unreadable: %s", exc)

    if len(staff):
        peak = staff.groupby("channel")["need"].max().sort_values(ascending=False)
        staff_note = f"Staffing for the coming day ({staff['what'].iloc[0]}): " + ", ".join(
            f"{NAMES.get(c, c)} up to {v:.0f}" for c, v in peak.items()
        )
    else:
        staff_note = "No staffing forecast for the coming day (run `csw forecast`)."
    title = f"Customer service {kind} report: {start.tz_convert(TZ):%Y-%m-%d}" + (
        f" – {(end - pd.Timedelta(days=1)).tz_convert(TZ):%Y-%m-%d}" if kind == "weekly" else ""
    )
    total = len(conv)
    judged = conv["sla_breached"].dropna()
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 860px; margin: 1em auto; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; border-bottom: 1px solid #ddd; }}
table.kpi {{ border-collapse: collapse; width: 100%; }} table.kpi td, table.kpi th {{ padding: 4px 8px; border-bottom: 1px solid #eee; text-align: right; }}
img.chart {{ max-width: 100%; }} figure {{ margin: 0.5em 0; }} figcaption {{ font-size: 0.85em; color: #666; }}
.headline span {{ display: inline-block; margin-right: 2em; font-size: 1.1em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="headline"><span>Conversations: <b>{total}</b></span>
<span>Mean FRT: <b>{conv["frt_s"].mean():.0f} s</b></span>
<span>Within SLA: <b>{(1 - judged.astype(bool).mean()) if len(judged) else float("nan"):.0%}</b></span></p>
<h2>By channel</h2>{table}
<h2>Charts</h2>{"".join(charts)}
<p>{html.escape(staff_note)}</p>
<h2>What to do</h2><ol>{"".join(f"<li>{t}</li>" for t in todo) or "<li>Nothing urgent.</li>"}</ol>
{alerts_html}
<p style="font-size:0.8em;color:#888">Generated for the period [{start.tz_convert(TZ):%Y-%m-%d %H:%M}, {end.tz_convert(TZ):%Y-%m-%d %H:%M}) Asia/Shanghai from the warehouse marts and forecasts.</p>
</body></html>"""
    folder = Path(out_dir or data_dir() / "reports")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}_{start.tz_convert(TZ):%Y-%m-%d}.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)
    return Report(kind=kind, start=start, end=end, path=path, html=body, charts=len(charts))


def mail_report(report: Report, rules=None) -> int:
    """Send the report through every configured smtp notifier; returns deliveries."""
    from alerting.notifiers import Message, SmtpMailer
    from alerting.rules import load_rules

    rules = rules or load_rules()
    sent = 0
    for cfg in rules.notifiers:
        if cfg["type"] != "smtp" or not cfg.get("enabled", True):
            continue
        msg = Message(
            title=f"Customer service {report.kind} report {report.start.tz_convert(TZ):%Y-%m-%d}",
            markdown=f"The {report.kind} report is attached and shown below (HTML).",
            severity="info",
            html=report.html,
            attachments=[(report.path.name, report.html.encode(), "text/html")],
        )
        if SmtpMailer({**cfg, "min_severity": "info"}).deliver(msg):
            sent += 1
    return sent
