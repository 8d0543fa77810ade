"""Ground truth, exported twice (DESIGN §5): the full truth, and per platform what that
platform's API or console can show.

Everything takes an explicit `as_of`: only what has happened by then exists.

Per-conversation truth definitions (the marts must reproduce them):
- human queue start: the hand-off when a bot answered first, else the first customer
  message; FRT = queue start -> first human reply.
- response blocks: runs of customer messages (bot messages and system events do not
  break a run) ended by a human reply; the first block is measured from the human queue
  start, so its response time is the FRT. ART = mean over replied blocks.
- handle time: assignment -> the first agent's last message before the first close.
- abandoned: queued for a human, closed before any human reply; unattended: queued, no
  human reply and still open at `as_of`; bot-resolved: closed with no hand-off.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from sandbox.config import INTERVAL_S
from sandbox.simulation import SimData

WECOM_RETENTION = dt.timedelta(days=3)
NO_CONVERSATION_ID = frozenset({"wecom", "wechat_oa"})
D_PLUS_ONE = frozenset({"taobao"})
HIDES_BOT_MESSAGES = frozenset({"wecom"})


def as_utc(as_of) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def response_blocks(messages: pd.DataFrame, conversations: pd.DataFrame) -> pd.DataFrame:
    """Every block of customer messages and the human reply that ended it (if any)."""
    m = messages[messages["sender_type"].isin(["customer", "agent"])]
    conv = m["conversation_id"].to_numpy()
    cust = (m["sender_type"] == "customer").to_numpy()
    at = m["sent_at"].to_numpy()
    agent = m["agent_id"].to_numpy()
    n = conv.size
    new_conv = np.r_[True, conv[1:] != conv[:-1]] if n else np.array([], bool)
    prev_cust = np.r_[False, cust[:-1]] if n else np.array([], bool)
    start = cust & (new_conv | ~prev_cust)
    idx = np.flatnonzero(start)
    # the row right after each block's last customer message
    last_in_block = np.flatnonzero(cust & (np.r_[~cust[1:] | new_conv[1:], True] if n else []))
    after = last_in_block + 1
    has_next = after < n
    after_c = np.minimum(after, max(n - 1, 0))
    replied = has_next & ~cust[after_c] & (conv[after_c] == conv[last_in_block])
    blocks = pd.DataFrame(
        {
            "conversation_id": conv[idx],
            "block_start_at": at[idx],
            "replied_at": np.where(replied, at[after_c], np.datetime64("NaT")),
            "replied_by": np.where(replied, agent[after_c], -1),
        }
    )
    blocks["block_no"] = blocks.groupby("conversation_id").cumcount() + 1
    q = conversations.set_index("conversation_id")["queue_start_at"]
    qs = blocks["conversation_id"].map(q)
    first = blocks["block_no"] == 1
    eff = blocks["block_start_at"].where(~first | qs.isna(), np.maximum(blocks["block_start_at"], qs))
    blocks["measured_from"] = eff
    blocks["response_s"] = (blocks["replied_at"] - eff).dt.total_seconds()
    return blocks[
        [
            "conversation_id",
            "block_no",
            "block_start_at",
            "measured_from",
            "replied_at",
            "replied_by",
            "response_s",
        ]
    ]


def conversations_at(data: SimData, as_of) -> pd.DataFrame:
    """The full truth per conversation as it stands at `as_of`."""
    t = as_utc(as_of)
    c = data["conversations"]
    c = c[c["started_at"] <= t].copy()

    def known(col: str) -> pd.Series:
        return c[col].where(c[col] <= t)

    c["first_response_at"] = known("first_response_at")
    c["assigned_at"] = known("assigned_at")
    answered = c["first_response_at"].notna()
    c["frt_s"] = c["frt_s"].where(answered)
    c["wait_s"] = c["wait_s"].where(c["assigned_at"].notna())
    first_closed = c["first_closed_at"] <= t
    c["handle_time_s"] = c["handle_time_s"].where(first_closed & answered)
    c["abandoned"] = c["abandoned"] & (c["abandon_at"] <= t)
    c["bot_resolved"] = c["bot_resolved"] & first_closed
    queued = c["queue_start_at"].notna() & (c["queue_start_at"] <= t)
    c["queue_start_at"] = c["queue_start_at"].where(queued)
    ev = data["messages"]
    ev = ev[(ev["event"].isin(["close", "reopen"])) & (ev["sent_at"] <= t)]
    last_ev = ev.groupby("conversation_id")["event"].last()
    status = c["conversation_id"].map(last_ev).astype(object)
    c["status"] = np.where(status == "close", "closed", "open")
    c["reopen_count"] = (
        c["conversation_id"]
        .map(ev[ev["event"] == "reopen"].groupby("conversation_id").size())
        .fillna(0)
        .astype(int)
    )
    c["closed_at"] = c["closed_at"].where(c["status"] == "closed")
    c.loc[c["status"] == "closed", "closed_at"] = c["conversation_id"].map(
        ev[ev["event"] == "close"].groupby("conversation_id")["sent_at"].max()
    )
    c["first_closed_at"] = c["first_closed_at"].where(first_closed)
    c["unattended"] = queued & ~answered & (c["status"] == "open")
    blocks = data["response_blocks"]
    blocks = blocks[blocks["replied_at"] <= t]
    art = blocks.groupby("conversation_id")["response_s"].agg(["mean", "size"])
    c["art_s"] = c["conversation_id"].map(art["mean"])
    c["replied_blocks"] = c["conversation_id"].map(art["size"]).fillna(0).astype(int)
    r = data["ratings"]
    r = r[r["rated_at"] <= t].set_index("conversation_id")
    c["csat"] = c["conversation_id"].map(r["csat"])
    c["nps"] = c["conversation_id"].map(r["nps"]).where(lambda s: s >= 0)
    return c.reset_index(drop=True)


def visible_cutoff(channel: str, as_of) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    """[from, to] of what a platform can show at `as_of` (from None = no retention)."""
    t = as_utc(as_of)
    lower = t - WECOM_RETENTION if channel == "wecom" else None
    if channel in D_PLUS_ONE:
        # a D+1 source: nothing from today (Asia/Shanghai)
        local_midnight = t.tz_convert("Asia/Shanghai").normalize().tz_convert("UTC")
        t = local_midnight - pd.Timedelta(milliseconds=1)
    return lower, t


def visible_messages(data: SimData, channel: str, as_of) -> pd.DataFrame:
    """The messages (and events) `channel`'s API can return at `as_of`."""
    lower, upper = visible_cutoff(channel, as_of)
    m = data["messages"]
    m = m[(m["channel"] == channel) & (m["sent_at"] <= upper)]
    if lower is not None:
        m = m[m["sent_at"] >= lower]
    if channel in HIDES_BOT_MESSAGES:
        m = m[m["sender_type"] != "bot"]
    m = m.copy()
    if channel in NO_CONVERSATION_ID:
        m["conversation_id"] = pd.NA  # the platform shows none; kept out of the truth
    return m.reset_index(drop=True)


