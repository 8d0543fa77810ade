"""Taobao / Tmall Qianniu: chatlog messages carry no id, so raw rows map back to the
simulation's message ids through their record key (to_id | time | direction | content, unique
per message; checked in tests/test_connector_taobao.py): `id_lookup(sim_data)` builds that key
for every chat message, and the tests register it as the table `id_lookup` before running
`message_id_sql` (as for WeChat OA).

- `visible`: chatlog serves chat messages only - no session events - and nothing from today
  (D+1), so the comparable truth is `visible_messages` (which applies D+1) without system rows.
- Every fault applies. `token_expiry` kills the session key (TOP code 27): the connector renews
  it with the OAuth refresh token, which the sandbox config must carry
  (`DEFAULT_CREDENTIALS["taobao"]["refresh_token"] = "sandbox-taobao-refresh"`); without one
  the expiry is a `CredentialsExpired` naming the app_key (tests/test_connector_taobao.py).
- The oracle: conversations are the sandbox's `session_id` extension; times are whole seconds;
  chatlog shows no assignment (handle time runs from the first reply), and eval_code maps back
  to the same 1-5 CSAT. chatlog shows no hand-off, close or reopen either, so the full truth
  cannot be reproduced: `notes["platform_truth"]` turns the oracle's expected rows into what
  Taobao can show (`platform_truth`, shared with JD; docs/connectors/taobao.md, "What the
  warehouse cannot know"). The oracle applies it when it honours that note.
"""

import numpy as np
import pandas as pd

from connector_cases import ConnectorCase
from sandbox.truth import visible_messages

P = "taobao"


def visible_chat(sim_data, as_of) -> pd.DataFrame:
    m = visible_messages(sim_data, P, as_of)
    return m[m["sender_type"] != "system"].reset_index(drop=True)


def record_keys(sim_data) -> pd.DataFrame:
    """`_record_key` (to_id|time|direction|content) -> message_id for every Taobao chat message."""
    m = sim_data["messages"]
    m = m[(m["channel"] == P) & (m["sender_type"] != "system")]
    buyer = sim_data["conversations"].set_index("conversation_id")["platform_user_id"].astype(str)
    local = m["sent_at"].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M:%S")
    direction = np.where((m["sender_type"] == "customer").to_numpy(), "1", "0")
    content = m["content"].astype(object).where(m["content"].notna(), "").astype(str)
    key = "cntaobao" + m["conversation_id"].map(buyer) + "|" + local + "|" + direction + "|" + content
    return pd.DataFrame({"record_key": key.to_numpy(), "message_id": m["message_id"].to_numpy(np.int64)})


def platform_truth(t: pd.DataFrame, sim_data, upper, closes: str = "none") -> pd.DataFrame:
    """The truth as a platform that shows chat messages but no hand-off, assignment or reopen
    event can show it (`t`: `conversations_at(sim_data, upper)` rows of one channel, indexed by
    conversation id). `closes`: "none" (Taobao: no close at all) or "last" (JD: a session's
    last end, when it is closed at `upper`).

    - a handed-off chat that a human answered queues from its first customer message; one no
      human answered was never visibly queued (not abandoned, not unattended);
    - ART: every block measured from its own first customer message;
    - reopens: none; handle time: from the first reply (no assignment shown) to the first
      agent's last message before the shown close (none on Taobao)."""
    t = t.copy()
    handed = t["handoff_at"].notna()
    answered = t["first_response_at"].notna()
    t["queue_start_at"] = t["queue_start_at"].where(~handed, t["started_at"].where(answered))
    t["abandoned"] = t["abandoned"] & ~handed
    t["unattended"] = t["unattended"] & ~handed
    b = sim_data["response_blocks"]
    b = b[b["conversation_id"].isin(t.index) & (b["replied_at"] <= upper)]
    art = (b["replied_at"] - b["block_start_at"]).dt.total_seconds().groupby(b["conversation_id"]).mean()
    t["art_s"] = t.index.map(art).astype(float)
    t["reopen_count"] = 0
    t["assigned_at"] = t["first_response_at"]
    if closes == "none":
        t["status"] = "open"
        t["unattended"] = t["queue_start_at"].notna() & ~answered
        t["abandoned"] = False
        t["bot_resolved"] = False
        t["handle_time_s"] = np.nan
        return t
    closed = t["status"] == "closed"
    t["bot_resolved"] = closed & t["queue_start_at"].isna()
    m = sim_data["messages"]
    m = m[m["conversation_id"].isin(t.index) & (m["sender_type"] == "agent")]
    m = m[m["agent_id"].to_numpy() == t["first_agent_id"].reindex(m["conversation_id"]).to_numpy()]
    m = m[m["sent_at"].to_numpy() <= t["closed_at"].reindex(m["conversation_id"]).to_numpy()]
    end = m.groupby("conversation_id")["sent_at"].max()
    t["handle_time_s"] = (
        (t.index.map(end) - t["first_response_at"]).dt.total_seconds().where(closed & answered)
    )
    return t


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """fct_conversations ids are `taobao:<session_id>`, the sandbox's conversation id."""
    return fct["conversation_id"].str.removeprefix("taobao:").astype(int)


CASE = ConnectorCase(
    platform=P,
    message_table="taobao__messages",
    message_id_sql="(select l.message_id from id_lookup l where l.record_key = _record_key)",
    notes={
        "visible": visible_chat,
        "id_lookup": record_keys,
        # D+1: a late row matters only on a day already read. At 16:00 a 17 h delay hides some of
        # yesterday's last hour; an hour later all of it shows, and the next run re-reads
        # yesterday (the stream's one-day look-back).
        "late_by_s": 17 * 3600,
        # D+1: an hour later on the same day there is nothing new to fetch (the generic test
        # needs new messages); tests/test_connector_taobao.py checks the next day instead.
        "not_applicable": ("incremental",),
        # the oracle's truth as Taobao can show it (no hand-off, close or reopen events)
        "platform_truth": lambda t, sim_data, upper: platform_truth(t, sim_data, upper, closes="none"),
    },
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,
    shows_assignment=False,
    has_ratings=True,
    expected_csat=lambda csat: csat,
)
