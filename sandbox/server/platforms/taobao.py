"""Taobao / Tmall Qianniu (千牛) customer service over the TOP gateway.

Documentation followed
- Call protocol and signing: https://open.taobao.com/doc.htm?docId=101617&docType=1
- Error codes: https://open.taobao.com/doc.htm?docId=114&docType=1
- wangwang.eservice APIs (retired from the live catalogue; fields from TOP ApiMetadata as
  mirrored in the SDKs changkong/open_taobao, pyTOP, bububa/opentaobao and the Java
  `com.taobao.api` SDK): https://open.taobao.com/api.htm?cid=10&docType=2
- Sub-accounts: taobao.sellercenter.subusers.get (bububa/opentaobao `SubUserInfo`).
- OAuth (session renewal): https://open.taobao.com/doc.htm?docId=102635&docType=1
Golden samples: tests/golden/taobao/*.json (see tests/golden/README.md).

Endpoints (under the `/taobao` prefix)
- `GET|POST /router/rest` – the TOP gateway. `method=`:
    taobao.wangwang.eservice.chatpeers.get    buyers a (sub-)account chatted with, per day
    taobao.wangwang.eservice.chatlog.get      messages between one account and one buyer
    taobao.wangwang.eservice.evals.get        satisfaction evaluations (eval_code)
    taobao.wangwang.eservice.receivenum.get   buyers received per account and day
    taobao.wangwang.eservice.avgwaittime.get  average waiting time per account and day
    taobao.wangwang.eservice.loginlogs.get    login / logout log of one account (agent status)
    taobao.sellercenter.subusers.get          the shop's sub-accounts (agents)
    taobao.user.seller.get                    the seller (main account) of the session: nick, user_id
                                              (https://open.taobao.com/api.htm?docId=21349&docType=2)
  There is no live-state method: Qianniu's eservice data is a D+1 source.
- `POST /token` – OAuth `grant_type=refresh_token` (client_id, client_secret, refresh_token)
  issues a new session key (`access_token`, 86400 s on the simulated clock). The test
  refresh token is `state.credentials["taobao"]["refresh_token"]`.

Auth and signing
- Common params: method, app_key, session, timestamp (`yyyy-MM-dd HH:mm:ss`, GMT+8, at most
  10 minutes from the WALL clock, as TOP checks it against its own time - a connector cannot
  know the simulated clock; within 10 minutes of the simulated clock is accepted too), v=2.0, format=json (default json; xml is refused),
  sign_method md5 | hmac | hmac-sha256, sign. `simplify` and `charset` are accepted and ignored.
- sign: every non-empty param except `sign`, sorted by name, concatenated `name+value`;
  md5 = MD5(secret + s + secret), hmac = HMAC_MD5(secret, s), hmac-sha256 = HMAC_SHA256(secret, s),
  upper-case hex (`top_sign`).
- The session is the configured test session or one issued by `/token`; both die when the
  `expire_tokens_after` fault fires (code 27 until faults are cleared or a new session is issued).

Identities
- Account ids are `cntaobao` + nick: sub-accounts `cntaobao<shop>:<sub>`, the main account
  `cntaobao<shop>`. The shop's bot (店小蜜) speaks as the main account, and a buyer's messages
  belong to the account serving the buyer at that moment (the main account before an agent is
  assigned, and while abandoned). Buyers are `cntaobao` + buyer nick.
- Sandbox extension: every chat message and evaluation carries `session_id` (int), the
  conversation id, so the warehouse can key conversations (the real API has none).

Windows, paging, time formats
- start_date / end_date are `yyyy-MM-dd` or `yyyy-MM-dd HH:mm:ss` (GMT+8); the window is
  day-granular: whole days from start_date's day to end_date's day, both inclusive. At most 7
  days, within the last 90 days, and never today (code 15 `isv.invalid-parameter`,
  "不能查询当天的记录"). The state hides today's data as well.
- No method pages; lists are wrapped TOP-style (`{"msgs": {"msg": [...]}}`) and, as TOP does,
  a list with no items is left out of the answer. Times are `yyyy-MM-dd HH:mm:ss` GMT+8 strings.
- Enums: chatlog `direction` 0 = from_id (the account) -> to_id (the buyer), 1 = buyer -> account;
  evals `eval_code` 0 非常满意, 1 满意, 2 一般, 3 不满意, 4 非常不满意 (= 5 - csat);
  loginlogs `type` "0" login, "1" logout; subusers `status` 1 normal, `is_online` 2 takes chats.

Errors: HTTP 200 + `{"error_response": {code, msg, [sub_code, sub_msg], request_id}}`:
21/22 missing/invalid method, 23 invalid format, 24/25 missing/invalid signature, 26/27
missing/invalid session, 28/29 missing/invalid app key, 30/31 missing/invalid timestamp,
32/34 missing/unsupported version, 40/41 missing/invalid arguments, 15 business errors.

Faults (FaultConfig field -> what the client sees)
- rate_limit: code 7 "App Call Limited", sub_code accesscontrol.limited-by-app-access-count,
  sub_msg "This ban will last for N more seconds" (N = retry_after_s).
- error_codes: code 15 "Remote service error", sub_code isp.top-remote-connection-timeout
  (an `isp.*` sub_code: retry).
- server_errors / hang: HTTP 502 with the gateway's HTML page (after hang_s for hang).
- slow_s: every answer that much later.
- expire_tokens_after: code 27 "Invalid session" / invalid-sessionkey from then on.
- duplicate_rows: no method pages, so chatlog and evals answers repeat their last N records.
- late_updates: messages and evaluations show up late_by_s after they happened.
- schema_drift: chatlog messages (missing `time`, `direction` as a string), evals (missing
  `eval_time`, `eval_code` as a string), subusers (missing `nick`, `sub_id` as a string).
- api_off: code 22 "Invalid Method", sub_code isv.method-not-permit (the API is switched off).
- permission_denied: code 11 "Insufficient ISV Permissions", sub_code
  isv.permission-api-package-limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import string
import time

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandbox.server import faults
from sandbox.server.faults import apply_late, drift, page_with_duplicates
from sandbox.server.platforms._shared import WindowMemo, epoch_ms

PLATFORM = "taobao"
PREFIX = "cntaobao"
MAX_SKEW_S = 600
MAX_WINDOW_DAYS = 7
MAX_AGE_DAYS = 90
MAX_IDS = 30
SESSION_TTL_S = 86400
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_OFFSET_MS = 8 * 3600 * 1000
_DAY_MS = 86400 * 1000
_RID_ALPHABET = string.ascii_lowercase + string.digits


# -- wire helpers ------------------------------------------------------------------------
def top_sign(params: dict, secret: str, sign_method: str = "md5") -> str:
    """TOP request signature (upper-case hex) over every non-empty param but `sign`."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, ""))
    if sign_method == "md5":
        digest = hashlib.md5((secret + text + secret).encode("utf-8")).hexdigest()
    elif sign_method == "hmac":
        digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.md5).hexdigest()
    elif sign_method == "hmac-sha256":
        digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown sign_method {sign_method!r}")
    return digest.upper()


