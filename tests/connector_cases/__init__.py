"""One module per platform connector, each defining `CASE`: how the generic connector
tests (tests/test_connectors.py) find that platform's messages in raw and map them back to
the simulation's message ids. Adding a platform's connector = adding a module here."""

from __future__ import annotations

import importlib
import pkgutil
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
    # extra (stream, sql count of raw rows, function(sim_data, as_of) -> expected count) checks
    stream_checks: tuple = ()


def cases() -> dict[str, ConnectorCase]:
    out = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        case = getattr(module, "CASE", None)
        if case is not None:
            out[case.platform] = case
    return out
