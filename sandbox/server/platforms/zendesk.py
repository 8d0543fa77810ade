"""Zendesk Support (e-mail tickets), served under `/zendesk`.

Documentation followed:
- incremental export: https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
  (Incremental Ticket Export, Cursor Based; Incremental Ticket Event Export) and the Tickets JSON
  format table
- comments: https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/
- satisfaction: https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/
- users: https://developer.zendesk.com/api-reference/ticketing/users/users/
- auth: https://developer.zendesk.com/api-reference/introduction/security-and-auth/
- paging: https://developer.zendesk.com/api-reference/introduction/pagination/
- rate limits: https://developer.zendesk.com/api-reference/introduction/rate-limits/

Auth: HTTP Basic with `{email}/token:{api_token}` (API token). Anything else: HTTP 401
`{"error": "Couldn't authenticate you"}`.

Endpoints (JSON; times ISO-8601 UTC `...Z`, `start_time`/`end_time`/`generated_timestamp` unix seconds):
- `GET /api/v2/incremental/tickets/cursor.json?start_time=|cursor=[&per_page=]` -> `{tickets, after_url,
  after_cursor, before_url, before_cursor, end_of_stream}`; `per_page` 1..1000 (default 1000).
- `GET /api/v2/incremental/ticket_events.json?start_time=[&per_page=]` -> `{ticket_events, next_page,
  count, end_time, end_of_stream}` (Incremental Ticket Event Export, time based): one audit
  `{id, ticket_id, timestamp, created_at, updater_id, via, system, event_type: "Audit", child_events,
  merged_ticket_ids}` per assign / transfer / close / reopen of the simulation, whose `Change`
  children carry `assignee_id` or `status` with `previous_value`. Items with `timestamp` >=
  start_time; `end_time` = the last item's second (the next page starts there, so its items repeat);
  `start_time` within the last minute -> 400. Only these audits are served (no creation, comment or
  rating audits; `include=comment_events` is ignored).
- `GET /api/v2/tickets/{id}/comments.json` -> `{comments, next_page, previous_page, count}`; 404
  `{"error": "RecordNotFound", ...}` for a ticket that does not exist (yet).
- `GET /api/v2/satisfaction_ratings.json[?score=&start_time=&end_time=]` -> `{satisfaction_ratings,
  next_page, previous_page, count}`; `score` received|good|bad (offered/unoffered ratings are not
  listed); `start_time`/`end_time` filter `created_at`.
- `GET /api/v2/users.json?role=agent` -> `{users, next_page, previous_page, count}`. Only agents are
  served (role=end-user returns an empty list; requesters are known by id from the tickets).
- `GET /api/v2/sandbox/incremental/comments/cursor.json?start_time=|cursor=[&per_page=]` ->
  `{comments, after_url, after_cursor, before_url, before_cursor, end_of_stream}`: **sandbox
  extension, not a Zendesk API.** Every comment of every ticket in creation order, each with its
  `ticket_id`, paged exactly like the ticket export, so a bulk load needs no request per ticket.

Paging of the list endpoints (comments, ratings, users), as Zendesk does it: offset paging by default
(`page` from 1, `per_page` 1..100, `next_page`/`previous_page` are full URLs or null, `count` the
total), or cursor paging when `page[size]` (1..100) is given: `page[after]=<meta.after_cursor>`,
answered as `{<items>, meta: {has_more, after_cursor, before_cursor}, links: {prev, next}}`.

Incremental export (tickets and the sandbox comments export):
- Tickets are ordered by the time they were last generated: `updated_at` (the conversation's as
  known at the simulated clock, bumped by a satisfaction rating, as a rating updates a ticket) and
  then id. A ticket updated after you read it comes back on a later page with its new state, so
  de-duplicate on `id` keeping the latest `updated_at`.
- The first call takes `start_time` (inclusive); each next call takes `cursor=<after_cursor>` (or
  follows `after_url`). Items changed in the last minute are held back.
- **Stop on `end_of_stream: true`, never on a short or empty page.** Each call scans at most six
  hours of change time: a page can be short while more follows, and after a quiet stretch longer
  than six hours a page comes back empty with `end_of_stream: false` and a cursor past the gap.
- At the end of the stream `after_cursor` still points at the last item; poll it later for changes.

Ticket mapping: `id` = the conversation, `status` new (not yet assigned) | open | solved (closed),
`requester_id`/`submitter_id` the customer, `assignee_id` the agent holding it now (a Zendesk user id,
see users.json), `via.channel` "email", `subject`/`description` the first customer message, `tags`
[topic], `satisfaction_rating` {score good|bad, id, comment, reason, reason_id} once rated, else
{score: offered} after solving, {score: unoffered} before. Ratings are two-point: CSAT 4-5 -> good,
1-3 -> bad. NPS is not served (Zendesk's NPS surveys are retired). Comments: customer and agent
messages (`author_id` the requester or the agent), all public; system events are not comments.

Faults (`FaultConfig` field -> what a client sees here):
- rate_limit: HTTP 429, text/plain "Number of allowed API requests per minute exceeded",
  `Retry-After: <retry_after_s>`, `X-Rate-Limit: 700`, `X-Rate-Limit-Remaining: 0`.
- error_codes: HTTP 503 with `Retry-After` and `{"error": "ServiceUnavailable", ...}` (retryable).
- server_errors / hang: HTTP 500 `{"error": "InternalError", ...}` (after `hang_s` for hang).
- expire_tokens_after: no effect: API tokens do not expire (a wrong token is a 401, not retryable).
- duplicate_rows: pages after the first start with that many items of the previous page (the page
  stays within `per_page`).
- late_updates: ~10 % of changes (tickets, ticket events, comments, ratings) become visible
  `late_by_s` after they happened; in the incremental exports they are generated late, so they come
  after the cursor and `generated_timestamp` (ticket events: `timestamp`) shows when; list endpoints
  show them once they arrive.
- schema_drift: new_field adds `sandbox_new_field`; missing_field drops `updated_at` (tickets),
  `author_id` (comments), `ticket_id` (ticket events) or `score` (ratings) from a share;
  changed_type turns `id` (tickets, comments, ticket events) or `ticket_id` (ratings) into a string
  in a share.
- api_off: HTTP 403 `{"error": "APIAccessDisabled", ...}`; permission_denied: HTTP 403
  `{"error": "Forbidden", ...}`.
"""

