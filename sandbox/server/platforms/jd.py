"""JD (京东咚咚) customer service over the JOS gateway.

Documentation followed
- Call protocol, signing and system error codes: https://open.jd.com/home/home#/doc/common?listId=890
  (error table as quoted in https://blog.csdn.net/DianSan_ERP/article/details/142364242:
  2 App Call Limited, 4/5 missing/unsupported version, 7/8 missing/invalid timestamp (at most
  6 minutes of skew), 11/12 missing/invalid signature, 14/15 missing/invalid method; 19 invalid
  access_token from the golden sample).
- jingdong.im.pop.chatlog.get: https://open.jd.com/home/home#/doc/api?apiCateId=53&apiName=jingdong.im.pop.chatlog.get
  (fields per JD open-api-sdk `ChatLogPage` / `ChatLog`).
- jingdong.im.pop.sessionlist.get: same catalogue (`ChatSessionPage`; item fields unverified).
- OAuth refresh: https://open.jd.com/home/home#/doc/common?listId=2 (open-oauth.jd.com/oauth2/refresh_token).
Golden samples: tests/golden/jd/*.json (see tests/golden/README.md).

Endpoints (under the `/jd` prefix)
- `POST|GET /routerjson` – the JOS gateway. `method=`:
    jingdong.im.pop.chatlog.get          chat messages of one customer (360buy_param_json: customer
                                         required; waiter, startTime, endTime, page, pageSize)
    jingdong.im.pop.sessionlist.get      sessions (waiter optional: all waiters when omitted)
    jingdong.im.pop.evaluationlist.get   satisfaction evaluations (sandbox shape: `EvaluationPage`)
    jingdong.im.pop.groupinfo.get        waiter groups with their waiters (sandbox shape)
    jingdong.im.pop.waiterstatus.get     sandbox extension: waiter status intervals
    jingdong.im.pop.realtime.get         sandbox extension: queue length and waiters online now
  Only chatlog and sessionlist have documented response shapes; the others are the sandbox's
  choice in the same style and are marked so in docs/sandbox/jd.md.
- `GET|POST /oauth2/refresh_token` – app_key, app_secret, grant_type=refresh_token,
  refresh_token -> a new access_token (86400 s on the simulated clock). The test refresh token
  is `state.credentials["jd"]["refresh_token"]`.

Auth and signing
- Params: method, app_key, access_token, timestamp (`yyyy-MM-dd HH:mm:ss` GMT+8, at most 6
  minutes from the WALL clock, as JOS checks it against its own time - a connector cannot know
  the simulated clock; within 6 minutes of the simulated clock is accepted too), v=2.0, sign_method=md5, 360buy_param_json (business params
  as one JSON string) and sign = upper-hex MD5(secret + sorted non-empty name+value pairs
  except sign + secret) (`jos_sign`).
- access_token: the configured test token or one from /oauth2/refresh_token; both die when the
  `expire_tokens_after` fault fires (code 19 until faults are cleared or a token is refreshed).

Data
- Envelope `<method with dots as underscores>_responce` (JOS's historic spelling) with
  `"code": "0"` (a string) and the result object.
- Sessions are conversations: `sid` (16 hex, `jd_sid`), customer pin, `waiter` = the first
  agent's account (the shop robot `jd_shop_robot` when no agent took it), startTime, endTime
  (epoch ms; `endTime` is left out while open, as JOS leaves null fields out; a session closed
  and reopened only after the clock shows its first close - the state's "reopened" status
  counts reopens that have not happened yet). A chat message
  belongs to the waiter serving the customer at that moment (the robot before assignment);
  `waiterSend` is true for waiter/robot messages. System events are not chat messages and are
  not served. `time` is epoch ms; `skuId` and `channel` (1) are filler.
- Windows: startTime/endTime `yyyy-MM-dd HH:mm:ss` GMT+8, both inclusive to the second, at
  most 7 days (sandbox choice). Paging: page (from 1) and pageSize (1..100, default 20) inside
  360buy_param_json; `totalRecord` counts every record of the window. Order: time, then id.
- Evaluation `score` 1..5 (5 best); waiter status `status` 1 online (2 busy, 3 away, 0 offline).

Errors: HTTP 200 + `{"error_response": {"code": "<string>", "zh_desc", "en_desc"}}`. Sandbox
choices where no public list was found: 9/10 missing/invalid app_key, 17/18 missing/invalid
business argument, 13 permission denied, 66 backend unavailable, 67 API switched off.

Faults (FaultConfig field -> what the client sees)
- rate_limit: code "2" App Call Limited (zh_desc names the retry_after_s seconds).
- error_codes: code "66" 平台连接后端服务不可用 (retry).
- server_errors / hang: HTTP 503 with an HTML page (after hang_s for hang).
- slow_s: every answer that much later.
- expire_tokens_after: code "19" 无效access_token from then on.
- duplicate_rows: page n > 1 starts with the last N records of page n - 1.
- late_updates: messages, sessions and evaluations show up late_by_s after they happened.
- schema_drift: chatlog (missing `sid`, `time` as a string), sessions (missing `sid`,
  `startTime` as a string), evaluations (missing `sid`, `score` as a string).
- api_off: code "67" 该API已下线或被关闭. permission_denied: code "13" 无权调用此API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandbox.server import faults
from sandbox.server.faults import apply_late, drift, page_with_duplicates
from sandbox.server.platforms._shared import WindowMemo, epoch_ms

PLATFORM = "jd"
ROBOT = "jd_shop_robot"
MAX_SKEW_S = 360
MAX_WINDOW_DAYS = 7
MAX_PAGE_SIZE = 100
TOKEN_TTL_S = 86400
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_SID_MULT = np.uint64(0x9E3779B97F4A7C15)


# -- wire helpers ------------------------------------------------------------------------
def jos_sign(params: dict, secret: str) -> str:
    """JOS md5 signature: upper-hex MD5(secret + sorted name+value (non-empty, no sign) + secret)."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, ""))
    return hashlib.md5((secret + text + secret).encode("utf-8")).hexdigest().upper()


