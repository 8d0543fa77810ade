"""Meiqia (美洽) customer service over a bearer-token REST API.

Documentation followed
- https://www.meiqia.com/ (美洽开放接口 / 数据推送). The API pages were NOT found in the stored
  docs; the shapes follow tests/golden/meiqia/*.json, which are general knowledge except the
  field names `conv_first_resp_wait_in_secs` and `comment_level` (DESIGN.md §5).
- `comment_level` codes 0 差评 / 1 中评 / 2 好评 follow Meiqia's own SDK
  (`MQEvaluationType`: Negative = 0, Moderate = 1, Positive = 2).

Endpoints (under the `/meiqia` prefix); envelope `{"code": 0, "message": "ok", "data": ...}`
- `POST /token` – JSON or form `{app_id, secret}` -> `data: {access_token, token_type, expires_in}`
  (7200 s on the simulated clock). Every other call sends `Authorization: Bearer <token>`.
- `GET /v1/conversations?start_time&end_time&page&per_page` – conversation records (对话记录)
  of conversations that ENDED in [start_time, end_time): a record is written when a
  conversation ends, and a rating given later updates it (re-read past windows for ratings).
- `GET /v1/conversations/{conv_id}/messages` – every message and event of one conversation.
- `GET /v1/messages?start_time&end_time&page&per_page` – sandbox extension: every message and
  event created in [start_time, end_time), for bulk extraction.
- `GET /v1/agents` – agents with their current status (sandbox shape).
- `GET /v1/agents/status_logs?start_time&end_time&page&per_page` – sandbox extension: status
  intervals that started in the window (`end_tm` null while ongoing).
- `GET /v1/realtime` – sandbox extension: queue length and agents online now.

Formats
- Times are zone-less `yyyy-MM-dd HH:mm:ss` strings in Asia/Shanghai, request and response.
- Paging: page (from 1) and per_page (1..1000, default 100); `total` counts the window. Order:
  time, then id. Windows at most 31 days (sandbox choice).
- Ids: conv_id = 1240000000 + conversation id, message id = 5500000000 + message id (ints);
  agent_id is the agent's Meiqia id (int); track_id is the visitor's id.
- Message `from`: client | agent | robot | system; `type`: message | event. System events carry
  fixed texts: handoff "访客请求转人工", assign "客服<nickname>接入对话", transfer
  "对话转接给客服<nickname>", close "对话已结束", reopen "对话重新开启" (agent_id set on assign,
  transfer and reopen).
- `comment_level` 2 好评 (csat 4-5), 1 中评 (csat 3), 0 差评 (csat 1-2), null when unrated;
  `conv_first_resp_wait_in_secs` is null when no agent ever replied, `agent_id` null when no
  agent took the conversation.

Errors: `{"code": <int>, "message": "...", "data": null}` with an HTTP status: 401 + 40100
missing token / 40101 invalid or expired token / 40001 bad app_id or secret (token endpoint),
400 + 40000 bad parameter, 404 + 40400 unknown conversation.

Faults (FaultConfig field -> what the client sees)
- rate_limit: HTTP 429, `Retry-After: <retry_after_s>`, code 42900.
- error_codes: HTTP 200 with code 50010 "系统繁忙，请稍后重试" (retry).
- server_errors / hang: HTTP 500, code 50000 (after hang_s for hang).
- slow_s: every answer that much later.
- expire_tokens_after: every issued token dies -> HTTP 401, code 40101.
- duplicate_rows: page n > 1 starts with the last N records of page n - 1; the per-conversation
  message list (unpaged) repeats its last N messages.
- late_updates: records show up late_by_s after they happened (conversations by end time).
- schema_drift: conversations (missing `conv_id`, `conv_first_resp_wait_in_secs` as a
  string), messages (missing `created_on`, `id` as a string).
- api_off: HTTP 403, code 40310 (open API switched off). permission_denied: HTTP 403, code 40300.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.server import faults
from sandbox.server.faults import apply_late, drift, page_with_duplicates
from sandbox.server.platforms._shared import MessagesByConversation, WindowMemo, epoch_ms

PLATFORM = "meiqia"
TOKEN_TTL_S = 7200
CONV_BASE = 1240000000
MSG_BASE = 5500000000
ENT_ID = 35412
MAX_WINDOW_DAYS = 31
MAX_PER_PAGE = 1000
_OFFSET_MS = 8 * 3600 * 1000
FROM = {"customer": "client", "agent": "agent", "bot": "robot", "system": "system"}
EVENT_TEXT = {
    "handoff": "访客请求转人工",
    "assign": "客服{}接入对话",
    "transfer": "对话转接给客服{}",
    "close": "对话已结束",
    "reopen": "对话重新开启",
}
COMMENTS = {2: "很耐心，解决了问题", 1: "还可以", 0: "回复太慢"}


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json;charset=UTF-8", headers=headers)


def _fail(status: int, code: int, message: str, headers: dict | None = None) -> Response:
    return _json({"code": code, "message": message, "data": None}, status, headers)


def _ok(data) -> Response:
    return _json({"code": 0, "message": "ok", "data": data})


class MeiqiaError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.parts = (status, code, message)

    def response(self) -> Response:
        return _fail(*self.parts)


class MeiqiaErrors:
    """How Meiqia says each fault (faults.PlatformErrors)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        seconds = int(retry_after_s)
        return _fail(429, 42900, f"请求过于频繁，请{seconds}秒后重试", {"Retry-After": str(seconds)})

    def error_code(self) -> Response:
        return _fail(200, 50010, "系统繁忙，请稍后重试")

    def server_error(self) -> Response:
        return _fail(500, 50000, "服务器内部错误")

    def api_off(self) -> Response:
        return _fail(403, 40310, "开放接口未开通或已关闭")

    def permission_denied(self) -> Response:
        return _fail(403, 40300, "没有访问该接口的权限")