from __future__ import annotations

import base64
import binascii
import html
import threading

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sandbox.server.faults import _hit, apply_late, drift, gate, page_with_duplicates

PLATFORM = "zendesk"
MAX_EXPORT_PAGE = 1000
MAX_LIST_PAGE = 100
SCAN_MS = 6 * 3600 * 1000  # one export call scans at most this much change time
HOLD_BACK_MS = 60 * 1000  # items changed in the last minute are not exported yet
LATE_SHARE = 0.1
TICKET_EVENTS = ("assign", "transfer", "close", "reopen")  # what the ticket event export shows
AUDIT_ID_BASE = 10**9  # audit id = base + the simulation's message id (comments' audit_id alike)
CHILD_ID_BASE = 10**11  # child event id = base + 10 * message id + position
MAX_ID = 2**62
GROUP_ID = 360000001
BRAND_ID = 360000002
FORM_ID = 360000003
CUSTOM_STATUS = {"new": 1, "open": 2, "solved": 3}
VIA = {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}}
METADATA = {
    "system": {
        "client": "Mozilla/5.0",
        "ip_address": "203.0.113.10",
        "location": "Shanghai, 23, China",
        "latitude": 31.2222,
        "longitude": 121.4581,
    },
    "custom": {},
}


def _json(body, status: int = 200, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


class ZendeskErrors:
    """How Zendesk says each fault (see the module docstring)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        headers = {"Retry-After": str(retry_after_s), "X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0"}
        return PlainTextResponse("Number of allowed API requests per minute exceeded", 429, headers=headers)

    def error_code(self) -> Response:
        body = {"error": "ServiceUnavailable", "description": "Server temporarily unavailable, retry later."}
        return _json(body, 503, {"Retry-After": "1"})

    def server_error(self) -> Response:
        return _json({"error": "InternalError", "description": "Something went wrong on our side."}, 500)

    def api_off(self) -> Response:
        desc = "API access is disabled for this account. An admin can turn it on in Admin Center > Apps and integrations > APIs."
        return _json({"error": "APIAccessDisabled", "description": desc}, 403)

    def permission_denied(self) -> Response:
        desc = "You do not have access to this page. Please contact the account owner of this help desk for further help."
        return _json({"error": "Forbidden", "description": desc}, 403)


def encode_cursor(t_ms: int, item_id: int) -> str:
    """Zendesk-looking opaque cursor: base64 of `<seconds>.<ms>||<id>|`."""
    return base64.urlsafe_b64encode(f"{t_ms / 1000:.3f}||{item_id}|".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    t, _, rest = raw.partition("||")
    return round(float(t) * 1000), int(rest.strip("|"))


def _iso(values) -> list:
    """ISO-8601 `...Z` strings (None for NaT) from a datetime column."""
    s = pd.Series(values)
    return [v if isinstance(v, str) else None for v in s.dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()]


def _after(arr: np.ndarray, ids: np.ndarray, pos: tuple[int, int]) -> int:
    """Index of the first item after `pos` in arrays sorted by (arr, ids)."""
    lo = int(np.searchsorted(arr, pos[0], "left"))
    hi = int(np.searchsorted(arr, pos[0], "right"))
    return lo + int(np.searchsorted(ids[lo:hi], pos[1], "right"))


def export_window(arr: np.ndarray, ids: np.ndarray, pos: tuple[int, int], per_page: int, limit_ms: int):
    """One incremental-export page over items sorted by (arr, ids).

    Returns (start, stop, next_pos, end_of_stream): items [start, stop) are the page."""
    start = _after(arr, ids, pos)
    visible_end = int(np.searchsorted(arr, limit_ms, "right"))
    if start >= visible_end:
        return start, start, pos, True
    if arr[start] > pos[0] + SCAN_MS:  # a quiet stretch: an empty page that skips it
        return start, start, (int(arr[start]) - 1, MAX_ID), False
    window_end = int(np.searchsorted(arr, min(pos[0] + SCAN_MS, limit_ms), "right"))
    stop = min(window_end, start + per_page)
    return start, stop, (int(arr[stop - 1]), int(ids[stop - 1])), stop >= visible_end


def _agent_holder(messages: pd.DataFrame) -> pd.DataFrame:
    """Assign/transfer/reopen events (the agent who holds a ticket from then on), by time."""
    ev = messages[messages["event"].isin(["assign", "transfer", "reopen"])]
    return ev[["conversation_id", "sent_at", "agent_id"]].sort_values("sent_at", kind="stable")


def _with_author_agent(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages with `author_agent`: the agent who wrote an agent message; when the row has no
    agent id (seen in simulated data) the agent holding the ticket then."""
    m = messages.sort_values(["conversation_id", "sent_at", "seq"], kind="stable")
    setter = m["event"].isin(["assign", "transfer", "reopen"]).to_numpy()
    holder = pd.Series(np.where(setter, m["agent_id"].to_numpy(), np.nan), index=m.index)
    holder = holder.groupby(m["conversation_id"].to_numpy()).ffill().fillna(-1).astype(np.int64)
    own = m["agent_id"].to_numpy()
    return m.assign(author_agent=np.where(own >= 0, own, holder.to_numpy()))


def _ticket_changes(messages: pd.DataFrame) -> pd.DataFrame:
    """The ticket's audited changes: one row per assign / transfer / close / reopen event, with
    the agent holding the ticket before it (`prev_agent`, -1 for none), in (time, id) order."""
    m = messages.sort_values(["conversation_id", "sent_at", "seq"], kind="stable")
    conv = m["conversation_id"].to_numpy()
    setter = m["event"].isin(["assign", "transfer", "reopen"]).to_numpy()
    after = pd.Series(np.where(setter, m["agent_id"].to_numpy(), np.nan), index=m.index)
    after = after.groupby(conv).ffill()
    before = after.groupby(conv).shift(1).fillna(-1).astype(np.int64)
    changed = m["event"].isin(TICKET_EVENTS).to_numpy()
    ev = m[changed].assign(prev_agent=before[changed].to_numpy())
    ev = ev[["message_id", "conversation_id", "sent_at", "event", "agent_id", "prev_agent"]]
    return ev.sort_values(["sent_at", "message_id"], kind="stable").reset_index(drop=True)


def router(state) -> APIRouter:
    api = APIRouter()
    errors = ZendeskErrors()
    creds = state.credentials[PLATFORM]
    all_msgs = state.data["messages"]
    mine = all_msgs[all_msgs["channel"] == PLATFORM]
    holders = _agent_holder(mine)
    changes = _ticket_changes(mine)
    said = _with_author_agent(mine)
    said = said[said["sender_type"].isin(["customer", "agent"])]
    said = said.sort_values(["sent_at", "message_id"], kind="stable").reset_index(drop=True)
    author_of = said.set_index("message_id")["author_agent"]
    by_ticket = {k: np.asarray(v) for k, v in said.groupby("conversation_id").indices.items()}
    first_words = (
        said[said["sender_type"] == "customer"].groupby("conversation_id")["content"].first().astype(object)
    )
    all_ratings = state.data["ratings"]
    all_ratings = all_ratings[all_ratings["channel"] == PLATFORM].set_index("conversation_id")
    cache: dict[str, tuple] = {}
    lock = threading.Lock()

    def user_ids() -> pd.Series:
        acc = state.channel_accounts(PLATFORM)
        return pd.Series(acc["account_id"].astype(np.int64).to_numpy(), index=acc["agent_id"].to_numpy())

    def authorized(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        expected = f"{creds['email']}/token:{creds['api_token']}"
        try:
            given = base64.b64decode(value, validate=True).decode() if scheme.lower() == "basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            given = ""
        if given != expected:
            return _json(
                {"error": "Couldn't authenticate you"},
                401,
                {"WWW-Authenticate": 'Basic realm="Web Password"'},
            )
        return None

    def refuse(request: Request) -> Response | None:
        return gate(state, PLATFORM, request, errors) or authorized(request)

    def api_root(request: Request) -> str:
        path = request.url.path
        return f"{request.url.scheme}://{request.url.netloc}{path[: path.index('/api/v2')]}/api/v2"

    def late_ms() -> int:
        cfg = state.faults.get(PLATFORM)
        return cfg.late_by_s * 1000 if cfg.late_updates else 0

    def _cached(name: str, build):
        now = state.now()
        key = (now.value, late_ms())
        with lock:
            hit = cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = build(now, key[1])
        with lock:
            cache[name] = (key, value)
        return value

    # -- tickets ----------------------------------------------------------------------------
    def tickets_now():
        """Tickets as they stand at the clock, sorted by (generated ms, id), with arrays."""

        def build(now: pd.Timestamp, late: int):
            c = state.conversations(PLATFORM)
            r = all_ratings.reindex(c["conversation_id"].to_numpy())
            rated = (r["rated_at"] <= now).to_numpy()
            rated_at = r["rated_at"].set_axis(c.index).where(rated)
            c = c.assign(
                rating_id=np.where(rated, r["rating_id"].to_numpy(), -1),
                csat=np.where(rated, r["csat"].to_numpy(), -1),
            )
            # a rating updates its ticket
            c["updated_at"] = c["updated_at"].where(~(rated_at > c["updated_at"]), rated_at)
            c = apply_late(state, PLATFORM, c, "conversation_id", "updated_at")
            h = holders[holders["sent_at"] <= now].groupby("conversation_id")["agent_id"].last()
            c["assignee"] = c["conversation_id"].map(h).fillna(-1).astype(np.int64)
            upd = c["updated_at"].to_numpy("datetime64[ms]").astype(np.int64)
            ids = c["conversation_id"].to_numpy()
            arr = upd + late * _hit(ids, LATE_SHARE) if late else upd
            order = np.lexsort((ids, arr))
            c = c.iloc[order].reset_index(drop=True)
            return c, arr[order], ids[order]

        return _cached("tickets", build)

    def ticket_records(page: pd.DataFrame, arr: np.ndarray, root: str) -> list[dict]:
        if page.empty:
            return []
        users = user_ids()
        ids = page["conversation_id"].tolist()
        requester = page["platform_user_id"].astype(np.int64).tolist()
        assignee = [int(a) if a == a else None for a in users.reindex(page["assignee"].to_numpy()).tolist()]
        status = np.where(
            page["status"].to_numpy() == "closed",
            "solved",
            np.where(page["assigned_at"].isna(), "new", "open"),
        ).tolist()
        subject = first_words.reindex(page["conversation_id"].to_numpy()).fillna("").tolist()
        created = _iso(page["started_at"])
        updated = _iso(page["updated_at"])
        topic = page["topic"].astype(str).tolist()
        rating_id = page["rating_id"].astype(np.int64).tolist()
        csat = page["csat"].astype(np.int64).tolist()
        generated = (arr // 1000).tolist()
        out = []
        for i, tid in enumerate(ids):
            if rating_id[i] >= 0:
                sat = {
                    "score": "good" if csat[i] >= 4 else "bad",
                    "id": rating_id[i],
                    "comment": "",
                    "reason": None,
                    "reason_id": None,
                }
            else:
                sat = {"score": "offered" if status[i] == "solved" else "unoffered"}
            out.append(
                {
                    "url": f"{root}/tickets/{tid}.json",
                    "id": tid,
                    "external_id": None,
                    "via": VIA,
                    "created_at": created[i],
                    "updated_at": updated[i],
                    "type": "question",
                    "subject": subject[i],
                    "raw_subject": subject[i],
                    "description": subject[i],
                    "priority": "normal",
                    "status": status[i],
                    "recipient": f"support@{creds['subdomain']}.example",
                    "requester_id": requester[i],
                    "submitter_id": requester[i],
                    "assignee_id": assignee[i],
                    "organization_id": None,
                    "group_id": GROUP_ID,
                    "collaborator_ids": [],
                    "follower_ids": [],
                    "email_cc_ids": [],
                    "forum_topic_id": None,
                    "problem_id": None,
                    "has_incidents": False,
                    "is_public": True,
                    "due_at": None,
                    "tags": [topic[i]],
                    "custom_fields": [],
                    "satisfaction_rating": sat,
                    "sharing_agreement_ids": [],
                    "custom_status_id": CUSTOM_STATUS[status[i]],
                    "fields": [],
                    "followup_ids": [],
                    "ticket_form_id": FORM_ID,
                    "brand_id": BRAND_ID,
                    "allow_channelback": False,
                    "allow_attachments": True,
                    "from_messaging_channel": False,
                    "generated_timestamp": generated[i],
                }
            )
        return out

    def export(request: Request, name: str, path: str, frame_arr_ids, build_records, drift_keys) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        q = request.query_params
        try:
            per_page = int(q.get("per_page", MAX_EXPORT_PAGE))
            if q.get("cursor"):
                pos = decode_cursor(q["cursor"])
            elif q.get("start_time") is not None:
                pos = (int(q["start_time"]) * 1000 - 1, MAX_ID)
            else:
                return _json(
                    {"error": "InvalidValue", "description": "start_time or cursor is required"}, 400
                )
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return _json(
                {"error": "InvalidValue", "description": "invalid start_time, cursor or per_page"}, 400
            )
        if not 1 <= per_page <= MAX_EXPORT_PAGE:
            return _json(
                {"error": "InvalidValue", "description": f"per_page must be 1..{MAX_EXPORT_PAGE}"}, 400
            )
        frame, arr, ids = frame_arr_ids()
        limit_ms = state.now().value // 10**6 - HOLD_BACK_MS
        dup = state.faults.get(PLATFORM).duplicate_rows if q.get("cursor") else 0
        start, stop, next_pos, eos = export_window(arr, ids, pos, max(1, per_page - dup), limit_ms)
        dup = min(dup, start) if stop > start else 0
        root = api_root(request)
        rows = build_records(frame.iloc[start - dup : stop], arr[start - dup : stop], root)
        rows = page_with_duplicates(state, PLATFORM, rows, dup, stop - start)
        rows = drift(state, PLATFORM, rows, *drift_keys)
        extra = f"&per_page={per_page}" if "per_page" in q else ""
        after = encode_cursor(*next_pos)
        before = (
            encode_cursor(int(arr[start]), int(ids[start]) - 1) if stop > start and q.get("cursor") else None
        )
        return _json(
            {
                name: rows,
                "after_url": f"{root}/{path}?cursor={after}{extra}",
                "after_cursor": after,
                "before_url": f"{root}/{path}?cursor={before}{extra}" if before else None,
                "before_cursor": before,
                "end_of_stream": bool(eos),
            }
        )

    @api.get("/api/v2/incremental/tickets/cursor.json")
    def incremental_tickets(request: Request) -> Response:
        return export(
            request,
            "tickets",
            "incremental/tickets/cursor.json",
            tickets_now,
            lambda page, arr, root: ticket_records(page, arr, root),
            ("updated_at", "id"),
        )

    # -- ticket events (time-based incremental export) ------------------------------------------
    def ticket_events_now():
        """Assignee and status changes, sorted by (generated ms, id), with arrays."""

        def build(now: pd.Timestamp, late: int):
            frame = apply_late(state, PLATFORM, changes[changes["sent_at"] <= now], "message_id", "sent_at")
            sent = frame["sent_at"].to_numpy("datetime64[ms]").astype(np.int64)
            ids = frame["message_id"].to_numpy()
            arr = sent + late * _hit(ids, LATE_SHARE) if late else sent
            order = np.lexsort((ids, arr))
            return frame.iloc[order], arr[order], ids[order]

        return _cached("ticket_events", build)

    def ticket_event_records(page: pd.DataFrame, arr: np.ndarray) -> list[dict]:
        if page.empty:
            return []
        users = user_ids()

        def user(agents) -> list:
            got = users.reindex(np.asarray(agents)).tolist()
            return [str(int(u)) if u == u else None for u in got]

        new_user, old_user = user(page["agent_id"].to_numpy()), user(page["prev_agent"].to_numpy())
        requester = (
            state.conversation_index["platform_user_id"].reindex(page["conversation_id"].to_numpy()).tolist()
        )
        created = _iso(page["sent_at"])
        generated = (arr // 1000).tolist()
        out = []
        for i, (mid, tid, kind) in enumerate(
            zip(
                page["message_id"].tolist(),
                page["conversation_id"].tolist(),
                page["event"].astype(str).tolist(),
                strict=True,
            )
        ):
            via = "Mail" if kind == "reopen" else "Web form"
            children: list[tuple[str, str | None, str | None]] = []  # (field, value, previous)
            if kind in ("assign", "transfer") or (kind == "reopen" and new_user[i] != old_user[i]):
                children.append(("assignee_id", new_user[i], old_user[i]))
            if kind == "assign" and old_user[i] is None:
                children.append(("status", "open", "new"))
            elif kind == "close":
                children.append(("status", "solved", "open"))
            elif kind == "reopen":
                children.append(("status", "open", "solved"))
            # who made the change: the agent taking the ticket, the holder solving it, or the
            # requester whose reply reopens it; -1 is Zendesk's system user
            by = {"reopen": requester[i], "close": old_user[i]}.get(kind, new_user[i])
            updater = int(by) if by is not None else -1
            out.append(
                {
                    "id": AUDIT_ID_BASE + mid,
                    "ticket_id": tid,
                    "timestamp": generated[i],
                    "created_at": created[i],
                    "updater_id": updater,
                    "via": via,
                    "system": METADATA["system"],
                    "event_type": "Audit",
                    "child_events": [
                        {
                            "id": CHILD_ID_BASE + 10 * mid + k,
                            "via": via,
                            "via_reference_id": None,
                            field: value,
                            "event_type": "Change",
                            "previous_value": previous,
                        }
                        for k, (field, value, previous) in enumerate(children)
                    ],
                    "merged_ticket_ids": [],
                }
            )
        return out

    @api.get("/api/v2/incremental/ticket_events.json")
    def incremental_ticket_events(request: Request) -> Response:
        """Time-based export: items with `timestamp` >= start_time; next page = end_time."""
        refused = refuse(request)
        if refused is not None:
            return refused
        q = request.query_params
        now_ms = state.now().value // 10**6
        try:
            start_s = int(q["start_time"])
            per_page = int(q.get("per_page", MAX_EXPORT_PAGE))
        except (KeyError, ValueError):
            return _json(
                {"error": "InvalidValue", "description": "start_time (unix seconds) is required"}, 400
            )
        if not 1 <= per_page <= MAX_EXPORT_PAGE:
            return _json(
                {"error": "InvalidValue", "description": f"per_page must be 1..{MAX_EXPORT_PAGE}"}, 400
            )
        if start_s * 1000 > now_ms - HOLD_BACK_MS:
            return _json(
                {
                    "error": "InvalidValue",
                    "description": "start_time must be more than one minute in the past",
                },
                400,
            )
        frame, arr, ids = ticket_events_now()
        start = int(np.searchsorted(arr, start_s * 1000, "left"))
        visible_end = int(np.searchsorted(arr, now_ms - HOLD_BACK_MS, "right"))
        dup = min(state.faults.get(PLATFORM).duplicate_rows, start, per_page - 1)
        stop = max(start, min(visible_end, start + per_page - dup))
        rows = ticket_event_records(frame.iloc[start - dup : stop], arr[start - dup : stop])
        rows = page_with_duplicates(state, PLATFORM, rows, dup, stop - start)
        rows = drift(state, PLATFORM, rows, "ticket_id", "id")
        end_time = int(arr[stop - 1] // 1000) if stop > start else start_s
        root = api_root(request)
        extra = f"&per_page={per_page}" if "per_page" in q else ""
        return _json(
            {
                "ticket_events": rows,
                "next_page": f"{root}/incremental/ticket_events.json?start_time={end_time}{extra}",
                "count": len(rows),
                "end_time": end_time,
                "end_of_stream": bool(stop >= visible_end),
            }
        )

    # -- comments ---------------------------------------------------------------------------
    def comment_records(page: pd.DataFrame, root: str, with_ticket: bool = False) -> list[dict]:
        if page.empty:
            return []
        users = user_ids()
        requester = state.conversation_index["platform_user_id"].reindex(page["conversation_id"].to_numpy())
        agent_user = users.reindex(page["author_agent"].to_numpy()).to_numpy()
        is_agent = (page["sender_type"].astype(str) == "agent").to_numpy()
        author = np.where(is_agent, np.nan_to_num(agent_user, nan=-1), requester.astype(np.int64).to_numpy())
        author = author.astype(np.int64).tolist()
        body = page["content"].astype(object).where(page["content"].notna(), "").tolist()
        created = _iso(page["sent_at"])
        mids = page["message_id"].tolist()
        tickets = page["conversation_id"].tolist()
        out = []
        for i, mid in enumerate(mids):
            rec = {
                "id": mid,
                "type": "Comment",
                "author_id": author[i],
                "body": body[i],
                "html_body": f'<div class="zd-comment"><p dir="auto">{html.escape(body[i])}</p></div>',
                "plain_body": body[i],
                "public": True,
                "attachments": [],
                "audit_id": 10**9 + mid,
                "via": VIA,
                "created_at": created[i],
                "metadata": METADATA,
            }
            if with_ticket:
                rec["ticket_id"] = tickets[i]
            out.append(rec)
        return out

    def comments_now():
        def build(now: pd.Timestamp, late: int):
            frame = state.messages(PLATFORM)
            frame = frame[frame["sender_type"].isin(["customer", "agent"])]
            frame = frame.assign(author_agent=author_of.reindex(frame["message_id"]).to_numpy())
            frame = apply_late(state, PLATFORM, frame, "message_id", "sent_at")
            sent = frame["sent_at"].to_numpy("datetime64[ms]").astype(np.int64)
            ids = frame["message_id"].to_numpy()
            arr = sent + late * _hit(ids, LATE_SHARE) if late else sent
            order = np.lexsort((ids, arr))
            return frame.iloc[order], arr[order], ids[order]

        return _cached("comments", build)

    @api.get("/api/v2/sandbox/incremental/comments/cursor.json")
    def incremental_comments(request: Request) -> Response:
        return export(
            request,
            "comments",
            "sandbox/incremental/comments/cursor.json",
            comments_now,
            lambda page, arr, root: comment_records(page, root, with_ticket=True),
            ("author_id", "id"),
        )

    @api.get("/api/v2/tickets/{ticket_id}/comments.json")
    def ticket_comments(request: Request, ticket_id: int) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        now = state.now()
        conv = state.conversation_index
        known = (
            ticket_id in conv.index
            and conv.at[ticket_id, "channel"] == PLATFORM
            and conv.at[ticket_id, "started_at"] <= now
        )
        if not known:
            return _json({"error": "RecordNotFound", "description": "Not found"}, 404)
        frame = said.iloc[by_ticket.get(ticket_id, np.array([], dtype=np.int64))]
        frame = apply_late(state, PLATFORM, frame[frame["sent_at"] <= now], "message_id", "sent_at")
        keys = frame["sent_at"].to_numpy("datetime64[ms]").astype(np.int64), frame["message_id"].to_numpy()
        return list_page(request, "comments", frame, keys, comment_records, ("author_id", "id"))

    # -- satisfaction ratings ---------------------------------------------------------------
    def rating_records(page: pd.DataFrame, root: str) -> list[dict]:
        if page.empty:
            return []
        users = user_ids()
        requester = state.conversation_index["platform_user_id"].reindex(page["conversation_id"].to_numpy())
        assignee = [int(a) if a == a else None for a in users.reindex(page["agent_id"].to_numpy()).tolist()]
        created = _iso(page["rated_at"])
        score = np.where(page["csat"].to_numpy() >= 4, "good", "bad").tolist()
        return [
            {
                "url": f"{root}/satisfaction_ratings/{rid}.json",
                "id": rid,
                "assignee_id": assignee[i],
                "group_id": GROUP_ID,
                "requester_id": req,
                "ticket_id": tid,
                "score": score[i],
                "comment": "",
                "reason": None,
                "reason_code": None,
                "reason_id": None,
                "created_at": created[i],
                "updated_at": created[i],
            }
            for i, (rid, req, tid) in enumerate(
                zip(
                    page["rating_id"].tolist(),
                    requester.astype(np.int64).tolist(),
                    page["conversation_id"].tolist(),
                    strict=True,
                )
            )
        ]

    @api.get("/api/v2/satisfaction_ratings.json")
    def satisfaction_ratings(request: Request) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        q = request.query_params
        try:
            start = pd.Timestamp(int(q["start_time"]), unit="s", tz="UTC") if q.get("start_time") else None
            end = pd.Timestamp(int(q["end_time"]), unit="s", tz="UTC") if q.get("end_time") else None
        except ValueError:
            return _json(
                {"error": "InvalidValue", "description": "start_time and end_time are unix seconds"}, 400
            )
        frame = apply_late(state, PLATFORM, state.ratings(PLATFORM, start, end), "rating_id", "rated_at")
        score = q.get("score", "received")
        good = frame["csat"] >= 4
        frame = {"received": frame, "good": frame[good], "bad": frame[~good]}.get(score, frame.iloc[:0])
        keys = frame["rated_at"].to_numpy("datetime64[ms]").astype(np.int64), frame["rating_id"].to_numpy()
        order = np.lexsort((keys[1], keys[0]))
        frame, keys = frame.iloc[order], (keys[0][order], keys[1][order])
        return list_page(request, "satisfaction_ratings", frame, keys, rating_records, ("score", "ticket_id"))

    # -- users ------------------------------------------------------------------------------
    def user_records(page: pd.DataFrame, root: str) -> list[dict]:
        created = _iso(pd.Series([state.started_at - pd.Timedelta(days=365)] * len(page)))
        st = state.agent_status(PLATFORM, end=state.now())
        last_login = st.groupby("agent_id")["started_at"].max()
        login = pd.to_datetime(page["agent_id"].map(last_login), utc=True)
        login = _iso(login.fillna(state.started_at - pd.Timedelta(days=1)))
        out = []
        for i, (uid, name, agent) in enumerate(
            zip(page["user_id"].tolist(), page["name"].tolist(), page["agent_id"].tolist(), strict=True)
        ):
            out.append(
                {
                    "id": uid,
                    "url": f"{root}/users/{uid}.json",
                    "name": name,
                    "email": f"agent{agent:04d}@{creds['subdomain']}.example",
                    "created_at": created[i],
                    "updated_at": created[i],
                    "time_zone": "Beijing",
                    "iana_time_zone": "Asia/Shanghai",
                    "phone": None,
                    "shared_phone_number": None,
                    "photo": None,
                    "locale_id": 1,
                    "locale": "zh-cn",
                    "organization_id": None,
                    "role": "agent",
                    "verified": True,
                    "external_id": None,
                    "tags": [],
                    "alias": None,
                    "active": True,
                    "shared": False,
                    "shared_agent": False,
                    "last_login_at": login[i],
                    "two_factor_auth_enabled": None,
                    "signature": None,
                    "details": None,
                    "notes": None,
                    "role_type": None,
                    "custom_role_id": None,
                    "moderator": True,
                    "ticket_restriction": None,
                    "only_private_comments": False,
                    "restricted_agent": False,
                    "suspended": False,
                    "default_group_id": GROUP_ID,
                    "report_csv": False,
                    "user_fields": {},
                }
            )
        return out

    @api.get("/api/v2/users.json")
    def users(request: Request) -> Response:
        refused = refuse(request)
        if refused is not None:
            return refused
        q = request.query_params
        roles = set(q.getlist("role[]")) | ({q["role"]} if q.get("role") else set())
        acc = state.channel_accounts(PLATFORM).copy()
        acc["user_id"] = acc["account_id"].astype(np.int64)
        acc = acc.sort_values("user_id")
        if roles and "agent" not in roles:
            acc = acc.iloc[:0]
        keys = np.zeros(len(acc), dtype=np.int64), acc["user_id"].to_numpy()
        return list_page(request, "users", acc, keys, user_records, ("id", "id"))

    # -- list paging (offset by default, cursor with page[size]) ----------------------------
    def list_page(request: Request, name: str, frame: pd.DataFrame, keys, build, drift_keys) -> Response:
        q = request.query_params
        root = api_root(request)
        dup_n = state.faults.get(PLATFORM).duplicate_rows
        try:
            if "page[size]" in q:
                size = int(q["page[size]"])
                after = q.get("page[after]")
                start = _after(keys[0], keys[1], decode_cursor(after)) if after else 0
            else:
                size = int(q.get("per_page", MAX_LIST_PAGE))
                page_no = int(q.get("page", 1))
                if page_no < 1:
                    raise ValueError(page_no)
                start = (page_no - 1) * size
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return _json(
                {"error": "InvalidPaginationParameter", "description": "invalid page parameters"}, 400
            )
        if not 1 <= size <= MAX_LIST_PAGE:
            return _json(
                {
                    "error": "InvalidPaginationParameter",
                    "description": f"page size must be 1..{MAX_LIST_PAGE}",
                },
                400,
            )
        dup = min(dup_n, start, size - 1)
        # cursor pages stay within the size (the cursor follows the last row); offset pages
        # must still cover their own [start, start + size), so the repeats come on top
        stop = min(len(frame), start + (size - dup if "page[size]" in q else size))
        rows = build(frame.iloc[start - dup : max(stop, start)], root)
        rows = page_with_duplicates(state, PLATFORM, rows, dup, max(stop - start, 0))
        rows = drift(state, PLATFORM, rows, *drift_keys)
        more = stop < len(frame)
        if "page[size]" in q:
            after_c = encode_cursor(int(keys[0][stop - 1]), int(keys[1][stop - 1])) if stop > start else None
            before_c = encode_cursor(int(keys[0][start]), int(keys[1][start]) - 1) if stop > start else None
            base = request.url.remove_query_params("page[after]")
            return _json(
                {
                    name: rows,
                    "meta": {"has_more": bool(more), "after_cursor": after_c, "before_cursor": before_c},
                    "links": {
                        "prev": None,
                        "next": str(base.include_query_params(**{"page[after]": after_c})) if more else None,
                    },
                }
            )
        return _json(
            {
                name: rows,
                "next_page": str(request.url.include_query_params(page=page_no + 1)) if more else None,
                "previous_page": str(request.url.include_query_params(page=page_no - 1))
                if page_no > 1
                else None,
                "count": len(frame),
            }
        )

    return api
