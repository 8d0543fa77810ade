"""Sobot: messages keyed by `msgid` = m_<the simulation's message id>, sessions by `cid` =
`sobot_cid(conversation id)` (32 hex digits, sandbox/server/platforms/sobot.py).

- Every fault applies (ret_code 900002: the shared token is refreshed once).
- Times are epoch ms (`t`): FRT, handle time and ART compare at 1 ms.
- The message log carries hand-off, assignment, transfer, close and reopen events (sender_type
  3), so the assignment is shown; ratings are 1-5 (`five_point`, csat as given) with NPS.
"""

import pandas as pd

from connector_cases import ConnectorCase
from sandbox.server.platforms.sobot import sobot_cid


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """`sobot:<cid>` -> the simulation's conversation id."""
    conv = sim_data["conversations"]
    ids = conv.loc[conv["channel"] == "sobot", "conversation_id"].to_numpy()
    by_cid = pd.Series(ids, index=sobot_cid(ids))
    cid = fct["conversation_id"].str.removeprefix("sobot:")
    return pd.Series(cid.map(by_cid).to_numpy(), index=fct.index)


def expected_csat(true_csat: pd.Series) -> pd.Series:
    return true_csat.astype(float)


CASE = ConnectorCase(
    platform="sobot",
    message_table="sobot__messages",
    message_id_sql="cast(replace(payload->>'msgid', 'm_', '') as bigint)",
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1,
    shows_assignment=True,
    has_ratings=True,
    expected_csat=expected_csat,
)
