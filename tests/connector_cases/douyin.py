"""Douyin Feige 抖店飞鸽: no chat API, so every stream is read from the admin console (the
飞鸽 history export, `connectors/scrapers/console.py`). Messages are keyed by the console's
消息ID, which is the simulation's message id; sessions by 会话ID (= conversation id).

Faults (docs/sandbox/console.md, "Faults on the console"): the plain platform key `douyin`
drives the console, so rate limits (HTML 429 + Retry-After), error pages (503 系统繁忙),
server errors (502), a hung request (504 after `hang_s`) and token expiry (= console session
expiry: 302 to the login page, the scraper logs in again once) all apply.

- `duplicate_rows` is left out: it is a paging fault of the APIs; the console pages by
  (time, id) and its CSV export is one answer, so the sandbox console never duplicates rows
  (the fault would never fire). Rows repeated by a report that changes while it is paged
  are de-duplicated on the key all the same.
- `schema_drift`: a new field in the console is a new column, which the scraper must refuse
  (`ScraperLayoutError`, DESIGN §6: a changed header is a clear error, never parsed); it is
  covered by tests/test_scrapers.py (layout change), not by the "new field kept" test.
- Times are whole seconds (the console truncates), so FRT and handle time are compared at
  1000 ms precision.
"""

from __future__ import annotations

import pandas as pd

from connector_cases import ConnectorCase

PLATFORM = "douyin"


def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
    """fct_conversations ids are `douyin:<会话ID>`, and 会话ID is the simulation's id."""
    return fct["conversation_id"].str.removeprefix(f"{PLATFORM}:").astype("int64")


def expected_csat(true_csat: pd.Series) -> pd.Series:
    """Douyin shows the 1-5 score itself (`five_point`): the warehouse keeps it as is."""
    return true_csat.astype(float)


CASE = ConnectorCase(
    platform=PLATFORM,
    message_table="douyin__messages",
    message_id_sql="cast(payload->>'message_id' as bigint)",
    faults=("rate_limit", "error_codes", "server_errors", "hang", "token_expiry"),
    notes={"not_applicable": ("duplicate_rows", "schema_drift"), "source": "scrape"},
    truth_conversation_ids=truth_conversation_ids,
    time_precision_ms=1000,
    shows_assignment=True,
    has_ratings=True,
    expected_csat=expected_csat,
)
