"""Fault injection per platform.

Switched on by config (`csw sandbox serve --faults faults.yaml`), by the admin endpoint
`POST /_sandbox/faults/<platform>` (JSON body of `FaultConfig` fields), or per request
with the header `X-Sandbox-Fault: rate_limit=2,server_errors=1` (the header's counts
apply to that platform from then on, like the admin endpoint).

Counted faults (`rate_limit`, `error_codes`, `server_errors`, `hang`) fire on the next N
data requests and then clear, so a client that retries must eventually succeed. The
others stay on until cleared. Each platform module renders a fault in its own style
(HTTP 429 + Retry-After, or HTTP 200 + an error code, ...) through `PlatformErrors`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np
import pandas as pd
from fastapi import Request
from fastapi.responses import Response

DRIFT_KINDS = ("", "new_field", "missing_field", "changed_type")


@dataclass
class FaultConfig:
    rate_limit: int = 0  # next N requests: rate limited
    retry_after_s: int = 1
    error_codes: int = 0  # next N requests: the platform's retryable error code
    server_errors: int = 0  # next N requests: HTTP 5xx
    hang: int = 0  # next N requests: no answer for `hang_s`
    hang_s: float = 30.0
    slow_s: float = 0.0  # every request answers this much later
    expire_tokens_after: int = 0  # after N more data requests, every issued token dies (once)
    duplicate_rows: int = 0  # each page repeats this many rows of the previous page
    late_updates: bool = False  # records show up `late_by_s` after they happened
    late_by_s: int = 1800
    schema_drift: str = ""  # new_field | missing_field | changed_type
    drift_share: float = 0.02  # share of records a missing field/changed type hits
    api_off: bool = False  # the API is switched off (the console still works)
    permission_denied: bool = False

    def __post_init__(self) -> None:
        if self.schema_drift not in DRIFT_KINDS:
            raise ValueError(f"schema_drift must be one of {DRIFT_KINDS}, got {self.schema_drift!r}")


class PlatformErrors(Protocol):
    """How a platform says each kind of failure."""

    def rate_limited(self, retry_after_s: int) -> Response: ...

    def error_code(self) -> Response: ...

    def server_error(self) -> Response: ...

    def api_off(self) -> Response: ...

    def permission_denied(self) -> Response: ...


def parse_header(value: str) -> dict:
    """`rate_limit=2,schema_drift=new_field,api_off=true` -> typed FaultConfig fields."""
    types = {f.name: f.type for f in fields(FaultConfig)}
    out: dict = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        key, _, raw = part.partition("=")
        if key not in types:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(types)}")
        kind = types[key]
        if kind in ("bool", bool):
            out[key] = raw.lower() in ("1", "true", "yes", "on", "")
        elif kind in ("int", int):
            out[key] = int(raw or 1)
        elif kind in ("float", float):
            out[key] = float(raw)
        else:
            out[key] = raw
    return out


class FaultBook:
    """Fault settings of every platform, plus counters of what fired."""

    def __init__(self, initial: dict[str, dict] | None = None):
        self._lock = threading.Lock()
        self._config: dict[str, FaultConfig] = {}
        self._data_requests: dict[str, int] = {}
        self.fired: dict[str, dict[str, int]] = {}
        for platform, values in (initial or {}).items():
            self.set(platform, **values)

    def get(self, platform: str) -> FaultConfig:
        with self._lock:
            return self._config.setdefault(platform, FaultConfig())

    def set(self, platform: str, **values) -> FaultConfig:
        with self._lock:
            current = asdict(self._config.get(platform, FaultConfig()))
            current.update(values)
            self._config[platform] = FaultConfig(**current)
            if "expire_tokens_after" in values:
                self._data_requests[platform] = 0
            return self._config[platform]

    def clear(self, platform: str | None = None) -> None:
        with self._lock:
            if platform is None:
                self._config.clear()
                self.fired.clear()
            else:
                self._config.pop(platform, None)
                self.fired.pop(platform, None)

    def _fire(self, platform: str, kind: str) -> None:
        self.fired.setdefault(platform, {}).setdefault(kind, 0)
        self.fired[platform][kind] += 1

    def take(self, platform: str, kind: str) -> bool:
        """Consume one count of a counted fault; True if it fires now."""
        with self._lock:
            cfg = self._config.get(platform)
            if cfg is None or getattr(cfg, kind) <= 0:
                return False
            setattr(cfg, kind, getattr(cfg, kind) - 1)
            self._fire(platform, kind)
            return True

    def count_data_request(self, platform: str) -> bool:
        """Count a data request; True when tokens must expire now (once)."""
        with self._lock:
            cfg = self._config.get(platform)
            if cfg is None or cfg.expire_tokens_after <= 0:
                return False
            n = self._data_requests.get(platform, 0) + 1
            self._data_requests[platform] = n
            if n >= cfg.expire_tokens_after:
                cfg.expire_tokens_after = 0
                self._fire(platform, "expire_tokens")
                return True
            return False

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "config": {p: asdict(c) for p, c in self._config.items()},
                "fired": {p: dict(f) for p, f in self.fired.items()},
            }


def gate(
    state, platform: str, request: Request, errors: PlatformErrors, data_request: bool = True
) -> Response | None:
    """Run before a platform handler: returns the fault response to send, or None.

    Token expiry mid-sync is applied here too: tokens are revoked and the handler's own
    token check then answers in the platform's style.
    """
    book: FaultBook = state.faults
    header = request.headers.get("x-sandbox-fault")
    if header:
        book.set(platform, **parse_header(header))
    cfg = book.get(platform)
    if cfg.slow_s > 0:
        time.sleep(cfg.slow_s)
    if cfg.api_off:
        book._fire(platform, "api_off")
        return errors.api_off()
    if cfg.permission_denied:
        book._fire(platform, "permission_denied")
        return errors.permission_denied()
    if book.take(platform, "hang"):
        time.sleep(cfg.hang_s)
        return errors.server_error()
    if book.take(platform, "rate_limit"):
        return errors.rate_limited(cfg.retry_after_s)
    if book.take(platform, "server_errors"):
        return errors.server_error()
    if book.take(platform, "error_codes"):
        return errors.error_code()
    if data_request and book.count_data_request(platform):
        state.tokens.revoke_all(platform)
    return None


# -- record-level faults: platforms call these on the rows of a page ----------------------
def _hit(ids, share: float) -> np.ndarray:
    """A deterministic pseudo-random share of rows, chosen by id (stable across calls)."""
    h = (np.asarray(ids, dtype=np.int64) * 2654435761) % 1000
    return h < int(share * 1000)


def apply_late(state, platform: str, frame, id_col: str, time_col: str, share: float = 0.1):
    """With `late_updates`, a share of recent rows is not visible yet: they show up
    `late_by_s` after they happened, so only a re-read of a past window finds them."""
    cfg = state.faults.get(platform)
    if not cfg.late_updates or frame.empty:
        return frame
    recent = frame[time_col] > state.now() - pd.Timedelta(seconds=cfg.late_by_s)
    late = recent.to_numpy() & _hit(frame[id_col].to_numpy(), share)
    return frame[~late]


def page_with_duplicates(state, platform: str, rows: list, offset: int, size: int) -> list:
    """Rows [offset, offset + size) of `rows`, preceded by `duplicate_rows` rows of the
    previous page when that fault is on (as platforms do when data shifts under paging)."""
    dup = state.faults.get(platform).duplicate_rows
    start = max(0, offset - dup) if offset > 0 else 0
    if dup and offset > 0:
        state.faults._fire(platform, "duplicate_rows")
    return rows[start : offset + size]


def drift(state, platform: str, records: list[dict], required_key: str, typed_key: str) -> list[dict]:
    """Schema drift on a page of records (dicts in the platform's own shape):
    new_field adds a field to every record; missing_field drops `required_key` from a
    share of records; changed_type turns `typed_key` into a string in a share."""
    cfg = state.faults.get(platform)
    if not cfg.schema_drift or not records:
        return records
    state.faults._fire(platform, "schema_drift")
    if cfg.schema_drift == "new_field":
        return [{**r, "sandbox_new_field": "added-by-drift"} for r in records]
    every = max(1, round(1 / cfg.drift_share)) if cfg.drift_share > 0 else len(records) + 1
    out = []
    for i, r in enumerate(records):
        r = dict(r)
        if i % every == 0:
            if cfg.schema_drift == "missing_field":
                r.pop(required_key, None)
            elif cfg.schema_drift == "changed_type" and typed_key in r:
                r[typed_key] = str(r[typed_key])
        out.append(r)
    return out
