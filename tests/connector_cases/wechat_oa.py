"""WeChat Official Account: getmsglist records carry no id (and no session id), so raw rows
are mapped back to the simulation's message ids through a lookup built from the simulation:
(openid, opercode, time, text) is unique per message on this account (checked in
tests/test_connector_wechat_oa.py). `worker` is left out of the match: it is a label.

- `id_lookup(sim_data)`: the table the tests register as `id_lookup` before running
  `message_id_sql`.
- Every fault applies (tokens expire: 42001 -> refresh once).
"""

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


CASE = ConnectorCase(
    platform="wechat_oa",
    message_table="wechat_oa__messages",
    message_id_sql=(
        "(select l.message_id from id_lookup l where l.openid = (payload->>'openid') "
        "and l.opercode = cast(payload->>'opercode' as bigint) "
        "and l.time = cast(payload->>'time' as bigint) and l.text = (payload->>'text'))"
    ),
    notes={"id_lookup": id_lookup},
)
