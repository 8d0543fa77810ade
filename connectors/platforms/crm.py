"""The company's CRM / order system: customers, the identity mapping feed, orders.

Not a customer-service platform, but the warehouse needs it: one person writes on
several platforms under different ids, and value tiers come from orders. The sandbox
serves a typical internal REST API (`sandbox/server/platforms/crm.py`); point `base_url`
and `api_key` at your own CRM service, or replace this module with a reader of your
CRM's export with the same streams.

- customers: snapshot (`/api/v1/customers`), key customer_id.
- identities: snapshot (`/api/v1/identities`), key customer_id + channel + platform_user_id.
- orders: time windows on `ordered_at` (`/api/v1/orders?since&until`), 90-day chunks,
  2 years on the first sync, look-back 1 day for late corrections.
Auth: `Authorization: Bearer <api_key>`. Settings: `base_url`, `api_key`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from connectors.core.auth import Authenticator
from connectors.core.http import HttpClient, register_secret
from connectors.core.runner import PlatformConnector
from connectors.core.streams import Page, Stream, Window

DOC = "sandbox/server/platforms/crm.py (the company's internal API)"

STREAMS = {
    "customers": Stream(
        "crm",
        "customers",
        ("customer_id",),
        "created_at",
        "iso",
        "snapshot",
        DOC,
        freshness="hourly",
        description="CRM customers (no names or phone numbers in clear).",
    ),
    "identities": Stream(
        "crm",
        "identities",
        ("customer_id", "channel", "platform_user_id"),
        None,  # a mapping has no time of its own
        "iso",
        "snapshot",
        DOC,
        freshness="hourly",
        description="Which platform ids belong to one CRM customer.",
    ),
    "orders": Stream(
        "crm",
        "orders",
        ("order_id",),
        "ordered_at",
        "iso",
        "time_window",
        DOC,
        freshness="hourly",
        max_window=dt.timedelta(days=90),
        lookback=dt.timedelta(days=1),
        initial_history=dt.timedelta(days=730),
        description="Orders (value tiers).",
    ),
}


class _BearerKey(Authenticator):
    def __init__(self, key: str):
        register_secret(key)
        self._key = key

    def prepare(self, method, url, kwargs):
        headers = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {self._key}"}
        return method, url, {**kwargs, "headers": headers}


class Connector(PlatformConnector):
    name = "crm"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        self.http = HttpClient("crm", _BearerKey(config.require("api_key")), policy=self.policy)

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        path = {"customers": "customers", "identities": "identities", "orders": "orders"}[stream.name]
        params: dict = {"page_size": self.page_size(5000)}
        if stream.name == "orders":
            params.update(since=window.since.isoformat(), until=window.until.isoformat())
        page_cursor = None
        while True:
            if page_cursor:
                params["cursor"] = page_cursor
            body = self.http.json("GET", f"{self.base}/api/v1/{path}", params=params)
            page_cursor = body.get("next_cursor")
            done = not body.get("has_more")
            yield Page(body.get("data", []), None, done=done)
            if done:
                return
