"""Sobot (智齿) online customer service API, version 5.

Documentation followed
- API call rules and get_token: https://developer.zhichi.com/pages/6cc489 and
  https://developer.zhichi.com/pages/7dbd90 (在线客服 API): `GET /api/get_token?appid&create_time&sign`,
  sign = md5(appid + create_time + app_key) lower-case hex, the token lasts 24 h, "every call
  returns a new token and resets its expiry" and fetching new tokens makes the old one fail, the
  token travels in the `token` HTTP header, envelope `ret_code` / `ret_msg` / `item`.
- Session list, chat records and satisfaction (查询客户会话列表 / 查询客户会话记录 / 客户评价) are on the
  same page, but their field tables were not in the stored docs: the shapes follow
  tests/golden/sobot/*.json (general knowledge; `sender_type`, `t`, `ts` per DESIGN.md §5).

Endpoints (under the `/sobot` prefix)
- `GET /api/get_token?appid&create_time&sign` -> `item: {token, expires_in: "86400"}`. A new token
  revokes the previous ones (as Sobot warns), so a client must share one token.
- `GET /api/online/5/get_chat_list?start_date&end_date&page_no&page_size` – sessions started in
  the window (open ones have end_time 0 and end_time_str "").
- `GET /api/online/5/get_chat_detail?cid` – every message and event of one session (`items`).
- `GET /api/online/5/get_satisfaction?start_date&end_date&page_no&page_size` – evaluations given in
  the window.
- Sandbox extensions in the same style (no public field table found):
  `GET /api/online/5/get_staff_list` (agents and their status now),
  `GET /api/online/5/get_staff_status_log?start_date&end_date&page_no&page_size` (status
  intervals started in the window), `GET /api/online/5/get_online_stat` (queue and agents online).

Formats
- start_date / end_date `yyyy-MM-dd HH:mm:ss` (Asia/Shanghai), both inclusive to the second, at
  most 31 days (sandbox choice). page_no from 1, page_size 1..100 (default 50). Order: time, id.
- `t` / `start_time` / `end_time` are epoch milliseconds; `ts` / `*_str` are local strings.
- cid: 32 hex digits (`sobot_cid`); msgid "m_<n>"; partnerid is the customer's id; staff ids
  "s…"; the bot is sender "robot_1".
- `sender_type` 0 user, 1 bot, 2 agent, and 3 system event (sandbox choice: sender "system",
  sender_name "系统消息", msg = a fixed text: handoff "转人工", assign "客服<name>接入会话",
  transfer "会话转接给客服<name>", close "会话结束", reopen "会话重新开启"). `msg_type` 0 text.
- Session: robot_flag 1 when the bot answered first, transfer_flag 1 when handed to a human,
  first_response_seconds 0 when no agent replied, staff_id "" when no agent took it.
- Satisfaction: `type` 1 agent evaluation, 0 bot evaluation; `score` 1-5; `solved` 1/0; and
  `nps` (sandbox extension) 0-10, or -1 when the customer was not asked.

Errors: HTTP 200 + `{"ret_code": "<code>", "ret_msg": "..."}` (sandbox codes, no public list
was found): 900001 bad parameter, 900002 token invalid or expired, 900003 bad appid or sign.

Faults (FaultConfig field -> what the client sees)
- rate_limit: ret_code 900004 "请求过于频繁，请<retry_after_s>秒后重试".
- error_codes: ret_code 900005 "系统繁忙，请稍后重试" (retry).
- server_errors / hang: HTTP 500 with ret_code 999999 (after hang_s for hang).
- slow_s: every answer that much later.
- expire_tokens_after: ret_code 900002 from then on (fetch a new token).
- duplicate_rows: page n > 1 starts with the last N records of page n - 1; get_chat_detail
  (unpaged) repeats its last N messages.
- late_updates: sessions, messages and evaluations show up late_by_s after they happened.
- schema_drift: sessions (missing `cid`, `start_time` as a string), messages (missing `t`,
  `sender_type` as a string), satisfaction (missing `cid`, `score` as a string).
- api_off: ret_code 900006 接口未开通或已关闭. permission_denied: ret_code 900007 无接口调用权限.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.server import faults
from sandbox.server.faults import apply_late, drift, page_with_duplicates
from sandbox.server.platforms._shared import MessagesByConversation, WindowMemo, epoch_ms

PLATFORM = "sobot"
TOKEN_TTL_S = 86400
MAX_WINDOW_DAYS = 31
MAX_PAGE_SIZE = 100
ROBOT = "robot_1"
_OFFSET_MS = 8 * 3600 * 1000
_CID_A = np.uint64(0x9E3779B97F4A7C15)
_CID_B = np.uint64(0xC2B2AE3D27D4EB4F)
SENDER_TYPE = {"customer": 0, "bot": 1, "agent": 2, "system": 3}
EVENT_TEXT = {
    "handoff": "转人工",
    "assign": "客服{}接入会话",
    "transfer": "会话转接给客服{}",
    "close": "会话结束",
    "reopen": "会话重新开启",
}
TAGS = {5: "回复及时", 4: "态度很好", 3: "一般", 2: "回复慢", 1: "问题没有解决"}
REMARKS = {5: "很快解决了", 4: "还不错", 3: "", 2: "等了很久", 1: "没有帮到我"}


def sobot_sign(appid: str, create_time: str, app_key: str) -> str:
    return hashlib.md5(f"{appid}{create_time}{app_key}".encode()).hexdigest()


def sobot_cid(conversation_ids) -> np.ndarray:
    """The session id (`cid`) the sandbox gives a conversation: 32 hex digits."""
    ids = np.asarray(conversation_ids, dtype=np.int64).astype(np.uint64)
    return np.char.add(np.char.mod("%016x", ids * _CID_A), np.char.mod("%016x", ids * _CID_B))


def _json(body, status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json;charset=UTF-8")


def _fail(code: str, msg: str, status: int = 200) -> Response:
    return _json({"ret_code": code, "ret_msg": msg}, status)


def _ok(key: str, value) -> Response:
    return _json({"ret_code": "000000", "ret_msg": "操作成功", key: value})


class SobotError(Exception):
    def __init__(self, msg: str, code: str = "900001"):
        super().__init__(msg)
        self.parts = (code, msg)

    def response(self) -> Response:
        return _fail(*self.parts)


class SobotErrors:
    """How Sobot says each fault (faults.PlatformErrors)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        return _fail("900004", f"请求过于频繁，请{int(retry_after_s)}秒后重试")

    def error_code(self) -> Response:
        return _fail("900005", "系统繁忙，请稍后重试")

    def server_error(self) -> Response:
        return _fail("999999", "系统异常", 500)

    def api_off(self) -> Response:
        return _fail("900006", "接口未开通或已关闭")

    def permission_denied(self) -> Response:
        return _fail("900007", "无接口调用权限")