def response_key(method: str) -> str:
    """`taobao.wangwang.eservice.chatlog.get` -> `wangwang_eservice_chatlog_get_response`."""
    name = method[len("taobao.") :] if method.startswith("taobao.") else method
    return name.replace(".", "_") + "_response"


def _request_id() -> str:
    return "".join(secrets.choice(_RID_ALPHABET) for _ in range(12))


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json;charset=UTF-8", headers=headers)


def _error(code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None) -> Response:
    body: dict = {"code": code, "msg": msg}
    if sub_code:
        body["sub_code"] = sub_code
    if sub_msg:
        body["sub_msg"] = sub_msg
    body["request_id"] = _request_id()
    return _json({"error_response": body})


class TopError(Exception):
    """A business or protocol error, answered as `error_response`."""

    def __init__(self, code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None):
        super().__init__(msg)
        self.args4 = (code, msg, sub_code, sub_msg)

    def response(self) -> Response:
        return _error(*self.args4)


def _invalid(sub_msg: str) -> TopError:
    return TopError(15, "Remote service error", "isv.invalid-parameter", sub_msg)


def timestamp_fresh(ts_s: float, simulated_s: float) -> bool:
    """TOP checks `timestamp` against its own (real) clock: within 10 minutes of the wall
    clock. A connector cannot know the sandbox's simulated clock, so real time is what counts;
    a timestamp within 10 minutes of the simulated clock is accepted as well (clients that
    sign with the sandbox clock, such as the server tests)."""
    return abs(ts_s - time.time()) <= MAX_SKEW_S or abs(ts_s - simulated_s) <= MAX_SKEW_S


