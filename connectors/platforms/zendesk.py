"""Zendesk Support connector (e-mail tickets).

Docs: https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
(Incremental Ticket Export, cursor based),
https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/ (List Comments),
https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/,
https://developer.zendesk.com/api-reference/ticketing/users/users/ (List Users, role[]=agent&role[]=admin),
https://developer.zendesk.com/api-reference/introduction/pagination/ (cursor pagination),
https://developer.zendesk.com/api-reference/introduction/rate-limits/ (429 + Retry-After),
https://developer.zendesk.com/api-reference/introduction/security-and-auth/ (API token).

- Auth: HTTP Basic `{email}/token:{api_token}`. API tokens do not expire: a 401 is a wrong
  email or token (fatal, with what to check), never a refresh.
- tickets: `GET /api/v2/incremental/tickets/cursor.json`, first `start_time` (unix s, the
  window start), then `cursor=<after_cursor>` (stored exactly as received); stop ONLY on
  `end_of_stream` - one call scans a limited stretch of change time, so a page can be short
  or even empty while more follows. A changed ticket comes back with its new state: the key
  is (`id`, `updated_at`), so every version is a raw row and staging keeps the latest.
  Changes from the last minute are held back by Zendesk (they come on the next run).
- messages (ticket comments), by the setting `comments_mode`:
  - `per_ticket` (default; the only way on real Zendesk): walk the same ticket export with
    this stream's own cursor and read `GET /api/v2/tickets/{id}/comments.json` (cursor
    pagination, `page[size]` 100) for every ticket on the page. All comments of a changed
    ticket are read again; the loader drops the identical repeats. A ticket deleted in the
    meantime (404 RecordNotFound) is skipped with a log line.
  - `bulk`: `GET /api/v2/sandbox/incremental/comments/cursor.json` - a SANDBOX EXTENSION,
    not a Zendesk API: every comment with its `ticket_id`, paged like the ticket export
    (server cursor, `end_of_stream`). Real Zendesk answers 404 there.
  Comments are the customer's and the agents' messages; Zendesk has no system events among
  them (assignment and solving show on the ticket). Zendesk's comment has no ticket id, so
  `ticket_id` is added to each comment read per ticket (the bulk export carries it already).
- ticket_events: `GET /api/v2/incremental/ticket_events.json?start_time=` (Incremental Ticket Event
  Export, time based): the ticket audits, each with its `child_events`; the warehouse reads the
  `assignee_id` changes (assign, transfer) and the `status` changes (solved = close, solved ->
  open = reopen) from them, since a ticket's own record shows only its current state. Paged by
  time: the next `start_time` is the answer's `end_time` (stored as the cursor exactly as
  received); stop on `end_of_stream`. Items of the `end_time` second come again on the next
  page (the key `id` de-duplicates them); more than `per_page` items within one second cannot be
  paged past, which is a clear error (raise `page_size`, up to 1000). Admins only.
- satisfaction_ratings: `GET /api/v2/satisfaction_ratings.json?start_time&end_time` (filters
  `created_at`, unix s) in windows of at most a day with a 1 h look-back for late ratings,
  cursor pagination (`page[size]` 100, `page[after]` = `meta.after_cursor`, `meta.has_more`).
  Scores good/bad (two-point CSAT).
- agents: `GET /api/v2/users.json?role[]=agent&role[]=admin` snapshot (admins answer tickets too;
  the warehouse tells an agent's comment from a customer's by these users), cursor pagination;
  key `id`, time `updated_at` (a changed user is a new version).
- Errors: HTTP 429 and 503 are retried honouring Retry-After, 5xx and timeouts with backoff;
  403 (`APIAccessDisabled`, `Forbidden`) means unavailable -> the console scraper takes the
  streams it has a report for (messages, satisfaction_ratings); 401, 400, 422 are fatal.

Settings (platforms.zendesk): `base_url` (or `subdomain` -> https://<subdomain>.zendesk.com),
`email`, `api_token`, optional `comments_mode` (per_ticket | bulk), `page_size`; the console
fallback reads `console_url`, `console_username`, `console_password`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator

import requests

from connectors.core.auth import BasicAuth
from connectors.core.config import ConfigError
from connectors.core.http import ApiUnavailable, Classified, FatalApiError, HttpClient, Verdict, parsed_json
from connectors.core.runner import PlatformConnector
from connectors.core.streams import Page, Stream, Window

log = logging.getLogger("connectors.zendesk")

DOC = "https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/"
MAX_EXPORT_PAGE = 1000  # per_page of the incremental exports
MAX_LIST_PAGE = 100  # page[size] of cursor-paginated lists
COMMENTS_MODES = ("per_ticket", "bulk")
TICKET_EXPORT = "incremental/tickets/cursor.json"
TICKET_EVENTS = "incremental/ticket_events.json"  # time-based
BULK_COMMENTS = "sandbox/incremental/comments/cursor.json"  # sandbox extension
UNAVAILABLE_ERRORS = {"APIAccessDisabled", "Forbidden"}
# streams the admin console has a report of the API's record shape for (fallback)
CONSOLE_REPORTS = {"messages": "messages", "satisfaction_ratings": "ratings"}

STREAMS = {
    "tickets": Stream(
        platform="zendesk",
        name="tickets",
        primary_key=("id", "updated_at"),
        time_field="updated_at",
        time_format="iso",
        cursor="server_cursor",
        doc=DOC,
        freshness="real_time",
        description="Tickets (conversations) from the incremental export; one row per version.",
    ),
    "messages": Stream(
        platform="zendesk",
        name="messages",
        primary_key=("id",),
        time_field="created_at",
        time_format="iso",
        cursor="server_cursor",
        doc="https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/",
        freshness="real_time",
        required=("ticket_id",),
        description="Ticket comments (customer and agent messages) with their ticket_id.",
    ),
    "ticket_events": Stream(
        platform="zendesk",
        name="ticket_events",
        primary_key=("id",),
        time_field="created_at",
        time_format="iso",
        cursor="server_cursor",
        doc=DOC + "#incremental-ticket-event-export",
        freshness="real_time",
        required=("ticket_id",),
        description="Ticket audits with their child events: assignee and status changes (assign, "
        "transfer, solve, reopen).",
    ),
    "satisfaction_ratings": Stream(
        platform="zendesk",
        name="satisfaction_ratings",
        primary_key=("id",),
        time_field="created_at",
        time_format="iso",
        cursor="time_window",
        doc="https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        description="CSAT ratings (good/bad) by creation time.",
    ),
    "agents": Stream(
        platform="zendesk",
        name="agents",
        primary_key=("id",),
        time_field="updated_at",
        time_format="iso",
        cursor="snapshot",
        doc="https://developer.zendesk.com/api-reference/ticketing/users/users/",
        freshness="hourly",
        description="Agent and admin users (users.json?role[]=agent&role[]=admin), a snapshot per run.",
    ),
}


def _error_name(response: requests.Response) -> str:
    try:
        body = parsed_json(response)
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # some endpoints nest it: {"error": {"title": ..., "message": ...}}
        error = error.get("title")
    return error if isinstance(error, str) else ""


def classify(response: requests.Response) -> Classified:
    code = response.status_code
    retry_after = response.headers.get("Retry-After")
    wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
    if code == 429 or code >= 500:
        return Classified(Verdict.RETRY, f"HTTP {code}", wait)
    if code == 401:
        return Classified(
            Verdict.FATAL,
            "HTTP 401 Couldn't authenticate: check platforms.zendesk.email and api_token (an API token "
            "does not expire; it may have been deleted in Admin Center > Apps and integrations > APIs)",
        )
    error = _error_name(response)
    if code == 403:
        if error in UNAVAILABLE_ERRORS:
            return Classified(Verdict.UNAVAILABLE, f"HTTP 403 {error}")
        return Classified(Verdict.FATAL, f"HTTP 403 {error or response.text[:200]}")
    if code == 404:
        if error == "RecordNotFound":
            return Classified(Verdict.OK)  # a deleted ticket: the caller skips it
        return Classified(
            Verdict.FATAL,
            f"HTTP 404 {error}: no such endpoint - check base_url/subdomain; comments_mode: bulk works "
            "only against the sandbox (real Zendesk: per_ticket)",
        )
    if code >= 400:
        return Classified(Verdict.FATAL, f"HTTP {code} {error}: {response.text[:200]}")
    try:
        parsed_json(response)
    except ValueError:
        return Classified(Verdict.RETRY, "body is not JSON")
    return Classified(Verdict.OK)


def _ceil_s(ts) -> int:
    return math.ceil(ts.timestamp())


class Connector(PlatformConnector):
    name = "zendesk"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        base = config.get("base_url") or f"https://{config.require('subdomain')}.zendesk.com"
        self.base = f"{base.rstrip('/')}/api/v2"
        email, token = config.require("email"), config.require("api_token")
        self.comments_mode = str(config.get("comments_mode") or "per_ticket")
        if self.comments_mode not in COMMENTS_MODES:
            raise ConfigError(
                f"platforms.zendesk.comments_mode is {self.comments_mode!r}; use per_ticket (real Zendesk) "
                "or bulk (the sandbox's bulk comments export)"
            )
        self.http = HttpClient("zendesk", BasicAuth(f"{email}/token", token), classify, self.policy)
        self._scraper = None

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        if stream.name == "tickets":
            yield from self._export(TICKET_EXPORT, "tickets", cursor, window, self.page_size(MAX_EXPORT_PAGE))
        elif stream.name == "ticket_events":
            yield from self._time_export(TICKET_EVENTS, "ticket_events", cursor, window)
        elif stream.name == "messages":
            if self.comments_mode == "bulk":
                yield from self._export(
                    BULK_COMMENTS, "comments", cursor, window, self.page_size(MAX_EXPORT_PAGE)
                )
            else:
                yield from self._comments_per_ticket(cursor, window)
        elif stream.name == "satisfaction_ratings":
            params = {"start_time": int(window.since.timestamp()), "end_time": _ceil_s(window.until)}
            yield from self._list("satisfaction_ratings.json", "satisfaction_ratings", params)
        elif stream.name == "agents":
            # admins answer tickets too: the warehouse tells agent comments by these authors
            yield from self._list("users.json", "users", {"role[]": ["agent", "admin"]})
        else:
            raise KeyError(stream.name)

    def scraper(self):
        """The admin console, for the streams it has a report of the API's shape for."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers.console import console_scraper_for

            self._scraper = ConsoleFallback(console_scraper_for("zendesk", self.config, CONSOLE_REPORTS))
        return self._scraper

    # -- incremental exports (server cursor, stop on end_of_stream) ------------------------------
    def _export(self, path: str, key: str, cursor, window: Window, per_page: int) -> Iterator[Page]:
        url = f"{self.base}/{path}"
        while True:
            params = {"cursor": cursor} if cursor else {"start_time": int(window.since.timestamp())}
            body = self.http.json("GET", url, params={**params, "per_page": per_page})
            items = body.get(key)
            if not isinstance(items, list) or "end_of_stream" not in body:
                raise FatalApiError(
                    f"zendesk: {path} answered without `{key}`/`end_of_stream` (keys: {sorted(body)[:8]})"
                )
            after = body.get("after_cursor")
            done = bool(body["end_of_stream"])
            if not done and (not after or (after == cursor and not items)):
                raise FatalApiError(
                    f"zendesk: {path} did not advance (after_cursor {after!r}) before its end"
                )
            cursor = after or cursor
            # an empty page before the end only skips a quiet stretch: nothing to land
            if items or done:
                yield Page(items, cursor, done=done)
            if done:
                return

    def _time_export(self, path: str, key: str, cursor, window: Window) -> Iterator[Page]:
        """A time-based incremental export: `start_time` -> `end_time`, until `end_of_stream`."""
        url = f"{self.base}/{path}"
        start = int(cursor) if cursor is not None else int(window.since.timestamp())
        per_page = self.page_size(MAX_EXPORT_PAGE)
        while True:
            params = {"start_time": start, **({"per_page": per_page} if per_page < MAX_EXPORT_PAGE else {})}
            body = self.http.json("GET", url, params=params)
            items = body.get(key)
            if not isinstance(items, list) or "end_of_stream" not in body:
                raise FatalApiError(
                    f"zendesk: {path} answered without `{key}`/`end_of_stream` (keys: {sorted(body)[:8]})"
                )
            done = bool(body["end_of_stream"])
            end = body.get("end_time")
            end = int(end) if end is not None else start
            if not done and end <= start:
                raise FatalApiError(
                    f"zendesk: {path} returned a full page within one second ({start}) and cannot page "
                    f"past it; raise platforms.zendesk.page_size (per_page, now {per_page}) up to "
                    f"{MAX_EXPORT_PAGE}"
                )
            yield Page(items, end, done=done)
            if done:
                return
            start = end

    def _comments_per_ticket(self, cursor, window: Window) -> Iterator[Page]:
        per_page = self.page_size(MAX_LIST_PAGE)  # tickets per batch: one comments call each
        for page in self._export(TICKET_EXPORT, "tickets", cursor, window, per_page):
            comments: list[dict] = []
            seen: set[int] = set()
            for ticket in page.records:
                try:
                    tid = int(ticket["id"])
                except (KeyError, TypeError, ValueError):
                    log.warning("zendesk: a ticket without a usable id on the export page; skipped")
                    continue
                if tid not in seen:
                    seen.add(tid)
                    comments.extend(self._ticket_comments(tid))
            yield Page(comments, page.cursor_after, done=page.done)

    def _ticket_comments(self, ticket_id: int) -> list[dict]:
        out: list[dict] = []
        params: dict = {"page[size]": self.page_size(MAX_LIST_PAGE)}
        url = f"{self.base}/tickets/{ticket_id}/comments.json"
        while True:
            body = self.http.json("GET", url, params=params)
            if body.get("error") == "RecordNotFound":
                log.info("zendesk: ticket %s no longer exists (deleted); its comments are skipped", ticket_id)
                return out
            out.extend({**c, "ticket_id": ticket_id} for c in body.get("comments", []))
            meta = body.get("meta") or {}
            if not meta.get("has_more"):
                return out
            params = {**params, "page[after]": meta["after_cursor"]}

    # -- cursor-paginated lists ---------------------------------------------------------------
    def _list(self, path: str, key: str, params: dict) -> Iterator[Page]:
        url = f"{self.base}/{path}"
        params = {**params, "page[size]": self.page_size(MAX_LIST_PAGE)}
        while True:
            body = self.http.json("GET", url, params=params)
            items = body.get(key)
            if not isinstance(items, list):
                raise FatalApiError(f"zendesk: {path} answered without `{key}` (keys: {sorted(body)[:8]})")
            meta = body.get("meta") or {}
            more = bool(meta.get("has_more"))
            yield Page(items, None, done=not more)
            if not more:
                return
            params = {**params, "page[after]": meta["after_cursor"]}


class ConsoleFallback:
    """The console scraper for `CONSOLE_REPORTS`; other streams stay unavailable, with a
    message that says so (tickets, ticket events and users have no console report in the
    API's shape)."""

    def __init__(self, scraper):
        self.scraper = scraper

    def fetch(self, stream: Stream, window: Window, cursor=None) -> Iterator[Page]:
        if stream.name not in CONSOLE_REPORTS:
            raise ApiUnavailable(
                f"zendesk.{stream.name}: the API is unavailable (switched off or forbidden) and the console "
                "has no report in this stream's shape; turn API access on again (Admin Center > Apps and "
                "integrations > APIs > Zendesk API) and re-run - the cursor is unchanged"
            )
        return self.scraper.fetch(stream, window, cursor)
