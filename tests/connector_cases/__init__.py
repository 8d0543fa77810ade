"""One module per platform connector, each defining `CASE`: how the generic connector
tests (tests/test_connectors.py) find that platform's messages in raw and map them back to
the simulation's message ids. Adding a platform's connector = adding a module here."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConnectorCase:
    platform: str
    message_table: str  # raw table holding the platform's messages
    message_id_sql: str  # SQL over a raw row giving the simulation's message_id
    faults: tuple[str, ...] = (
        "rate_limit",
        "error_codes",
        "server_errors",
        "hang",
        "token_expiry",
        "duplicate_rows",
    )
    notes: dict = field(default_factory=dict)
    # -- for the fct_conversations oracle (tests/test_dbt_conversations.py) --------------
    # maps fct_conversations rows of this platform to the simulation's conversation ids
    truth_conversation_ids: Callable | None = None
    time_precision_ms: int = 1000  # the platform's timestamp precision
    shows_assignment: bool = True  # the platform shows the moment an agent takes over
    has_ratings: bool = False
    # the platform's csat as the warehouse should map it, from the true csat 1-5
    expected_csat: Callable | None = None


def cases() -> dict[str, ConnectorCase]:
    out = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"connector_cases.{info.name}")
        case = getattr(module, "CASE", None)
        if case is not None:
            out[case.platform] = case
    return out
