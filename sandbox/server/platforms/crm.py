"""The company's own CRM / order system, served under `/crm` (sandbox of an internal API).

Customer service platforms know a customer only by their platform id; orders and the
mapping between a person's identities live in the company's CRM. This module serves the
simulation's customers, identities and orders the way a typical internal REST service
does, so the warehouse can join one person across platforms and compute value tiers.

Endpoints (JSON; `Authorization: Bearer <api_key>`, else HTTP 401):
- `GET /api/v1/customers?cursor=&page_size=` -> `{data: [{customer_id, union_id, phone_hash,
  created_at}], next_cursor, has_more}`. The CRM never exposes names or phone numbers in
  clear; `phone_hash` is the unsalted SHA-256 of the phone number the CRM keeps.
- `GET /api/v1/identities?cursor=&page_size=` -> `{data: [{customer_id, channel,
  platform_user_id}], ...}`: the CRM mapping feed (which platform ids are one person).
- `GET /api/v1/orders?since=&until=&cursor=&page_size=` -> `{data: [{order_id, customer_id,
  channel, ordered_at, amount_cny, status}], ...}`; `since`/`until` are ISO-8601 times,
  `ordered_at` is ISO-8601 UTC. Only orders placed by the simulated clock are visible.

Paging: `page_size` 1..5000 (default 1000); `next_cursor` is opaque; stop when `has_more`
is false. Errors: `{"error": {"code", "message"}}` with HTTP 400/401/403/429/5xx.
Faults: rate_limit -> 429 + Retry-After; error_codes / server_errors / hang -> 503/500;
api_off -> 503 `service_disabled`; permission_denied -> 403; duplicate_rows, schema_drift
(missing `customer_id` / `order_id`, `amount_cny` as a string) apply to pages.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.server.faults import drift, gate

PLATFORM = "crm"


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class _Errors:
    def rate_limited(self, retry_after_s: int) -> Response:
        return _error(429, "rate_limited", "too many requests", {"Retry-After": str(retry_after_s)})

    def error_code(self) -> Response:
        return _error(503, "busy", "service busy, retry later")

    def server_error(self) -> Response:
        return _error(500, "internal", "internal error")

    def api_off(self) -> Response:
        return _error(503, "service_disabled", "the CRM API is switched off")

    def permission_denied(self) -> Response:
        return _error(403, "forbidden", "this API key may not read this resource")


def _iso(ts: pd.Series) -> list:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise ValueError("invalid cursor") from exc


def router(state) -> APIRouter:
    api = APIRouter()
    errors = _Errors()
    data = state.data
    orders = data["orders"].sort_values(["ordered_at", "order_id"]).reset_index(drop=True)
    first_order = orders.groupby("customer_id")["ordered_at"].min()
    start = pd.Timestamp(data.config["start"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    customers = data["customers"][["customer_id", "union_id", "phone_hash"]].copy()
    created = customers["customer_id"].map(first_order)
    customers["created_at"] = created.fillna(start - pd.Timedelta(days=400)).astype("datetime64[ms, UTC]")
    customers = customers.sort_values(["created_at", "customer_id"]).reset_index(drop=True)
    identities = data["identities"].sort_values(["customer_id", "channel"]).reset_index(drop=True)

    def guarded(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {state.credentials[PLATFORM]['api_key']}":
            return _error(401, "unauthorized", "missing or invalid API key")
        return gate(state, PLATFORM, request, errors)

    def page(request: Request, frame: pd.DataFrame, to_records, required: str, typed: str) -> Response:
        try:
            offset = _offset(request.query_params.get("cursor"))
            size = int(request.query_params.get("page_size", 1000))
        except ValueError:
            return _error(400, "bad_request", "cursor or page_size is invalid")
        if not 1 <= size <= 5000:
            return _error(400, "bad_request", "page_size must be within 1..5000")
        dup = state.faults.get(PLATFORM).duplicate_rows
        start = max(0, offset - dup) if offset > 0 else 0
        if dup and offset > 0:
            state.faults._fire(PLATFORM, "duplicate_rows")
        rows = drift(state, PLATFORM, to_records(frame.iloc[start : offset + size]), required, typed)
        nxt = offset + size
        more = nxt < len(frame)
        return JSONResponse({"data": rows, "next_cursor": _cursor(nxt) if more else None, "has_more": more})

    def customer_records(frame: pd.DataFrame) -> list[dict]:
        out = frame.assign(created_at=_iso(frame["created_at"]))
        return out.to_dict("records")

    def order_records(frame: pd.DataFrame) -> list[dict]:
        out = frame.assign(ordered_at=_iso(frame["ordered_at"]), amount_cny=frame["amount_cny"].astype(float))
        return out.to_dict("records")

    @api.get("/api/v1/customers")
    def get_customers(request: Request) -> Response:
        refused = guarded(request)
        if refused is not None:
            return refused
        visible = customers[customers["created_at"] <= state.now()]
        return page(request, visible, customer_records, "customer_id", "created_at")

    @api.get("/api/v1/identities")
    def get_identities(request: Request) -> Response:
        refused = guarded(request)
        if refused is not None:
            return refused
        return page(request, identities, lambda f: f.to_dict("records"), "customer_id", "channel")

    @api.get("/api/v1/orders")
    def get_orders(request: Request) -> Response:
        refused = guarded(request)
        if refused is not None:
            return refused
        try:
            since = pd.Timestamp(request.query_params.get("since", "1970-01-01T00:00:00Z"))
            until = pd.Timestamp(request.query_params.get("until", "2100-01-01T00:00:00Z"))
        except ValueError:
            return _error(400, "bad_request", "since/until must be ISO-8601 times")
        since = since.tz_localize("UTC") if since.tzinfo is None else since
        until = min(until.tz_localize("UTC") if until.tzinfo is None else until, state.now())
        times = orders["ordered_at"].to_numpy("datetime64[ms]").astype("int64")
        lo = int(np.searchsorted(times, since.value // 10**6, "left"))
        hi = int(np.searchsorted(times, until.value // 10**6, "right"))
        return page(request, orders.iloc[lo:hi], order_records, "order_id", "amount_cny")

    return api