ERRORS = MeiqiaErrors()


# -- helpers ----------------------------------------------------------------------------


def _local_str(ms: np.ndarray) -> np.ndarray:
    if np.asarray(ms).size == 0:  # an empty page
        return np.asarray([], dtype=str)
    local = (np.asarray(ms, dtype=np.int64) + _OFFSET_MS).astype("datetime64[ms]").astype("datetime64[s]")
    return np.char.replace(np.datetime_as_string(local, unit="s"), "T", " ")


def _nullable_local(series: pd.Series) -> list:
    ms = epoch_ms(series)
    text = _local_str(np.where(ms < 0, 0, ms)).tolist()
    return [None if m < 0 else t for m, t in zip(ms.tolist(), text, strict=True)]


def _records(columns: dict) -> list[dict]:
    keys = list(columns)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def _parse_time(value: str | None, name: str) -> pd.Timestamp:
    if not value:
        raise MeiqiaError(400, 40000, f"{name} is required")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            local = dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return pd.Timestamp(local).tz_localize("Asia/Shanghai").tz_convert("UTC")
    raise MeiqiaError(400, 40000, f"{name} must be yyyy-MM-dd HH:mm:ss")


class _Store:
    """Per-message and per-conversation annotations built once."""

    def __init__(self, state):
        acc = state.channel_accounts(PLATFORM)
        self.agent_ids = [int(a) for a in acc["agent_id"]]
        self.mq_id = dict(zip(self.agent_ids, acc["account_id"].astype(int), strict=True))
        self.names = dict(zip(self.agent_ids, acc["name"].astype(str), strict=True))
        self.teams = dict(zip(self.agent_ids, acc["team"].astype(str), strict=True))
        team_ids = {t: 2031 + i for i, t in enumerate(sorted(set(self.teams.values())))}
        self.group_of = {a: team_ids[t] for a, t in self.teams.items()}
        max_agent = max([*self.agent_ids, int(state.data["messages"]["agent_id"].max()), 0])
        self.mq_table = np.full(max_agent + 2, -1, np.int64)
        self.group_table = np.full(max_agent + 2, -1, np.int64)
        self.name_table = np.full(max_agent + 2, None, dtype=object)
        for a in self.agent_ids:
            self.mq_table[a + 1] = self.mq_id[a]
            self.group_table[a + 1] = self.group_of[a]
            self.name_table[a + 1] = self.names[a]

        msgs = state.data["messages"]
        msgs = msgs[msgs["channel"] == PLATFORM].sort_values(["conversation_id", "seq"], kind="stable")
        agent = msgs["agent_id"].to_numpy().astype(np.float64)
        agent[agent < 0] = np.nan
        current = pd.Series(agent).groupby(msgs["conversation_id"].to_numpy()).ffill()
        current = current.fillna(-1).to_numpy().astype(np.int64)
        n = int(msgs["message_id"].max()) + 1 if len(msgs) else 1
        self.agent_of_msg = np.full(n, -1, np.int64)
        sender = msgs["sender_type"].astype(str).to_numpy()
        own = msgs["agent_id"].to_numpy().astype(np.int64)
        by_agent = np.where((sender == "agent") & (own < 0), current, own)
        self.agent_of_msg[msgs["message_id"].to_numpy()] = np.where(
            np.isin(sender, ["agent", "system"]), by_agent, -1
        )

        conv_ids = msgs["conversation_id"].to_numpy()
        size = int(state.data["conversations"]["conversation_id"].max()) + 1
        self.client_msgs = np.bincount(conv_ids[sender == "customer"], minlength=size)
        self.agent_msgs = np.bincount(conv_ids[sender == "agent"], minlength=size)
        self.all_msgs = np.bincount(conv_ids[sender != "system"], minlength=size)

    def mq(self, agent_ids) -> list:
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(self.mq_table) - 1), ids, -1)
        return [None if v < 0 else v for v in self.mq_table[ids + 1].tolist()]

    def group(self, agent_ids) -> list:
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(self.group_table) - 1), ids, -1)
        return [None if v < 0 else v for v in self.group_table[ids + 1].tolist()]

    def name(self, agent_ids) -> np.ndarray:
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(self.name_table) - 1), ids, -1)
        return self.name_table[ids + 1]


