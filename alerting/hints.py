"""Root-cause hints: one sentence with numbers naming what contributes most.

Given the conversations of the alert window and of a baseline (the same weekday and time
in earlier weeks, scaled per week), a hint names the channel's FRT and volume change and
the topic (and agent team, when known) that dominates the window, e.g.
"Douyin FRT +120 % (132 s vs 60 s usual), volume +200 % (90 vs 30 usual), topic
'promotion' 60 % of contacts (usual 15 %)".
"""

from __future__ import annotations

import math

import pandas as pd

NAMES = {
    "wecom": "WeCom",
    "wechat_oa": "WeChat OA",
    "taobao": "Taobao",
    "jd": "JD",
    "pinduoduo": "Pinduoduo",
    "douyin": "Douyin",
    "meiqia": "Meiqia",
    "sobot": "Sobot",
    "zendesk": "Zendesk",
}


def pct(now: float, base: float) -> str:
    if base is None or not math.isfinite(base) or base <= 0:
        return "new"
    change = (now / base - 1) * 100
    return f"{change:+.0f} %"


def channel_hint(window: pd.DataFrame, baseline: pd.DataFrame, channel: str, weeks: float = 1.0) -> str:
    """FRT change, volume change and the dominant topic of one channel."""
    name = NAMES.get(channel, channel)
    w = window[window["channel"] == channel]
    b = baseline[baseline["channel"] == channel]
    parts = []
    frt_now, frt_base = w["frt_s"].mean(), b["frt_s"].mean()
    if pd.notna(frt_now):
        base_txt = f" vs {frt_base:.0f} s usual" if pd.notna(frt_base) else ""
        parts.append(f"{name} FRT {pct(frt_now, frt_base)} ({frt_now:.0f} s{base_txt})")
    vol_now, vol_base = len(w), len(b) / max(weeks, 1e-9)
    parts.append(f"volume {pct(vol_now, vol_base)} ({vol_now} vs {vol_base:.0f} usual)")
    if len(w):
        shares = w["topic"].fillna("other").value_counts(normalize=True)
        topic, share = shares.index[0], shares.iloc[0]
        base_share = (
            b["topic"].fillna("other").value_counts(normalize=True).get(topic, 0.0) if len(b) else 0.0
        )
        parts.append(f"topic '{topic}' {share * 100:.0f} % of contacts (usual {base_share * 100:.0f} %)")
    if "team" in w.columns and w["team"].notna().any():
        breached = w[w["sla_breached"] == True]  # noqa: E712 - nullable booleans
        if len(breached):
            teams = breached["team"].fillna("unmapped").value_counts(normalize=True)
            parts.append(f"team '{teams.index[0]}' {teams.iloc[0] * 100:.0f} % of SLA breaches")
    return ", ".join(parts)


def top_contributor(window: pd.DataFrame, baseline: pd.DataFrame, weeks: float = 1.0) -> str:
    """For an alert over all channels: the channel with most SLA breaches (or most extra
    volume), then its channel hint."""
    if window.empty:
        return "no conversations in the window"
    breached = window[window["sla_breached"] == True]  # noqa: E712
    if len(breached):
        counts = breached["channel"].value_counts()
        channel = counts.index[0]
        lead = f"{NAMES.get(channel, channel)} holds {counts.iloc[0] / len(breached) * 100:.0f} % of {len(breached)} SLA breaches; "
    else:
        now = window["channel"].value_counts()
        base = baseline["channel"].value_counts() / max(weeks, 1e-9)
        extra = (now - base.reindex(now.index).fillna(0)).sort_values(ascending=False)
        channel = extra.index[0]
        lead = ""
    return lead + channel_hint(window, baseline, channel, weeks)