def jd_sid(conversation_ids) -> np.ndarray:
    """The session id (`sid`) the sandbox gives a conversation: 16 hex digits."""
    ids = np.asarray(conversation_ids, dtype=np.int64).astype(np.uint64)
    return np.char.mod("%016x", ids * _SID_MULT)


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_responce"


def _json(body, status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json;charset=UTF-8")


def _error(code: str, zh: str, en: str) -> Response:
    return _json({"error_response": {"code": code, "zh_desc": zh, "en_desc": en}})


class JosError(Exception):
    def __init__(self, code: str, zh: str, en: str):
        super().__init__(en)
        self.parts = (code, zh, en)

    def response(self) -> Response:
        return _error(*self.parts)


def _missing(name: str) -> JosError:
    return JosError("17", f"缺少必选参数:{name}", f"Missing required arguments:{name}")


def _bad(name: str, why: str) -> JosError:
    return JosError("18", f"非法的参数:{name},{why}", f"Invalid arguments:{name}, {why}")


def timestamp_fresh(ts_s: float, simulated_s: float) -> bool:
    """JOS checks `timestamp` against its own (real) clock: within 6 minutes of the wall clock.
    A connector cannot know the sandbox's simulated clock, so real time is what counts; a
    timestamp within 6 minutes of the simulated clock is accepted as well (clients that sign
    with the sandbox clock, such as the server tests)."""
    return abs(ts_s - time.time()) <= MAX_SKEW_S or abs(ts_s - simulated_s) <= MAX_SKEW_S


class JosErrors:
    """How the JOS gateway says each fault (faults.PlatformErrors)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        return _error("2", f"限制时间内调用失败次数,请{int(retry_after_s)}秒后重试", "App Call Limited")

    def error_code(self) -> Response:
        return _error("66", "平台连接后端服务不可用", "Backend service unavailable, please retry")

    def server_error(self) -> Response:
        html = "<html><head><title>503 Service Temporarily Unavailable</title></head>"
        html += "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
        return Response(html, status_code=503, media_type="text/html")

    def api_off(self) -> Response:
        return _error("67", "该API已下线或被关闭", "The API is switched off")

    def permission_denied(self) -> Response:
        return _error("13", "无权调用此API", "Insufficient permissions to call this API")


ERRORS = JosErrors()


def _nullable_ms(series: pd.Series) -> list:
    ms = epoch_ms(series)
    return [None if v < 0 else v for v in ms.tolist()]


def _omit_nulls(records: list[dict], key: str) -> list[dict]:
    """JOS's JSON writer leaves null fields out (an open session has no `endTime`)."""
    for r in records:
        if r.get(key, 0) is None:
            del r[key]
    return records


def _records(columns: dict) -> list[dict]:
    keys = list(columns)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def _parse_time(value, name: str) -> pd.Timestamp:
    if value in (None, ""):
        raise _missing(name)
    try:
        local = dt.datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise _bad(name, "格式应为yyyy-MM-dd HH:mm:ss") from exc
    return pd.Timestamp(local).tz_localize("Asia/Shanghai").tz_convert("UTC")


# -- the shop's waiters and who owns each message -----------------------------------------
class _Shop:
    def __init__(self, state):
        acc = state.channel_accounts(PLATFORM)
        self.agent_ids = [int(a) for a in acc["agent_id"]]
        self.waiter_of_agent = dict(zip(self.agent_ids, acc["account_id"].astype(str), strict=True))
        self.names = dict(zip(self.agent_ids, acc["name"].astype(str), strict=True))
        self.teams = dict(zip(self.agent_ids, acc["team"].astype(str), strict=True))
        self.agent_of_waiter = {w: a for a, w in self.waiter_of_agent.items()}
        self.agent_of_waiter[ROBOT] = -1

        conv = state.data["conversations"]
        size = int(conv["conversation_id"].max()) + 1 if len(conv) else 1
        codes, uniques = pd.factorize(conv["platform_user_id"].astype(str))
        self.customer_of_conv = np.full(size, -1, np.int64)
        self.customer_of_conv[conv["conversation_id"].to_numpy()] = codes
        self.customers = np.asarray(uniques, dtype=object)
        self.customer_code = {c: i for i, c in enumerate(self.customers.tolist())}

        msgs = state.data["messages"]
        msgs = msgs[msgs["channel"] == PLATFORM].sort_values(["conversation_id", "seq"], kind="stable")
        agent = msgs["agent_id"].to_numpy().astype(np.float64)
        agent[agent < 0] = np.nan
        current = pd.Series(agent).groupby(msgs["conversation_id"].to_numpy()).ffill()
        owner = current.fillna(-1).to_numpy().astype(np.int64)
        owner[(msgs["sender_type"] == "bot").to_numpy()] = -1
        n = int(msgs["message_id"].max()) + 1 if len(msgs) else 1
        self.owner_of_msg = np.full(n, -1, np.int64)
        self.owner_of_msg[msgs["message_id"].to_numpy()] = owner
        # when each conversation was reopened (the state's "reopened" status counts reopens that
        # have not happened yet at the clock; sessionlist must not show those)
        self.reopen_ms = np.full(size, np.iinfo(np.int64).max, np.int64)
        reopens = msgs[(msgs["event"] == "reopen").to_numpy()].groupby("conversation_id")["sent_at"].min()
        self.reopen_ms[reopens.index.to_numpy()] = epoch_ms(reopens)
        max_agent = max([*self.agent_ids, int(conv["first_agent_id"].max()) if len(conv) else 0, 0])
        table = [ROBOT] * (max_agent + 2)
        for a, w in self.waiter_of_agent.items():
            table[a + 1] = w
        self.waiter_table = np.asarray(table, dtype=object)

    def waiter(self, agent_ids) -> np.ndarray:
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(self.waiter_table) - 1), ids, -1)
        return self.waiter_table[ids + 1]


