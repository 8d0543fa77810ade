"""The connector case of a console-only platform (Douyin Feige, Pinduoduo): one console
report format, so one case shape. Faults (docs/sandbox/console.md, "Faults on the
console"): duplicate_rows never fires on a console, and schema drift there is a new report
column, which the scraper refuses as a layout change (tests/test_scrapers.py) instead of
keeping it, so both are not applicable."""

from __future__ import annotations

import pandas as pd

from connector_cases import ConnectorCase


def console_case(platform: str) -> ConnectorCase:
    def truth_conversation_ids(fct: pd.DataFrame, sim_data) -> pd.Series:
        """fct_conversations ids are `<platform>:<会话ID>`; 会话ID is the simulation's id."""
        return fct["conversation_id"].str.removeprefix(f"{platform}:").astype("int64")

    def expected_csat(true_csat: pd.Series) -> pd.Series:
        """The console shows the 1-5 score itself (`five_point`), kept as is."""
        return true_csat.astype(float)

    return ConnectorCase(
        platform=platform,
        message_table=f"{platform}__messages",
        message_id_sql="cast(payload->>'message_id' as bigint)",
        faults=("rate_limit", "error_codes", "server_errors", "hang", "token_expiry"),
        notes={"not_applicable": ("duplicate_rows", "schema_drift"), "source": "scrape"},
        truth_conversation_ids=truth_conversation_ids,
        time_precision_ms=1000,
        shows_assignment=True,
        has_ratings=True,
        expected_csat=expected_csat,
    )
