"""Zendesk: messages are ticket comments, keyed by the comment id (= the simulation's
message id).

- `visible`: Zendesk comments are the customer's and the agents' messages only; system events
  (assign, transfer, close) show on the ticket, never as comments, so the comparable truth is
  `visible_messages` without them.
- `token_expiry` is not in `faults`: Zendesk API tokens never expire (the sandbox's
  `expire_tokens_after` has no effect there; a wrong token is a 401, not a refresh).
- Oracle (tests/test_dbt_conversations.py): one ticket = one conversation (`zendesk:<ticket id>`,
  the simulation's conversation id); the timeline's events come from the ticket event export
  (assignee and status changes), so assignment shows; ratings are two-point.
- `late_by_s`: e-mail is a thin channel in the simulation (two comments in the half hour
  before the tests' as_of, neither picked by the late-update fault), so late updates are
  tested with 2 h: one comment then shows up after as_of.
- The generic tests need `comments_mode: bulk` (the sandbox's bulk comments export, a sandbox
  extension) from the sandbox config; the connector's default `per_ticket` mode re-reads all
  comments of every changed ticket (fine for the loader, too many landed rows for the
  incremental test) and is exercised by tests/test_connector_zendesk.py.
"""

import pandas as pd

from connector_cases import ConnectorCase
from sandbox.truth import visible_messages


def visible_comments(sim_data, as_of):
    m = visible_messages(sim_data, "zendesk", as_of)
    return m[m["sender_type"].isin(["customer", "agent"])].reset_index(drop=True)


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """A ticket is a conversation: its id is the simulation's conversation id."""
    return fct["conversation_id"].str.removeprefix("zendesk:").astype(int)


def expected_csat(true_csat: pd.Series) -> pd.Series:
    """Two-point CSAT: 4-5 -> good -> 5, 1-3 -> bad -> 1 (rating_scales `zendesk_good_bad`)."""
    return true_csat.map(lambda v: v if pd.isna(v) else (5.0 if v >= 4 else 1.0))


CASE = ConnectorCase(
    platform="zendesk",
    message_table="zendesk__messages",
    message_id_sql="cast(payload->>'id' as bigint)",
    faults=("rate_limit", "error_codes", "server_errors", "hang", "duplicate_rows"),
    notes={"visible": visible_comments, "late_by_s": 7200},
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,  # ISO-8601 times to the second
    shows_assignment=True,  # ticket events: the assignee_id change
    has_ratings=True,
    expected_csat=expected_csat,
)
