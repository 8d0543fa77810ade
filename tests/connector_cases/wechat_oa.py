"""WeChat Official Account: getmsglist records carry no id (and no session id), so raw rows
are mapped back to the simulation's message ids through a lookup built from the simulation:
(openid, opercode, time, text) is unique per message on this account (checked in
tests/test_connector_wechat_oa.py). `worker` is left out of the match: it is a label.

- `id_lookup(sim_data)`: the table the tests register as `id_lookup` before running
  `message_id_sql`.
- Oracle: sessions are cut by the warehouse (close 1004 / 30-min gap) and named after their
  first record's md5(openid|time|opercode|text) id; `truth_conversation_ids` maps that back.
- Every fault applies (tokens expire: 42001 -> refresh once).
"""

import hashlib

import numpy as np
import pandas as pd

from connector_cases import ConnectorCase

OPERCODE = {"customer": 2003, "agent": 2002}
EVENT_OPERCODE = {"handoff": 1000, "assign": 1001, "reopen": 1001, "transfer": 1003, "close": 1004}


def id_lookup(sim_data) -> pd.DataFrame:
    """(openid, opercode, time, text) -> message_id for every WeChat OA message and event."""
    m = sim_data["messages"]
    m = m[m["channel"] == "wechat_oa"]
    openid = sim_data["conversations"].set_index("conversation_id")["platform_user_id"]
    sender = m["sender_type"].astype(str)
    system = (sender == "system").to_numpy()
    opercode = np.where(
        system,
        m["event"].astype(str).map(EVENT_OPERCODE).fillna(1001).to_numpy(),
        sender.map(OPERCODE).fillna(2003).to_numpy(),
    ).astype(np.int64)
    text = m["content"].astype(object).where(m["content"].notna(), "").to_numpy()
    return pd.DataFrame(
        {
            "openid": m["conversation_id"].map(openid).astype(str).to_numpy(),
            "opercode": opercode,
            "time": m["sent_at"].to_numpy("datetime64[s]").astype(np.int64),
            "text": np.where(system, "", text),
            "message_id": m["message_id"].to_numpy(np.int64),
        }
    )


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """The warehouse names a session after its first record, `wechat_oa:s:<id>`, where the id
    is md5(openid|time|opercode|text) (stg_wechat_oa__messages): the same key through the
    simulation's lookup gives the first message, and so its conversation."""
    lookup = id_lookup(sim_data)
    keys = (
        lookup["openid"]
        + "|"
        + lookup["time"].astype(str)
        + "|"
        + lookup["opercode"].astype(str)
        + "|"
        + lookup["text"].astype(str)
    )
    digest = [hashlib.md5(k.encode()).hexdigest() for k in keys]
    message_of = pd.Series(lookup["message_id"].to_numpy(), index=digest)
    first = fct["conversation_id"].str.removeprefix("wechat_oa:s:")
    conversation_of = sim_data["messages"].set_index("message_id")["conversation_id"]
    message = message_of.reindex(first.to_numpy())
    return pd.Series(conversation_of.reindex(message.to_numpy()).to_numpy(), index=fct.index)


CASE = ConnectorCase(
    platform="wechat_oa",
    message_table="wechat_oa__messages",
    message_id_sql=(
        "(select l.message_id from id_lookup l where l.openid = (payload->>'openid') "
        "and l.opercode = cast(payload->>'opercode' as bigint) "
        "and l.time = cast(payload->>'time' as bigint) and l.text = (payload->>'text'))"
    ),
    notes={"id_lookup": id_lookup},
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,  # `time` is unix seconds
    shows_assignment=True,  # 1001 接入会话
    has_ratings=False,  # no ratings on WeChat OA customer service
)