class _Api:
    def __init__(self, state):
        self.state = state
        self.store = _Store(state)
        self.memo = WindowMemo()
        self.by_conv = MessagesByConversation(state, PLATFORM)

    def key(self, name: str, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple | None:
        """A memo key: the window, the clock and the late-updates fault (None while the clock runs)."""
        if self.state.clock.speed > 0:
            return None
        cfg = self.state.faults.get(PLATFORM)
        return (name, lo.value, hi.value, self.state.now().value, cfg.late_updates, cfg.late_by_s)

    # auth ---------------------------------------------------------------------------------
    def token(self, body: dict) -> Response:
        creds = self.state.credentials[PLATFORM]
        if body.get("app_id") != creds["app_id"] or body.get("secret") != creds["secret"]:
            return _fail(401, 40001, "app_id or secret is invalid")
        token = self.state.tokens.issue(PLATFORM, self.state.now(), TOKEN_TTL_S)
        return _ok({"access_token": token.value, "token_type": "Bearer", "expires_in": TOKEN_TTL_S})

    def guard(self, request: Request) -> Response | None:
        """The gate, then the bearer token."""
        blocked = faults.gate(self.state, PLATFORM, request, ERRORS)
        if blocked is not None:
            return blocked
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return _fail(401, 40100, "missing access_token: send Authorization: Bearer <token>")
        if not self.state.tokens.valid(PLATFORM, header[7:].strip(), self.state.now()):
            return _fail(401, 40101, "access_token is invalid or expired")
        return None

    # shared -------------------------------------------------------------------------------
    def window(self, q) -> tuple[pd.Timestamp, pd.Timestamp]:
        lo = _parse_time(q.get("start_time"), "start_time")
        hi = _parse_time(q.get("end_time"), "end_time")
        if lo >= hi:
            raise MeiqiaError(400, 40000, "start_time must be before end_time")
        if hi - lo > pd.Timedelta(days=MAX_WINDOW_DAYS):
            raise MeiqiaError(400, 40000, f"the window must not exceed {MAX_WINDOW_DAYS} days")
        return lo, hi - pd.Timedelta(milliseconds=1)

    def paging(self, q) -> tuple[int, int]:
        try:
            page, per_page = int(q.get("page", 1)), int(q.get("per_page", 100))
        except ValueError as exc:
            raise MeiqiaError(400, 40000, "page and per_page must be integers") from exc
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise MeiqiaError(400, 40000, f"page >= 1 and 1 <= per_page <= {MAX_PER_PAGE}")
        return page, per_page

    def page_of(self, frame: pd.DataFrame, q) -> tuple[pd.DataFrame, int, int]:
        page, per_page = self.paging(q)
        rows = page_with_duplicates(self.state, PLATFORM, range(len(frame)), (page - 1) * per_page, per_page)
        return frame.iloc[rows.start : rows.stop], page, per_page

    def message_records(self, m: pd.DataFrame) -> list[dict]:
        sender = m["sender_type"].astype(str).to_numpy()
        event = m["event"].astype(str).to_numpy()
        agent = self.store.agent_of_msg[m["message_id"].to_numpy()]
        names = self.store.name(agent)
        content = np.array(m["content"].astype(object).where(m["content"].notna(), ""), dtype=object)
        system = np.flatnonzero(sender == "system")
        for i in system.tolist():
            content[i] = EVENT_TEXT.get(event[i], event[i]).format(names[i] or "")
        records = _records(
            {
                "id": MSG_BASE + m["message_id"].to_numpy(),
                "conv_id": CONV_BASE + m["conversation_id"].to_numpy(),
                "from": [FROM[s] for s in sender.tolist()],
                "type": np.where(sender == "system", "event", "message"),
                "content_type": ["text"] * len(m),
                "content": content,
                "agent_id": self.store.mq(agent),
                "created_on": _local_str(epoch_ms(m["sent_at"])),
            }
        )
        return drift(self.state, PLATFORM, records, "created_on", "id")

    # endpoints ----------------------------------------------------------------------------
    def conversations(self, q) -> dict:
        lo, hi = self.window(q)

        def build() -> pd.DataFrame:
            c = self.state.conversations(PLATFORM)
            closed = (c["status"] == "closed") & (c["closed_at"] >= lo) & (c["closed_at"] <= hi)
            c = apply_late(self.state, PLATFORM, c[closed], "conversation_id", "closed_at")
            return c.sort_values(["closed_at", "conversation_id"], kind="stable")

        c = self.memo.get(self.key("conversations", lo, hi), build)
        total = len(c)
        page, n, per_page = self.page_of(c, q)
        conv = page["conversation_id"].to_numpy()
        first = np.where(page["assigned_at"].notna().to_numpy(), page["first_agent_id"].to_numpy(), -1)
        rated = self.state.ratings(PLATFORM).drop_duplicates("conversation_id", keep="last")
        csat = page["conversation_id"].map(rated.set_index("conversation_id")["csat"])
        level = np.select([csat >= 4, csat == 3, csat <= 2], [2, 1, 0], -1)
        frt = page["frt_s"].where(page["first_response_at"].notna()).round()
        duration = (
            ((epoch_ms(page["closed_at"]) - epoch_ms(page["started_at"])) / 1000).round().astype(np.int64)
        )
        visit = (conv.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(16)
        records = _records(
            {
                "conv_id": CONV_BASE + conv,
                "ent_id": np.full(len(page), ENT_ID),
                "track_id": page["platform_user_id"].astype(str).to_numpy(),
                "visit_id": np.char.mod("%012x", visit & np.uint64(0xFFFFFFFFFFFF)),
                "agent_id": self.store.mq(first),
                "agent_nickname": self.store.name(first),
                "agent_group_id": self.store.group(first),
                "conv_start_tm": _local_str(epoch_ms(page["started_at"])),
                "conv_end_tm": _local_str(epoch_ms(page["closed_at"])),
                "conv_duration": duration,
                "conv_first_resp_wait_in_secs": [None if pd.isna(v) else int(v) for v in frt.tolist()],
                "msg_count": self.store.all_msgs[conv],
                "agent_msg_num": self.store.agent_msgs[conv],
                "client_msg_num": self.store.client_msgs[conv],
                "comment_level": [None if v < 0 else v for v in level.tolist()],
                "comment_content": [COMMENTS.get(v) for v in level.tolist()],
                "conv_visit_from_page": (
                    "https://shop.example.com/help/" + page["topic"].astype(str)
                ).to_numpy(),
            }
        )
        records = drift(self.state, PLATFORM, records, "conv_id", "conv_first_resp_wait_in_secs")
        return {"total": total, "page": n, "per_page": per_page, "conversations": records}

    def conversation_messages(self, conv_id: int) -> dict:
        cid = conv_id - CONV_BASE
        index = self.state.conversation_index
        if cid not in index.index or index.at[cid, "channel"] != PLATFORM:
            raise MeiqiaError(404, 40400, f"conversation {conv_id} not found")
        if index.at[cid, "started_at"] > self.state.now():
            raise MeiqiaError(404, 40400, f"conversation {conv_id} not found")
        m = apply_late(self.state, PLATFORM, self.by_conv.messages(self.state, cid), "message_id", "sent_at")
        records = self.message_records(m)
        records = records + page_with_duplicates(self.state, PLATFORM, records, len(records), 0)
        return {"conv_id": conv_id, "messages": records}

    def messages(self, q) -> dict:
        lo, hi = self.window(q)

        def build() -> pd.DataFrame:
            m = self.state.messages(PLATFORM, lo, hi)
            m = apply_late(self.state, PLATFORM, m, "message_id", "sent_at")
            return m.sort_values(["sent_at", "message_id"], kind="stable")

        m = self.memo.get(self.key("messages", lo, hi), build)
        total = len(m)
        page, n, per_page = self.page_of(m, q)
        return {"total": total, "page": n, "per_page": per_page, "messages": self.message_records(page)}

    def agents(self) -> dict:
        now = self.state.now()
        st = self.state.agent_status(PLATFORM, now - pd.Timedelta(days=2), now)
        online = set(st.loc[st["ended_at"].isna() | (st["ended_at"] > now), "agent_id"].astype(int))
        agents = [
            {
                "agent_id": self.store.mq_id[a],
                "nickname": self.store.names[a],
                "realname": self.store.names[a],
                "email": f"agent{self.store.mq_id[a]}@sandbox.example",
                "agent_group_id": self.store.group_of[a],
                "group_name": self.store.teams[a],
                "status": "online" if a in online else "offline",
            }
            for a in self.store.agent_ids
        ]
        return {"agents": agents}

    def status_logs(self, q) -> dict:
        lo, hi = self.window(q)
        st = self.state.agent_status(PLATFORM, lo, hi).sort_values(["started_at", "agent_id"], kind="stable")
        total = len(st)
        page, n, per_page = self.page_of(st, q)
        records = _records(
            {
                "agent_id": self.store.mq(page["agent_id"].to_numpy()),
                "status": page["status"].astype(str).to_numpy(),
                "start_tm": _local_str(epoch_ms(page["started_at"])),
                "end_tm": _nullable_local(page["ended_at"]),
            }
        )
        return {"total": total, "page": n, "per_page": per_page, "status_logs": records}

    def realtime(self) -> dict:
        live = self.state.live_state(PLATFORM)
        return {
            "queue_count": live["waiting"],
            "online_agent_count": live["agents_online"],
            "time": _local_str(np.asarray([live["as_of"].value // 10**6]))[0].item(),
        }


def router(state) -> APIRouter:
    api_impl = _Api(state)
    api = APIRouter()

    def serve(request: Request, work) -> Response:
        refused = api_impl.guard(request)
        if refused is not None:
            return refused
        try:
            return _ok(work())
        except MeiqiaError as exc:
            return exc.response()

    @api.post("/token")
    async def token(request: Request) -> Response:
        body: dict = {}
        if "json" in request.headers.get("content-type", ""):
            try:
                parsed = await request.json()
            except ValueError:
                parsed = {}
            body = parsed if isinstance(parsed, dict) else {}
        elif "form" in request.headers.get("content-type", ""):
            body = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        body = {**dict(request.query_params), **body}
        return api_impl.token(body)

    @api.get("/v1/conversations")
    def conversations(request: Request) -> Response:
        return serve(request, lambda: api_impl.conversations(request.query_params))

    @api.get("/v1/conversations/{conv_id}/messages")
    def conversation_messages(conv_id: int, request: Request) -> Response:
        return serve(request, lambda: api_impl.conversation_messages(conv_id))

    @api.get("/v1/messages")
    def messages(request: Request) -> Response:
        return serve(request, lambda: api_impl.messages(request.query_params))

    @api.get("/v1/agents")
    def agents(request: Request) -> Response:
        return serve(request, api_impl.agents)

    @api.get("/v1/agents/status_logs")
    def status_logs(request: Request) -> Response:
        return serve(request, lambda: api_impl.status_logs(request.query_params))

    @api.get("/v1/realtime")
    def realtime(request: Request) -> Response:
        return serve(request, api_impl.realtime)

    return api