class _Gateway:
    def __init__(self, state):
        self.state = state
        self.shop = _Shop(state)
        self.memo = WindowMemo()
        state.credentials[PLATFORM].setdefault("refresh_token", "sandbox-jd-refresh")
        self.methods = {
            "jingdong.im.pop.chatlog.get": self.chatlog,
            "jingdong.im.pop.sessionlist.get": self.sessionlist,
            "jingdong.im.pop.evaluationlist.get": self.evaluations,
            "jingdong.im.pop.groupinfo.get": self.groupinfo,
            "jingdong.im.pop.waiterstatus.get": self.waiterstatus,
            "jingdong.im.pop.realtime.get": self.realtime,
        }

    def token_valid(self, token: str) -> bool:
        state = self.state
        if state.tokens.valid(PLATFORM, token, state.now()):
            return True
        expired = state.faults.fired.get(PLATFORM, {}).get("expire_tokens", 0)
        return token == state.credentials[PLATFORM].get("access_token") and not expired

    def check_protocol(self, p: dict) -> Response | None:
        creds = self.state.credentials[PLATFORM]
        method = p.get("method")
        if not method:
            return _error("14", "缺少方法名参数", "Missing Method")
        if method not in self.methods:
            return _error("15", "不存在的方法名", "Invalid Method")
        if not p.get("app_key"):
            return _error("9", "缺少app_key参数", "Missing App Key")
        if p["app_key"] != creds["app_key"]:
            return _error("10", "无效的app_key", "Invalid App Key")
        if not p.get("timestamp"):
            return _error("7", "缺少时间戳参数", "Missing Timestamp")
        try:
            ts = dt.datetime.strptime(p["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
        except ValueError:
            return _error("8", "非法的时间戳参数", "Invalid Timestamp")
        if not timestamp_fresh(ts.timestamp(), self.state.now().timestamp()):
            return _error("8", "非法的时间戳参数", "Invalid Timestamp")
        if not p.get("v"):
            return _error("4", "缺少版本参数", "Missing Version")
        if p["v"] != "2.0":
            return _error("5", "不支持的版本号", "Unsupported Version")
        if not p.get("sign"):
            return _error("11", "缺少签名参数", "Missing Signature")
        if not hmac.compare_digest(p["sign"].upper(), jos_sign(p, creds["app_secret"])):
            return _error("12", "无效签名", "Invalid Signature")
        if not self.token_valid(p.get("access_token", "")):
            return _error("19", "无效access_token", "Invalid access_token")
        return None

    def handle(self, request: Request, p: dict) -> Response:
        blocked = faults.gate(self.state, PLATFORM, request, ERRORS)
        if blocked is not None:
            return blocked
        refused = self.check_protocol(p)
        if refused is not None:
            return refused
        try:
            raw = p.get("360buy_param_json") or "{}"
            try:
                biz = json.loads(raw)
            except ValueError as exc:
                raise _bad("360buy_param_json", "不是合法的JSON") from exc
            if not isinstance(biz, dict):
                raise _bad("360buy_param_json", "必须是JSON对象")
            result = self.methods[p["method"]](biz)
        except JosError as exc:
            return exc.response()
        return _json({response_key(p["method"]): {"code": "0", **result}})

    # shared -----------------------------------------------------------------------------
    def window(self, biz: dict) -> tuple[pd.Timestamp, pd.Timestamp]:
        lo = _parse_time(biz.get("startTime"), "startTime")
        hi = _parse_time(biz.get("endTime"), "endTime")
        if lo > hi:
            raise _bad("startTime", "不能晚于endTime")
        if hi - lo > pd.Timedelta(days=MAX_WINDOW_DAYS):
            raise _bad("endTime", f"查询时间跨度不能超过{MAX_WINDOW_DAYS}天")
        return lo, hi + pd.Timedelta(milliseconds=999)

    def paging(self, biz: dict) -> tuple[int, int]:
        try:
            page = int(biz.get("page", 1))
            size = int(biz.get("pageSize", 20))
        except (TypeError, ValueError) as exc:
            raise _bad("page", "必须是整数") from exc
        if page < 1:
            raise _bad("page", "必须大于0")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise _bad("pageSize", f"取值范围1-{MAX_PAGE_SIZE}")
        return page, size

    def page_of(self, frame: pd.DataFrame, biz: dict) -> tuple[pd.DataFrame, int]:
        page, size = self.paging(biz)
        rows = page_with_duplicates(self.state, PLATFORM, range(len(frame)), (page - 1) * size, size)
        return frame.iloc[rows.start : rows.stop], len(frame)

    def waiter_filter(self, biz: dict) -> int | None:
        waiter = biz.get("waiter")
        if waiter in (None, ""):
            return None
        return self.shop.agent_of_waiter.get(str(waiter), -999)

    # methods ----------------------------------------------------------------------------
    def chatlog(self, biz: dict) -> dict:
        customer = biz.get("customer")
        if not customer:
            raise _missing("customer")
        lo, hi = self.window(biz)
        agent = self.waiter_filter(biz)
        code = self.shop.customer_code.get(str(customer), -999)
        frame, customers, owners = self.memo.get(self.key("chat", lo, hi), lambda: self.chat_window(lo, hi))
        keep = customers == code
        if agent is not None:
            keep &= owners == agent
        page, total = self.page_of(frame[keep], biz)
        conv = page["conversation_id"].to_numpy()
        records = _records(
            {
                "customer": self.shop.customers[self.shop.customer_of_conv[conv]],
                "waiter": self.shop.waiter(self.shop.owner_of_msg[page["message_id"].to_numpy()]),
                "content": page["content"].astype(object).where(page["content"].notna(), "").to_numpy(),
                "sid": jd_sid(conv),
                "skuId": 100000000000 + (conv * 7919) % 90000000,
                "time": epoch_ms(page["sent_at"]),
                "channel": np.ones(len(page), np.int64),
                "waiterSend": (page["sender_type"] != "customer").to_numpy(),
            }
        )
        records = drift(self.state, PLATFORM, records, "sid", "time")
        return {"ChatLogPage": {"chatLogList": records, "totalRecord": total}}

    def chat_window(self, lo, hi) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Chat messages (no system events) of the window by time, their customers and owners."""
        frame = self.state.messages(PLATFORM, lo, hi)
        frame = frame[(frame["sender_type"] != "system").to_numpy()]
        frame = apply_late(self.state, PLATFORM, frame, "message_id", "sent_at")
        frame = frame.sort_values(["sent_at", "message_id"], kind="stable")
        customers = self.shop.customer_of_conv[frame["conversation_id"].to_numpy()]
        return frame, customers, self.shop.owner_of_msg[frame["message_id"].to_numpy()]

    def session_window(self, lo, hi) -> pd.DataFrame:
        c = self.state.conversations(PLATFORM, lo, hi)
        first = c["first_agent_id"].to_numpy().astype(np.int64)
        c = c.assign(_waiter=np.where(c["assigned_at"].notna().to_numpy(), first, -1))
        c = apply_late(self.state, PLATFORM, c, "conversation_id", "started_at")
        return c.sort_values(["started_at", "conversation_id"], kind="stable")

    def key(self, name: str, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple | None:
        """A memo key: the window, the clock and the late-updates fault (None while the clock runs)."""
        if self.state.clock.speed > 0:
            return None
        cfg = self.state.faults.get(PLATFORM)
        return (name, lo.value, hi.value, self.state.now().value, cfg.late_updates, cfg.late_by_s)

    def sessionlist(self, biz: dict) -> dict:
        lo, hi = self.window(biz)
        agent = self.waiter_filter(biz)
        c = self.memo.get(self.key("sessions", lo, hi), lambda: self.session_window(lo, hi))
        if agent is not None:
            c = c[(c["_waiter"] == agent).to_numpy()]
        page, total = self.page_of(c, biz)
        conv = page["conversation_id"].to_numpy()
        records = _records(
            {
                "sid": jd_sid(conv),
                "customer": self.shop.customers[self.shop.customer_of_conv[conv]],
                "waiter": self.shop.waiter(page["_waiter"].to_numpy()),
                "startTime": epoch_ms(page["started_at"]),
                "endTime": _nullable_ms(page["closed_at"].where(self.ended(page))),
            }
        )
        records = drift(self.state, PLATFORM, _omit_nulls(records, "endTime"), "sid", "startTime")
        return {"ChatSessionPage": {"chatSessionList": records, "totalRecord": total}}

    def ended(self, c: pd.DataFrame) -> np.ndarray:
        """Sessions closed at the clock: closed, or closed and reopened only later."""
        status = c["status"].to_numpy()
        later = self.shop.reopen_ms[c["conversation_id"].to_numpy()] > self.state.now().value // 10**6
        return (status == "closed") | ((status == "reopened") & later)

    def evaluations(self, biz: dict) -> dict:
        lo, hi = self.window(biz)
        agent = self.waiter_filter(biz)
        r = self.state.ratings(PLATFORM, lo, hi)
        rated_by = np.where(r["agent_id"].to_numpy() >= 0, r["agent_id"].to_numpy(), -1)
        if agent is not None:
            r = r[rated_by == agent]
        r = apply_late(self.state, PLATFORM, r, "rating_id", "rated_at")
        r = r.sort_values(["rated_at", "rating_id"], kind="stable")
        page, total = self.page_of(r, biz)
        conv = page["conversation_id"].to_numpy()
        records = _records(
            {
                "sid": jd_sid(conv),
                "customer": self.shop.customers[self.shop.customer_of_conv[conv]],
                "waiter": self.shop.waiter(page["agent_id"].to_numpy()),
                "score": page["csat"].to_numpy().astype(np.int64),
                "time": epoch_ms(page["rated_at"]),
            }
        )
        records = drift(self.state, PLATFORM, records, "sid", "score")
        return {"EvaluationPage": {"evaluationList": records, "totalRecord": total}}

    def groupinfo(self, biz: dict) -> dict:
        groups: dict[str, list[dict]] = {}
        for a in self.shop.agent_ids:
            groups.setdefault(self.shop.teams[a], []).append(
                {"waiter": self.shop.waiter_of_agent[a], "nickName": self.shop.names[a], "robot": False}
            )
        out = [
            {"groupId": i + 1, "groupName": name, "waiterList": waiters}
            for i, (name, waiters) in enumerate(sorted(groups.items()))
        ]
        robot = {"waiter": ROBOT, "nickName": "京小智", "robot": True}
        out.append({"groupId": len(out) + 1, "groupName": "智能机器人", "waiterList": [robot]})
        return {"groupInfoList": out}

    def waiterstatus(self, biz: dict) -> dict:
        lo, hi = self.window(biz)
        agent = self.waiter_filter(biz)
        st = self.state.agent_status(PLATFORM, lo, hi)
        if agent is not None:
            st = st[(st["agent_id"] == agent).to_numpy()]
        st = st.sort_values(["started_at", "agent_id"], kind="stable")
        page, total = self.page_of(st, biz)
        codes = {"online": 1, "busy": 2, "away": 3, "offline": 0}
        records = _records(
            {
                "waiter": self.shop.waiter(page["agent_id"].to_numpy()),
                "status": [codes.get(s, 0) for s in page["status"].astype(str)],
                "startTime": epoch_ms(page["started_at"]),
                "endTime": _nullable_ms(page["ended_at"]),
            }
        )
        return {
            "WaiterStatusPage": {"waiterStatusList": _omit_nulls(records, "endTime"), "totalRecord": total}
        }

    def realtime(self, biz: dict) -> dict:
        live = self.state.live_state(PLATFORM)
        return {
            "RealtimeInfo": {
                "waitingNum": live["waiting"],
                "onlineWaiterNum": live["agents_online"],
                "time": int(live["as_of"].value // 10**6),
            }
        }

    # OAuth --------------------------------------------------------------------------------
    def refresh(self, p: dict) -> Response:
        creds = self.state.credentials[PLATFORM]
        if p.get("app_key") != creds["app_key"] or p.get("app_secret") != creds["app_secret"]:
            return _json({"code": 401, "msg": "app_key or app_secret is invalid"})
        if (
            p.get("grant_type", "refresh_token") != "refresh_token"
            or p.get("refresh_token") != creds["refresh_token"]
        ):
            return _json({"code": 402, "msg": "refresh_token is invalid or expired"})
        now = self.state.now()
        token = self.state.tokens.issue(PLATFORM, now, TOKEN_TTL_S)
        return _json(
            {
                "code": 0,
                "access_token": token.value,
                "expires_in": TOKEN_TTL_S,
                "refresh_token": creds["refresh_token"],
                "scope": "snsapi_base",
                "token_type": "bearer",
                "time": int(now.value // 10**6),
                "uid": "sandbox-jd-shop",
            }
        )


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST" and "form" in request.headers.get("content-type", ""):
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def router(state) -> APIRouter:
    gateway = _Gateway(state)
    api = APIRouter()

    @api.api_route("/routerjson", methods=["GET", "POST"])
    async def routerjson(request: Request) -> Response:
        params = await _params(request)
        return await run_in_threadpool(gateway.handle, request, params)

    @api.api_route("/oauth2/refresh_token", methods=["GET", "POST"])
    async def refresh(request: Request) -> Response:
        return gateway.refresh(await _params(request))

    return api