class TopErrors:
    """How the TOP gateway says each fault (faults.PlatformErrors)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        return _error(
            7,
            "App Call Limited",
            "accesscontrol.limited-by-app-access-count",
            f"This ban will last for {int(retry_after_s)} more seconds",
        )

    def error_code(self) -> Response:
        return _error(
            15, "Remote service error", "isp.top-remote-connection-timeout", "远程服务调用超时，请重试"
        )

    def server_error(self) -> Response:
        html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
        html += "<p>The requested URL could not be retrieved.</p><hr/>Tengine</body></html>"
        return Response(html, status_code=502, media_type="text/html")

    def api_off(self) -> Response:
        return _error(22, "Invalid Method", "isv.method-not-permit", "该API已下线或被关闭")

    def permission_denied(self) -> Response:
        return _error(
            11, "Insufficient ISV Permissions", "isv.permission-api-package-limit", "该应用无权调用此API"
        )


ERRORS = TopErrors()


# -- time helpers -----------------------------------------------------------------------


def _local_str(ms: np.ndarray) -> np.ndarray:
    """Epoch ms -> 'yyyy-MM-dd HH:mm:ss' in GMT+8."""
    local = (np.asarray(ms, dtype=np.int64) + _OFFSET_MS).astype("datetime64[ms]").astype("datetime64[s]")
    if local.size == 0:  # np.char.replace fails on an empty array
        return np.asarray([], dtype=object)
    return np.char.replace(np.datetime_as_string(local, unit="s"), "T", " ")


def _local_day(ms: np.ndarray) -> np.ndarray:
    return (np.asarray(ms, dtype=np.int64) + _OFFSET_MS) // _DAY_MS


def _day_str(days: np.ndarray, suffix: str = "") -> list[str]:
    out = np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]"), unit="D")
    return [f"{d}{suffix}" for d in out.tolist()]


def _parse_date(value: str | None, name: str) -> dt.date:
    if not value:
        raise TopError(40, f"Missing required arguments:{name}")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    raise TopError(41, f"Invalid arguments:{name}")


def _records(columns: dict) -> list[dict]:
    keys = list(columns)
    values = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns.values()]
    return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


# -- the shop's accounts and who owns each message ----------------------------------------
class _Shop:
    """Per-message annotations built once: the owning account and the buyer."""

    def __init__(self, state):
        acc = state.channel_accounts(PLATFORM)
        nicks = acc["account_id"].astype(str).tolist()
        self.main_nick = nicks[0].split(":", 1)[0] if nicks else "sandbox_shop"
        self.main_id = PREFIX + self.main_nick
        self.agent_ids = [int(a) for a in acc["agent_id"]]
        self.account_of_agent = {a: PREFIX + n for a, n in zip(self.agent_ids, nicks, strict=True)}
        self.names = dict(zip(self.agent_ids, acc["name"].astype(str), strict=True))
        self.nicks = dict(zip(self.agent_ids, nicks, strict=True))
        self.agent_of_account = {v: k for k, v in self.account_of_agent.items()}
        self.agent_of_account[self.main_id] = -1

        conv = state.data["conversations"]
        size = int(conv["conversation_id"].max()) + 1 if len(conv) else 1
        codes, uniques = pd.factorize(conv["platform_user_id"].astype(str))
        self.buyer_of_conv = np.full(size, -1, np.int64)
        self.buyer_of_conv[conv["conversation_id"].to_numpy()] = codes
        self.buyers = np.asarray([PREFIX + u for u in uniques], dtype=object)
        self.buyer_code = {b: i for i, b in enumerate(self.buyers.tolist())}
        closed = np.full(size, np.iinfo(np.int64).min, np.int64)
        closed[conv["conversation_id"].to_numpy()] = epoch_ms(conv["first_closed_at"])
        self.first_closed_ms = closed

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
        max_agent = max([*self.agent_ids, int(msgs["agent_id"].max()) if len(msgs) else 0, 0])
        table = [self.main_id] * (max_agent + 2)
        for a, account in self.account_of_agent.items():
            table[a + 1] = account
        self.account_table = np.asarray(table, dtype=object)

    def account(self, agent_ids: np.ndarray) -> np.ndarray:
        """Agent ids (-1 = the main account / bot) -> TOP account ids."""
        ids = np.asarray(agent_ids, dtype=np.int64)
        ids = np.where((ids >= -1) & (ids < len(self.account_table) - 1), ids, -1)
        return self.account_table[ids + 1]


# -- the gateway ------------------------------------------------------------------------
class _Gateway:
    def __init__(self, state):
        self.state = state
        self.shop = _Shop(state)
        self.memo = WindowMemo()
        creds = state.credentials[PLATFORM]
        creds.setdefault("refresh_token", "sandbox-taobao-refresh")
        self.methods = {
            "taobao.wangwang.eservice.chatpeers.get": self.chatpeers,
            "taobao.wangwang.eservice.chatlog.get": self.chatlog,
            "taobao.wangwang.eservice.evals.get": self.evals,
            "taobao.wangwang.eservice.receivenum.get": self.receivenum,
            "taobao.wangwang.eservice.avgwaittime.get": self.avgwaittime,
            "taobao.wangwang.eservice.loginlogs.get": self.loginlogs,
            "taobao.sellercenter.subusers.get": self.subusers,
            "taobao.user.seller.get": self.seller,
        }

    # protocol ---------------------------------------------------------------------------
    def session_valid(self, session: str) -> bool:
        state = self.state
        if state.tokens.valid(PLATFORM, session, state.now()):
            return True
        expired = state.faults.fired.get(PLATFORM, {}).get("expire_tokens", 0)
        return session == state.credentials[PLATFORM].get("session") and not expired

    def check_protocol(self, p: dict) -> Response | None:
        creds = self.state.credentials[PLATFORM]
        method = p.get("method")
        if not method:
            return _error(21, "Missing Method")
        if method not in self.methods:
            return _error(22, "Invalid Method")
        if p.get("format", "json") != "json":
            return _error(23, "Invalid Format", "isv.invalid-format", "the sandbox answers format=json only")
        if not p.get("app_key"):
            return _error(28, "Missing App Key")
        if p["app_key"] != creds["app_key"]:
            return _error(29, "Invalid App Key")
        if not p.get("timestamp"):
            return _error(30, "Missing Timestamp")
        try:
            ts = dt.datetime.strptime(p["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
        except ValueError:
            return _error(
                31, "Invalid Timestamp", "isv.invalid-timestamp", "timestamp格式应为yyyy-MM-dd HH:mm:ss"
            )
        if not timestamp_fresh(ts.timestamp(), self.state.now().timestamp()):
            return _error(
                31, "Invalid Timestamp", "isv.invalid-timestamp", "时间戳与服务器时间相差超过10分钟"
            )
        if not p.get("v"):
            return _error(32, "Missing Version")
        if p["v"] != "2.0":
            return _error(34, "Unsupported Version")
        if not p.get("sign"):
            return _error(24, "Missing Signature")
        sign_method = p.get("sign_method", "md5")
        if sign_method not in ("md5", "hmac", "hmac-sha256"):
            return _error(41, "Invalid arguments:sign_method")
        if not hmac.compare_digest(p["sign"].upper(), top_sign(p, creds["app_secret"], sign_method)):
            return _error(25, "Invalid signature")
        if not p.get("session"):
            return _error(26, "Missing Session")
        if not self.session_valid(p["session"]):
            return _error(27, "Invalid session", "invalid-sessionkey", "SessionKey非法或已过期")
        return None

    def handle(self, request: Request, p: dict) -> Response:
        blocked = faults.gate(self.state, PLATFORM, request, ERRORS)
        if blocked is not None:
            return blocked
        refused = self.check_protocol(p)
        if refused is not None:
            return refused
        method = p["method"]
        try:
            body = self.methods[method](p)
        except TopError as exc:
            return exc.response()
        body["request_id"] = _request_id()
        return _json({response_key(method): body})

    # windows ----------------------------------------------------------------------------
    def window(self, p: dict) -> tuple[pd.Timestamp, pd.Timestamp, int, int]:
        start = _parse_date(p.get("start_date"), "start_date")
        end = _parse_date(p.get("end_date"), "end_date")
        today = self.state.now().tz_convert("Asia/Shanghai").date()
        if start > end:
            raise _invalid("start_date不能晚于end_date")
        if end >= today:
            raise _invalid("不能查询当天的记录")
        if (end - start).days + 1 > MAX_WINDOW_DAYS:
            raise _invalid("查询时间跨度不能超过7天")
        if (today - start).days > MAX_AGE_DAYS:
            raise _invalid("只能查询90天以内的记录")
        lo = pd.Timestamp(start).tz_localize("Asia/Shanghai").tz_convert("UTC")
        hi = pd.Timestamp(end + dt.timedelta(days=1)).tz_localize("Asia/Shanghai").tz_convert("UTC")
        epoch = dt.date(1970, 1, 1)
        return lo, hi - pd.Timedelta(milliseconds=1), (start - epoch).days, (end - epoch).days

    def ids(self, p: dict, name: str, many: bool = True) -> list[str]:
        raw = p.get(name)
        if not raw:
            raise TopError(40, f"Missing required arguments:{name}")
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if not many and len(ids) != 1:
            raise TopError(41, f"Invalid arguments:{name}")
        if len(ids) > MAX_IDS:
            raise _invalid(f"{name}最多支持{MAX_IDS}个id")
        if any(not i.startswith(PREFIX) for i in ids):
            raise _invalid(f"{name}必须以cntaobao开头")
        return ids

    def agents_of(self, ids: list[str]) -> list[tuple[str, int]]:
        return [(i, self.shop.agent_of_account[i]) for i in ids if i in self.shop.agent_of_account]

    def chat_messages(self, lo, hi) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Visible chat messages (no system events) in the window by time, their owners and
        buyers (memoised: a sync calls chatlog once per account and buyer)."""
        cfg = self.state.faults.get(PLATFORM)
        key = ("chat", lo.value, hi.value, self.state.now().value, cfg.late_updates, cfg.late_by_s)
        key = None if self.state.clock.speed > 0 else key

        def build():
            frame = self.state.messages(PLATFORM, lo, hi)
            frame = frame[(frame["sender_type"] != "system").to_numpy()]
            frame = apply_late(self.state, PLATFORM, frame, "message_id", "sent_at")
            frame = frame.sort_values(["sent_at", "message_id"], kind="stable")
            owner = self.shop.owner_of_msg[frame["message_id"].to_numpy()]
            return frame, owner, self.shop.buyer_of_conv[frame["conversation_id"].to_numpy()]

        return self.memo.get(key, build)

    # methods ----------------------------------------------------------------------------
    def chatpeers(self, p: dict) -> dict:
        chat_id = self.ids(p, "chat_id", many=False)[0]
        lo, hi, _, _ = self.window(p)
        agent = self.shop.agent_of_account.get(chat_id)
        if agent is None:
            return {"ret": 10000, "count": 0}
        frame, owner, buyers = self.chat_messages(lo, hi)
        mine = owner == agent
        buyer = buyers[mine]
        day = _local_day(epoch_ms(frame["sent_at"])[mine])
        pairs = pd.DataFrame({"day": day, "buyer": buyer}).drop_duplicates()
        pairs["uid"] = self.shop.buyers[pairs["buyer"].to_numpy()]
        pairs = pairs.sort_values(["day", "uid"], kind="stable")
        body: dict = {"ret": 10000, "count": len(pairs)}
        if len(pairs):
            body["chatpeers"] = {"chatpeer": _records({"uid": pairs["uid"], "date": _day_str(pairs["day"])})}
        return body

    def chatlog(self, p: dict) -> dict:
        from_id = self.ids(p, "from_id", many=False)[0]
        to_id = self.ids(p, "to_id", many=False)[0]
        lo, hi, _, _ = self.window(p)
        agent = self.shop.agent_of_account.get(from_id)
        buyer = self.shop.buyer_code.get(to_id)
        if agent is None or buyer is None:
            return {"ret": 10000, "count": 0}
        frame, owner, buyers = self.chat_messages(lo, hi)
        page = frame[(owner == agent) & (buyers == buyer)]
        records = _records(
            {
                "direction": np.where((page["sender_type"] == "customer").to_numpy(), 1, 0),
                "time": _local_str(epoch_ms(page["sent_at"])),
                "content": page["content"].astype(object).where(page["content"].notna(), "").to_numpy(),
                "session_id": page["conversation_id"].to_numpy(),
            }
        )
        records = drift(self.state, PLATFORM, records, "time", "direction")
        records = records + page_with_duplicates(self.state, PLATFORM, records, len(records), 0)
        body: dict = {"ret": 10000, "count": len(records)}
        if records:
            body["msgs"] = {"msg": records}
        return body

    def evals(self, p: dict) -> dict:
        ids = self.ids(p, "service_staff_id")
        lo, hi, _, _ = self.window(p)
        wanted = [a for _, a in self.agents_of(ids)]
        r = self.state.ratings(PLATFORM, lo, hi)
        r = apply_late(self.state, PLATFORM, r, "rating_id", "rated_at")
        agent = np.where(r["agent_id"].to_numpy() >= 0, r["agent_id"].to_numpy(), -1)
        r = r[np.isin(agent, wanted)].sort_values(["rated_at", "rating_id"], kind="stable")
        rated = epoch_ms(r["rated_at"])
        conv = r["conversation_id"].to_numpy()
        invited = self.shop.first_closed_ms[conv]
        invited = np.where((invited > 0) & (invited <= rated), invited, rated - 30_000)
        records = _records(
            {
                "eval_sender": self.shop.account(r["agent_id"].to_numpy()),
                "eval_recer": self.shop.buyers[self.shop.buyer_of_conv[conv]],
                "send_time": _local_str(invited),
                "eval_time": _local_str(rated),
                "eval_code": 5 - r["csat"].to_numpy().astype(np.int64),
                "session_id": conv,
            }
        )
        records = drift(self.state, PLATFORM, records, "eval_time", "eval_code")
        records = records + page_with_duplicates(self.state, PLATFORM, records, len(records), 0)
        body: dict = {"result_code": 0, "result_count": len(records)}
        if records:
            body["staff_eval_details"] = {"eval_detail": records}
        return body

    def _grid(
        self, ids, day0: int, day1: int, stats: pd.DataFrame
    ) -> list[tuple[str, list[tuple[str, int]]]]:
        """[(date, [(account, value), ...]), ...] for every day and every known account."""
        known = self.agents_of(ids)
        lookup = {(int(d), int(a)): int(v) for d, a, v in stats.itertuples(index=False)}
        out = []
        for day in range(day0, day1 + 1):
            date = _day_str(np.asarray([day]), " 00:00:00")[0]
            out.append((date, [(acc, lookup.get((day, a), 0)) for acc, a in known]))
        return out

    def receivenum(self, p: dict) -> dict:
        ids = self.ids(p, "service_staff_id")
        lo, hi, day0, day1 = self.window(p)
        frame = self.state.messages(PLATFORM, lo, hi)
        frame = frame[(frame["sender_type"] == "agent").to_numpy()]
        stats = pd.DataFrame(
            {
                "day": _local_day(epoch_ms(frame["sent_at"])),
                "agent": self.shop.owner_of_msg[frame["message_id"].to_numpy()],
                "conv": frame["conversation_id"].to_numpy(),
            }
        )
        stats = stats.groupby(["day", "agent"])["conv"].nunique().reset_index()
        grid = self._grid(ids, day0, day1, stats)
        days = [
            {
                "reply_date": date,
                "reply_stat_by_ids": {
                    "reply_stat_by_id": [{"user_id": acc, "reply_num": v} for acc, v in rows]
                },
            }
            for date, rows in grid
        ]
        return {"reply_stat_list_on_days": {"reply_stat_on_day": days}} if days else {}

    def avgwaittime(self, p: dict) -> dict:
        ids = self.ids(p, "service_staff_id")
        lo, hi, day0, day1 = self.window(p)
        c = self.state.conversations(PLATFORM, lo, hi)
        c = c[c["first_response_at"].notna() & (c["first_agent_id"] >= 0)]
        stats = pd.DataFrame(
            {
                "day": _local_day(epoch_ms(c["started_at"])),
                "agent": c["first_agent_id"].to_numpy().astype(np.int64),
                "wait": c["frt_s"].to_numpy(),
            }
        )
        stats = stats.groupby(["day", "agent"])["wait"].mean().round().astype(np.int64).reset_index()
        grid = self._grid(ids, day0, day1, stats)
        days = [
            {
                "waiting_date": date,
                "waiting_time_by_ids": {
                    "waiting_time_by_id": [
                        {"service_staff_id": acc, "avg_waiting_times": v} for acc, v in rows
                    ]
                },
            }
            for date, rows in grid
        ]
        return {"waiting_time_list_on_days": {"waiting_times_on_day": days}} if days else {}

    def loginlogs(self, p: dict) -> dict:
        staff = self.ids(p, "service_staff_id", many=False)[0]
        lo, hi, _, _ = self.window(p)
        agent = self.shop.agent_of_account.get(staff)
        st = self.state.agent_status(PLATFORM, lo, hi)
        st = st[(st["agent_id"] == agent).to_numpy()] if agent is not None else st.iloc[:0]
        start = epoch_ms(st["started_at"])
        end = epoch_ms(st["ended_at"])
        end_ok = (end > 0) & (end <= hi.value // 10**6)
        times = np.concatenate([start, end[end_ok]])
        kinds = np.concatenate([np.zeros(len(start), np.int64), np.ones(int(end_ok.sum()), np.int64)])
        order = np.lexsort((kinds, times))
        records = _records({"time": _local_str(times[order]), "type": kinds[order].astype(str)})
        body: dict = {"count": len(records), "user_id": staff}
        if records:
            body["loginlogs"] = {"login_log": records}
        return body

    def subusers(self, p: dict) -> dict:
        nick = p.get("nick")
        if not nick:
            raise TopError(40, "Missing required arguments:nick")
        if nick != self.shop.main_nick:
            raise _invalid("只能查询属于自己的账号信息")
        seller_id = 2200000000 + sum(map(ord, self.shop.main_nick))
        records = [
            {
                "nick": self.shop.nicks[a],
                "full_name": self.shop.names[a],
                "seller_id": seller_id,
                "seller_nick": self.shop.main_nick,
                "status": 1,
                "is_online": 2,
                "sub_id": 3300000000 + a,
            }
            for a in self.shop.agent_ids
        ]
        records = drift(self.state, PLATFORM, records, "nick", "sub_id")
        return {"subusers": {"sub_user_info": records}} if records else {}

    def seller(self, p: dict) -> dict:
        """taobao.user.seller.get: the seller (main account) the session belongs to."""
        fields = p.get("fields") or "nick,user_id"
        user = {
            "nick": self.shop.main_nick,
            "user_id": 2200000000 + sum(map(ord, self.shop.main_nick)),
            "type": "B",
        }
        wanted = {f.strip() for f in fields.split(",")}
        return {"user": {k: v for k, v in user.items() if k in wanted} or user}

    # OAuth --------------------------------------------------------------------------------
    def token(self, p: dict) -> Response:
        creds = self.state.credentials[PLATFORM]
        if p.get("grant_type") != "refresh_token":
            return _json(
                {"error": "unsupported_grant_type", "error_description": "grant_type must be refresh_token"},
                400,
            )
        if p.get("client_id") != creds["app_key"] or p.get("client_secret") != creds["app_secret"]:
            return _json(
                {"error": "invalid_client", "error_description": "client_id or client_secret is wrong"}, 401
            )
        if p.get("refresh_token") != creds["refresh_token"]:
            return _json(
                {"error": "invalid_grant", "error_description": "refresh_token is invalid or expired"}, 400
            )
        now = self.state.now()
        token = self.state.tokens.issue(PLATFORM, now, SESSION_TTL_S)
        return _json(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": SESSION_TTL_S,
                "expire_time": int(token.expires_at * 1000),
                "refresh_token": creds["refresh_token"],
                "re_expires_in": 30 * SESSION_TTL_S,
                "taobao_user_nick": self.shop.main_nick,
                "taobao_user_id": str(2200000000 + sum(map(ord, self.shop.main_nick))),
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

    @api.api_route("/router/rest", methods=["GET", "POST"])
    async def rest(request: Request) -> Response:
        params = await _params(request)
        return await run_in_threadpool(gateway.handle, request, params)

    @api.post("/token")
    async def token(request: Request) -> Response:
        return gateway.token(await _params(request))

    return api