ERRORS = SobotErrors()


def _local_str(ms: np.ndarray) -> np.ndarray:
    if np.asarray(ms).size == 0:  # an empty page
        return np.asarray([], dtype=str)
    local = (np.asarray(ms, dtype=np.int64) + _OFFSET_MS).astype("datetime64[ms]").astype("datetime64[s]")
    return np.char.replace(np.datetime_as_string(local, unit="s"), "T", " ")


def _ms_and_str(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms and local string; 0 and "" where missing."""
    ms = epoch_ms(series)
    missing = ms < 0
    ms = np.where(missing, 0, ms)
    return ms, np.where(missing, "", _local_str(ms))


def _records(columns: dict) -> list[dict]:
    keys = list(columns)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def _parse_time(value: str | None, name: str) -> pd.Timestamp:
    if not value:
        raise SobotError(f"参数错误: 缺少{name}")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            local = dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return pd.Timestamp(local).tz_localize("Asia/Shanghai").tz_convert("UTC")
    raise SobotError(f"参数错误: {name}格式应为yyyy-MM-dd HH:mm:ss")


class _Store:
    def __init__(self, state):
        acc = state.channel_accounts(PLATFORM)
        self.agent_ids = [int(a) for a in acc["agent_id"]]
        self.staff_of = dict(zip(self.agent_ids, acc["account_id"].astype(str), strict=True))
        self.names = dict(zip(self.agent_ids, acc["name"].astype(str), strict=True))
        self.teams = dict(zip(self.agent_ids, acc["team"].astype(str), strict=True))
        max_agent = max([*self.agent_ids, int(state.data["messages"]["agent_id"].max()), 0])
        self.staff_table = np.full(max_agent + 2, "", dtype=object)
        self.name_table = np.full(max_agent + 2, "", dtype=object)
        for a in self.agent_ids:
            self.staff_table[a + 1] = self.staff_of[a]
            self.name_table[a + 1] = self.names[a]

        msgs = state.data["messages"]
        msgs = msgs[msgs["channel"] == PLATFORM].sort_values(["conversation_id", "seq"], kind="stable")
        agent = msgs["agent_id"].to_numpy().astype(np.float64)
        agent[agent < 0] = np.nan
        current = pd.Series(agent).groupby(msgs["conversation_id"].to_numpy()).ffill()
        current = current.fillna(-1).to_numpy().astype(np.int64)
        own = msgs["agent_id"].to_numpy().astype(np.int64)
        sender = msgs["sender_type"].astype(str).to_numpy()
        n = int(msgs["message_id"].max()) + 1 if len(msgs) else 1
        self.agent_of_msg = np.full(n, -1, np.int64)
        by_agent = np.where((sender == "agent") & (own < 0), current, own)
        self.agent_of_msg[msgs["message_id"].to_numpy()] = np.where(
            np.isin(sender, ["agent", "system"]), by_agent, -1
        )

        conv = state.data["conversations"]
        conv = conv[conv["channel"] == PLATFORM]
        self.conv_of_cid = dict(
            zip(sobot_cid(conv["conversation_id"]).tolist(), conv["conversation_id"].tolist(), strict=True)
        )

    def _lookup(self, table: np.ndarray, agent_ids) -> np.ndarray:
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(table) - 1), ids, -1)
        return table[ids + 1]

    def staff(self, agent_ids) -> np.ndarray:
        return self._lookup(self.staff_table, agent_ids)

    def name(self, agent_ids) -> np.ndarray:
        return self._lookup(self.name_table, agent_ids)


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
    def get_token(self, q) -> Response:
        creds = self.state.credentials[PLATFORM]
        appid, create_time, sign = q.get("appid"), q.get("create_time"), q.get("sign")
        if not appid or not create_time or not sign:
            return _fail("900001", "参数错误: appid、create_time、sign 均为必填")
        expected = sobot_sign(creds["appid"], create_time, creds["app_key"])
        if appid != creds["appid"] or not hmac.compare_digest(sign.lower(), expected):
            return _fail("900003", "appid或sign错误")
        self.state.tokens.revoke_all(PLATFORM)
        token = self.state.tokens.issue(PLATFORM, self.state.now(), TOKEN_TTL_S)
        return _ok("item", {"token": token.value, "expires_in": str(TOKEN_TTL_S)})

    def guard(self, request: Request) -> Response | None:
        blocked = faults.gate(self.state, PLATFORM, request, ERRORS)
        if blocked is not None:
            return blocked
        if not self.state.tokens.valid(PLATFORM, request.headers.get("token"), self.state.now()):
            return _fail("900002", "token失效，请重新获取")
        return None

    # shared -------------------------------------------------------------------------------
    def window(self, q) -> tuple[pd.Timestamp, pd.Timestamp]:
        lo = _parse_time(q.get("start_date"), "start_date")
        hi = _parse_time(q.get("end_date"), "end_date")
        if lo > hi:
            raise SobotError("参数错误: start_date不能晚于end_date")
        if hi - lo > pd.Timedelta(days=MAX_WINDOW_DAYS):
            raise SobotError(f"参数错误: 查询时间跨度不能超过{MAX_WINDOW_DAYS}天")
        return lo, hi + pd.Timedelta(milliseconds=999)

    def page_of(self, frame: pd.DataFrame, q) -> tuple[pd.DataFrame, int, int]:
        try:
            page, size = int(q.get("page_no", 1)), int(q.get("page_size", 50))
        except ValueError as exc:
            raise SobotError("参数错误: page_no、page_size必须是整数") from exc
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise SobotError(f"参数错误: page_no>=1, page_size 1-{MAX_PAGE_SIZE}")
        rows = page_with_duplicates(self.state, PLATFORM, range(len(frame)), (page - 1) * size, size)
        return frame.iloc[rows.start : rows.stop], page, size

    # endpoints ----------------------------------------------------------------------------
    def chat_list(self, q) -> dict:
        lo, hi = self.window(q)

        def build() -> pd.DataFrame:
            c = self.state.conversations(PLATFORM, lo, hi)
            c = apply_late(self.state, PLATFORM, c, "conversation_id", "started_at")
            return c.sort_values(["started_at", "conversation_id"], kind="stable")

        c = self.memo.get(self.key("sessions", lo, hi), build)
        total = len(c)
        page, page_no, size = self.page_of(c, q)
        conv = page["conversation_id"].to_numpy()
        first = np.where(page["assigned_at"].notna().to_numpy(), page["first_agent_id"].to_numpy(), -1)
        start_ms, start_str = _ms_and_str(page["started_at"])
        end_ms, end_str = _ms_and_str(page["closed_at"].where(page["status"] == "closed"))
        frt = page["frt_s"].where(page["first_response_at"].notna()).fillna(0).round().astype(np.int64)
        visitor = (conv.astype(np.uint64) * _CID_B) >> np.uint64(40)
        records = _records(
            {
                "cid": sobot_cid(conv),
                "partnerid": page["platform_user_id"].astype(str).to_numpy(),
                "visitorid": np.char.add("v_", np.char.mod("%06x", visitor & np.uint64(0xFFFFFF))),
                "source": np.zeros(len(page), np.int64),
                "staff_id": self.store.staff(first),
                "staff_name": self.store.name(first),
                "robot_flag": page["bot_first"].to_numpy().astype(np.int64),
                "transfer_flag": (page["bot_first"] & page["handoff_at"].notna()).to_numpy().astype(np.int64),
                "start_time": start_ms,
                "start_time_str": start_str,
                "end_time": end_ms,
                "end_time_str": end_str,
                "first_response_seconds": frt.to_numpy(),
            }
        )
        records = drift(self.state, PLATFORM, records, "cid", "start_time")
        return {"total_count": total, "page_no": page_no, "page_size": size, "list": records}

    def chat_detail(self, q) -> list:
        cid = q.get("cid")
        if not cid:
            raise SobotError("参数错误: 缺少cid")
        conv = self.store.conv_of_cid.get(cid)
        if conv is None:
            return []
        m = self.by_conv.messages(self.state, conv)
        m = apply_late(self.state, PLATFORM, m, "message_id", "sent_at")
        sender = m["sender_type"].astype(str).to_numpy()
        event = m["event"].astype(str).to_numpy()
        agent = self.store.agent_of_msg[m["message_id"].to_numpy()]
        names = self.store.name(agent)
        partner = self.state.conversation_index.at[conv, "platform_user_id"]
        msg = np.array(m["content"].astype(object).where(m["content"].notna(), ""), dtype=object)
        for i in np.flatnonzero(sender == "system").tolist():
            msg[i] = EVENT_TEXT.get(event[i], event[i]).format(names[i])
        who = {
            "customer": (str(partner), "访客"),
            "bot": (ROBOT, "智能机器人"),
            "system": ("system", "系统消息"),
        }
        staff = self.store.staff(agent)
        t = epoch_ms(m["sent_at"])
        records = _records(
            {
                "cid": [cid] * len(m),
                "msgid": np.char.add("m_", m["message_id"].to_numpy().astype(str)),
                "sender_type": [SENDER_TYPE[s] for s in sender.tolist()],
                "sender": [staff[i] if s == "agent" else who[s][0] for i, s in enumerate(sender.tolist())],
                "sender_name": [
                    names[i] if s == "agent" else who[s][1] for i, s in enumerate(sender.tolist())
                ],
                "msg_type": np.zeros(len(m), np.int64),
                "msg": msg,
                "t": t,
                "ts": _local_str(t),
            }
        )
        records = drift(self.state, PLATFORM, records, "t", "sender_type")
        return records + page_with_duplicates(self.state, PLATFORM, records, len(records), 0)

    def satisfaction(self, q) -> dict:
        lo, hi = self.window(q)
        r = self.state.ratings(PLATFORM, lo, hi)
        r = apply_late(self.state, PLATFORM, r, "rating_id", "rated_at")
        r = r.sort_values(["rated_at", "rating_id"], kind="stable")
        total = len(r)
        page, _, _ = self.page_of(r, q)
        conv = page["conversation_id"].to_numpy()
        agent = page["agent_id"].to_numpy().astype(np.int64)
        score = page["csat"].to_numpy().astype(np.int64)
        t = epoch_ms(page["rated_at"])
        records = _records(
            {
                "cid": sobot_cid(conv),
                "partnerid": page["conversation_id"]
                .map(self.state.conversation_index["platform_user_id"])
                .astype(str)
                .to_numpy(),
                "staff_id": self.store.staff(agent),
                "staff_name": self.store.name(agent),
                "type": (agent >= 0).astype(np.int64),
                "score": score,
                "solved": (score >= 3).astype(np.int64),
                "tag": [TAGS[s] for s in score.tolist()],
                "remark": [REMARKS[s] for s in score.tolist()],
                "t": t,
                "ts": _local_str(t),
                "nps": page["nps"].to_numpy().astype(np.int64),
            }
        )
        records = drift(self.state, PLATFORM, records, "cid", "score")
        return {"total_count": total, "list": records}

    def online_now(self) -> set[int]:
        now = self.state.now()
        st = self.state.agent_status(PLATFORM, now - pd.Timedelta(days=2), now)
        return set(st.loc[st["ended_at"].isna() | (st["ended_at"] > now), "agent_id"].astype(int))

    def staff_list(self) -> dict:
        online = self.online_now()
        rows = [
            {
                "staff_id": self.store.staff_of[a],
                "staff_name": self.store.names[a],
                "staff_nick": self.store.names[a],
                "group_name": self.store.teams[a],
                "status": 1 if a in online else 0,
            }
            for a in self.store.agent_ids
        ]
        return {"total_count": len(rows), "list": rows}

    def staff_status_log(self, q) -> dict:
        lo, hi = self.window(q)
        st = self.state.agent_status(PLATFORM, lo, hi).sort_values(["started_at", "agent_id"], kind="stable")
        total = len(st)
        page, page_no, size = self.page_of(st, q)
        codes = {"online": 1, "busy": 2, "away": 3, "offline": 0}
        start_ms, start_str = _ms_and_str(page["started_at"])
        end_ms, end_str = _ms_and_str(page["ended_at"])
        records = _records(
            {
                "staff_id": self.store.staff(page["agent_id"].to_numpy()),
                "status": [codes.get(s, 0) for s in page["status"].astype(str)],
                "start_time": start_ms,
                "start_time_str": start_str,
                "end_time": end_ms,
                "end_time_str": end_str,
            }
        )
        return {"total_count": total, "page_no": page_no, "page_size": size, "list": records}

    def online_stat(self) -> dict:
        live = self.state.live_state(PLATFORM)
        t = int(live["as_of"].value // 10**6)
        return {
            "queue_count": live["waiting"],
            "online_staff_count": live["agents_online"],
            "t": t,
            "ts": _local_str(np.asarray([t]))[0].item(),
        }


def router(state) -> APIRouter:
    impl = _Api(state)
    api = APIRouter()

    def serve(request: Request, key: str, work) -> Response:
        refused = impl.guard(request)
        if refused is not None:
            return refused
        try:
            return _ok(key, work())
        except SobotError as exc:
            return exc.response()

    @api.get("/api/get_token")
    def get_token(request: Request) -> Response:
        return impl.get_token(request.query_params)

    @api.get("/api/online/5/get_chat_list")
    def chat_list(request: Request) -> Response:
        return serve(request, "item", lambda: impl.chat_list(request.query_params))

    @api.get("/api/online/5/get_chat_detail")
    def chat_detail(request: Request) -> Response:
        return serve(request, "items", lambda: impl.chat_detail(request.query_params))

    @api.get("/api/online/5/get_satisfaction")
    def satisfaction(request: Request) -> Response:
        return serve(request, "item", lambda: impl.satisfaction(request.query_params))

    @api.get("/api/online/5/get_staff_list")
    def staff_list(request: Request) -> Response:
        return serve(request, "item", impl.staff_list)

    @api.get("/api/online/5/get_staff_status_log")
    def staff_status_log(request: Request) -> Response:
        return serve(request, "item", lambda: impl.staff_status_log(request.query_params))

    @api.get("/api/online/5/get_online_stat")
    def online_stat(request: Request) -> Response:
        return serve(request, "item", impl.online_stat)

    return api
