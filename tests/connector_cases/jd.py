"""JD 京东咚咚: chatlog messages carry no id; the connector keys them with `msg_key` (sid, second,
side, content MD5), so raw rows map back to the simulation's message ids through that key:
`id_lookup(sim_data)` builds it for every chat message and the tests register it as the table
`id_lookup` before running `message_id_sql` (as for WeChat OA).

- `visible`: chatlog serves chat messages only - session events are not messages on JD - so the
  comparable truth is `visible_messages` without system rows.
- Every fault applies. `token_expiry` kills the access_token (JOS code 19): the connector renews
  it with the OAuth refresh token, which the sandbox config must carry
  (`DEFAULT_CREDENTIALS["jd"]["refresh_token"] = "sandbox-jd-refresh"`); without one the expiry
  is a `CredentialsExpired` naming the app_key (tests/test_connector_jd.py).
- The oracle: conversations are the session `sid`; times are epoch ms; JOS shows no
  assignment (handle time runs from the first reply); score is the 1-5 CSAT itself. JOS shows
  no hand-off and only a session's last close, so `notes["platform_truth"]` turns the oracle's
  expected rows into what JD can show (docs/connectors/jd.md).
"""

import hashlib

import numpy as np
import pandas as pd

from connector_cases import ConnectorCase
from connector_cases.taobao import platform_truth
from sandbox.server.platforms.jd import jd_sid
from sandbox.truth import visible_messages

P = "jd"


def visible_chat(sim_data, as_of) -> pd.DataFrame:
    m = visible_messages(sim_data, P, as_of)
    return m[m["sender_type"] != "system"].reset_index(drop=True)


def record_keys(sim_data) -> pd.DataFrame:
    """`_record_key` (= msg_key) -> message_id for every JD chat message."""
    m = sim_data["messages"]
    m = m[(m["channel"] == P) & (m["sender_type"] != "system")]
    sid = jd_sid(m["conversation_id"].to_numpy()).astype(object)
    second = m["sent_at"].to_numpy("datetime64[ms]").astype(np.int64) // 1000
    side = np.where((m["sender_type"] == "customer").to_numpy(), "c", "w")
    content = m["content"].astype(object).where(m["content"].notna(), "").astype(str)
    digest = [hashlib.md5(c.encode("utf-8")).hexdigest()[:12] for c in content]
    key = [f"{s}:{t}:{w}:{d}" for s, t, w, d in zip(sid, second, side, digest, strict=True)]
    return pd.DataFrame({"record_key": key, "message_id": m["message_id"].to_numpy(np.int64)})


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """fct_conversations ids are `jd:<sid>`; the sandbox's sid is a hash of the conversation id."""
    conv = sim_data["conversations"]
    conv = conv[conv["channel"] == P]["conversation_id"].to_numpy()
    by_sid = pd.Series(conv, index=jd_sid(conv).astype(object))
    sids = fct["conversation_id"].str.removeprefix("jd:")
    return pd.Series(by_sid.reindex(sids.to_numpy()).to_numpy(), index=fct.index)


CASE = ConnectorCase(
    platform=P,
    message_table="jd__messages",
    message_id_sql="(select l.message_id from id_lookup l where l.record_key = _record_key)",
    notes={
        "visible": visible_chat,
        "id_lookup": record_keys,
        # the oracle's truth as JD can show it (no hand-off or reopen; a session's last end)
        "platform_truth": lambda t, sim_data, upper: platform_truth(t, sim_data, upper, closes="last"),
    },
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1,
    shows_assignment=False,
    has_ratings=True,
    expected_csat=lambda csat: csat,
)
