"""Stream declarations: what a platform module promises about each of its streams.

A platform module declares its streams with `Stream(...)`; the runner, loader, quality
gates and alerts read these declarations, so they are the single place where a stream's
key, cursor, freshness and retention are stated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

CursorKind = Literal["server_cursor", "time_window", "page", "snapshot"]
TimeFormat = Literal["unix_s", "unix_ms", "iso", "local"]  # local = Asia/Shanghai wall time


@dataclass(frozen=True)
class Stream:
    """One stream of one platform.

    - `primary_key`: fields that identify a record (joined with `|` into `_record_key`);
    - `time_field` / `time_format`: the record's event or update time, parsed into
      `_record_time` (UTC) by the loader; records whose key or time is missing or
      unparseable are quarantined with that reason;
    - `cursor`: how extraction resumes (server cursor, time window, page, full snapshot);
    - `freshness`: how current the platform's data are (real_time, hourly, d_plus_1);
    - `retention`: how far back the API reaches (None = no limit);
    - `max_window` / `lookback`: window size the API allows, re-read for late updates;
    - `doc`: the documentation page the mapping follows;
    - `initial_history`: how far back the first sync of a time-window stream reaches
      (overrides a shorter `since` on that first run: orders need their whole history).
    """

    platform: str
    name: str
    primary_key: tuple[str, ...]
    time_field: str | None  # None: a reference list with no time of its own
    time_format: TimeFormat
    cursor: CursorKind
    doc: str
    freshness: Literal["real_time", "hourly", "d_plus_1"] = "real_time"
    retention: dt.timedelta | None = None
    max_window: dt.timedelta = dt.timedelta(days=1)
    lookback: dt.timedelta = dt.timedelta(hours=1)
    required: tuple[str, ...] = ()
    description: str = ""
    initial_history: dt.timedelta | None = None  # how far back a first sync reaches

    @property
    def table(self) -> str:
        return f"{self.platform}__{self.name}"

    @property
    def key_fields(self) -> tuple[str, ...]:
        return self.primary_key


@dataclass
class Page:
    """What one fetch step returns: records as received and the cursor after them."""

    records: list[dict]
    cursor_after: Any
    done: bool = False
    source: Literal["api", "scrape"] = "api"


@dataclass
class Window:
    since: pd.Timestamp
    until: pd.Timestamp

    def as_dict(self) -> dict:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


Fetcher = Callable[[Any, Window], Iterator[Page]]


@dataclass
class StreamEvents:
    """Operational events an extraction noticed; they travel in the batch manifest and
    the loader writes them to `ops.events`."""

    items: list[dict] = field(default_factory=list)

    def add(self, kind: str, severity: str, message: str, **details) -> None:
        self.items.append({"kind": kind, "severity": severity, "message": message, "details": details})