def visible_ratings(data: SimData, channel: str, as_of) -> pd.DataFrame:
    lower, upper = visible_cutoff(channel, as_of)
    r = data["ratings"]
    r = r[(r["channel"] == channel) & (r["rated_at"] <= upper)]
    if lower is not None:
        r = r[r["rated_at"] >= lower]
    return r.reset_index(drop=True)


def intervals_at(data: SimData, as_of=None) -> pd.DataFrame:
    """Per channel and 30-minute interval: offered, answered, SL, AHT, agents on duty."""
    c = data["conversations"] if as_of is None else conversations_at(data, as_of)
    q = c[c["queue_start_at"].notna()].copy()
    q["interval_start"] = q["queue_start_at"].dt.floor(f"{INTERVAL_S}s")
    g = q.groupby(["channel", "interval_start"])
    out = pd.DataFrame(
        {
            "queued": g.size(),
            "answered": g["assigned_at"].count(),
            "abandoned": g["abandoned"].sum(),
            "answered_within_20s": g["wait_s"].apply(lambda w: int((w <= 20).sum())),
            "mean_wait_s": g["wait_s"].mean(),
            "aht_s": g["handle_time_s"].mean(),
        }
    ).reset_index()
    c2 = c.copy()
    c2["interval_start"] = c2["started_at"].dt.floor(f"{INTERVAL_S}s")
    started = c2.groupby(["channel", "interval_start"]).size().rename("conversations").reset_index()
    roster = data["roster"][["channel", "interval_start", "agents_on_duty", "is_open"]]
    out = roster.merge(started, how="left").merge(out, how="left")
    for col in ("conversations", "queued", "answered", "abandoned", "answered_within_20s"):
        out[col] = out[col].fillna(0).astype(int)
    if as_of is not None:
        out = out[out["interval_start"] <= as_utc(as_of)]
    return out.reset_index(drop=True)
