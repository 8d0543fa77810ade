"""Meiqia: messages keyed by Meiqia's message `id` = 5500000000 + the simulation's message id
(sandbox/server/platforms/meiqia.py), conversations by `conv_id` = 1240000000 + the
conversation id. The generic tests use the default `messages_mode: bulk` (the sandbox's
GET /v1/messages); the per-conversation path is exercised by tests/test_connector_meiqia.py.

- Every fault applies (the bearer token expires on 401/40101 and is refreshed once).
- Times are whole seconds (`created_on` local strings): FRT and handle time at 1 s.
- The message log carries the hand-off, assignment, transfer, close and reopen events, so
  the assignment is shown; ratings come from the conversation records' `comment_level`
  (3 levels: 2 好评 = csat 4-5 -> good -> 5, 1 中评 = 3 -> medium -> 3, 0 差评 = 1-2 -> bad -> 1).
"""

import numpy as np
import pandas as pd

from connector_cases import ConnectorCase
from sandbox.server.platforms.meiqia import CONV_BASE, MSG_BASE


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """`meiqia:<conv_id>` -> the simulation's conversation id."""
    conv_id = fct["conversation_id"].str.removeprefix("meiqia:").astype("int64")
    return conv_id - CONV_BASE


def expected_csat(true_csat: pd.Series) -> pd.Series:
    """The true 1-5 score as Meiqia's three levels map back through the rating_scales seed."""
    csat = true_csat.to_numpy(dtype=float)
    mapped = np.select([csat >= 4, csat == 3, csat <= 2], [5.0, 3.0, 1.0], np.nan)
    return pd.Series(np.where(np.isnan(csat), np.nan, mapped), index=true_csat.index)


CASE = ConnectorCase(
    platform="meiqia",
    message_table="meiqia__messages",
    message_id_sql=f"cast(payload->>'id' as bigint) - {MSG_BASE}",
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,
    shows_assignment=True,
    has_ratings=True,
    expected_csat=expected_csat,
)
