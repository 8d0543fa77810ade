"""WeCom 微信客服 (WeChat Customer Service inside 企业微信), served under `/wecom`.

Documentation followed:
- access token: https://developer.work.weixin.qq.com/document/path/91039 (获取access_token)
- messages: https://developer.work.weixin.qq.com/document/path/94670 (接收消息和事件 / 读取消息)
- servicers: https://developer.work.weixin.qq.com/document/path/94645 (获取接待人员列表)
- accounts: https://developer.work.weixin.qq.com/document/path/94661 (获取客服账号列表)
- error codes: https://developer.work.weixin.qq.com/document/path/90313 (全局错误码)
- service states (for the hand-off choice below): https://developer.work.weixin.qq.com/document/path/94669

Endpoints (all answer HTTP 200 with `errcode`/`errmsg`, 0/"ok" on success):
- `GET  /cgi-bin/gettoken?corpid=&corpsecret=` -> `{errcode, errmsg, access_token, expires_in: 7200}`.
  The token lives 7200 s on the simulated clock. Wrong corpid: 40013; wrong secret: 40001.
- `POST /cgi-bin/kf/sync_msg?access_token=` body `{cursor?, token?, limit?, voice_format?, open_kfid?}`
  -> `{errcode, errmsg, next_cursor, has_more (0|1), msg_list}`. `limit` is 1..1000 (default 1000,
  40058 otherwise). `token` (the callback token) is accepted and ignored. `open_kfid`, when given, must
  be the account's (95000 otherwise).
- `GET  /cgi-bin/kf/servicer/list?access_token=&open_kfid=` -> `servicer_list: [{userid, status}]`,
  status 0 接待中 (on shift now), 1 停止接待. This is the agent-status snapshot.
- `POST /cgi-bin/kf/account/list?access_token=` body `{offset, limit}` (GET also accepted, as in the
  older doc) -> `account_list: [{open_kfid, name, avatar}]`.
- `GET  /cgi-bin/kf/sandbox/live_state?access_token=&open_kfid=` -> `{errcode, errmsg, open_kfid,
  waiting_cnt, servicer_online_cnt, update_time}`. **Sandbox-specific**: WeCom has no real-time queue
  endpoint (`kf/get_corp_statistic` is daily); a connector must treat this one as optional.

sync_msg records (`msg_list`), ordered by time then message id:
- `msgid` is a string (`from_msgid_<n>`), `send_time` unix seconds, `origin` 3 customer, 4 system
  event, 5 servicer (agent). Text messages carry `open_kfid`, `external_userid` (the customer's
  WeCom id) and `text.content`; origin 5 adds `servicer_userid` (the agent's WeCom account id).
  No conversation id appears anywhere: WeCom has none.
- Events are origin 4, `msgtype: "event"`, `event.event_type: "session_status_change"` with
  `event.open_kfid`, `event.external_userid` and `event.change_type`:
  1 接入 (assign, `new_servicer_userid`, `msg_code`), 2 转接 (transfer, `old_`/`new_servicer_userid`),
  3 结束 (close, `old_servicer_userid` when a servicer had it, `msg_code`), 4 重新接入 (reopen,
  `new_servicer_userid`, `msg_code`), and **0 = bot→human hand-off (sandbox choice)**: the API/bot moved the
  session from 智能助手接待 (service_state 1) to 待接入池排队中 (service_state 2). Real WeCom sends no
  event for that move (the bot made it itself); the sandbox shows it as change_type 0 without any
  servicer field so the human queue start is observable. It is usually followed by change_type 1.
- Visibility (applied in `SandboxState`): only the last 3 days; bot replies (sent through
  `send_msg`) are never returned.

Cursor: `next_cursor` is opaque (base64 of the arrival time in ms and the message id of the last
record returned). Passing it back returns what arrived after it, so it keeps working while the live
clock moves; with no cursor the read starts at the oldest retained message. `has_more` is 1 while more
records are visible now. An empty page returns the cursor it was given. A malformed cursor: 40058.

Errors (HTTP 200 + errcode, errmsg in WeCom's `..., hint: [...], from ip: ..., more info at ...`
form): 41001 token missing, 40014 invalid token, 42001 token expired (a token this server issued that
has expired or was revoked), 40058 invalid parameter, 95000 invalid open_kfid.

Faults (`FaultConfig` field -> what a client sees here; `gettoken` itself is never faulted):
- rate_limit: errcode 45009 "api freq out of limit" (HTTP 200); retry_after_s is not sent (WeCom
  has no such header).
- error_codes: errcode 45033 "api concurrent out of limit" (HTTP 200, retryable).
- server_errors / hang: HTTP 502 with an HTML body (after `hang_s` for hang); slow_s: late answers.
- expire_tokens_after: after N data requests every issued token dies -> 42001; get a new token.
- duplicate_rows: each sync_msg page (after the first) starts with that many records of the previous
  page; the page still holds at most `limit` records.
- late_updates: ~10 % of messages arrive `late_by_s` after their send_time; they are returned after
  the cursor when they arrive (sync_msg order is arrival order), so a cursor client never loses them.
- schema_drift: new_field adds `sandbox_new_field`; missing_field drops `msgid` from a share of
  records; changed_type turns `send_time` into a string in a share.
- api_off: errcode 48002 "api forbidden"; permission_denied: errcode 60011 "no privilege to access".
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sandbox.server.faults import _hit, apply_late, drift, gate, page_with_duplicates

PLATFORM = "wecom"
TOKEN_TTL_S = 7200
MAX_LIMIT = 1000
LATE_SHARE = 0.1  # the share apply_late uses by default
CHANGE_TYPE = {"handoff": 0, "assign": 1, "transfer": 2, "close": 3, "reopen": 4}
AVATAR = "https://wework.qpic.cn/wwhead/sandbox/0"


def _errmsg(code: int, msg: str) -> str:
    hint = f"{int(time.time())}_{code % 100}_{secrets.token_hex(6)}"
    return f"{msg}, hint: [{hint}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"


def error(code: int, msg: str) -> JSONResponse:
    """A WeCom error: HTTP 200 with errcode and errmsg."""
    return JSONResponse({"errcode": code, "errmsg": _errmsg(code, msg)})


class WecomErrors:
    """How WeCom says each fault (see the module docstring)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        return error(45009, "api freq out of limit")

    def error_code(self) -> Response:
        return error(45033, "api concurrent out of limit")

    def server_error(self) -> Response:
        return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502)

    def api_off(self) -> Response:
        return error(48002, "api forbidden")

    def permission_denied(self) -> Response:
        return error(60011, "no privilege to access/modify contact/party/agent")


def encode_cursor(arrival_ms: int, message_id: int) -> str:
    return base64.urlsafe_b64encode(f"{arrival_ms}:{message_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    t, _, i = raw.partition(":")
    return int(t), int(i)


def _agent_history(messages: pd.DataFrame) -> pd.DataFrame:
    """Per message of one channel: the agent holding the conversation before it (`prev_agent`)
    and after it (`cur_agent`); -1 for none. Assign, transfer and reopen events set the holder."""
    m = messages.sort_values(["conversation_id", "sent_at", "seq"], kind="stable")
    setter = m["event"].isin(["assign", "transfer", "reopen"]).to_numpy()
    holder = pd.Series(np.where(setter, m["agent_id"].to_numpy(), np.nan), index=m.index)
    cur = holder.groupby(m["conversation_id"].to_numpy()).ffill()
    prev = cur.groupby(m["conversation_id"].to_numpy()).shift()
    return pd.DataFrame(
        {
            "cur_agent": cur.fillna(-1).astype(np.int64).to_numpy(),
            "prev_agent": prev.fillna(-1).astype(np.int64).to_numpy(),
        },
        index=m["message_id"].to_numpy(),
    )


def router(state) -> APIRouter:
    api = APIRouter()
    errors = WecomErrors()
    creds = state.credentials[PLATFORM]
    issued: set[str] = set()
    all_msgs = state.data["messages"]
    history = _agent_history(all_msgs[all_msgs["channel"] == PLATFORM])
    platform_user = state.conversation_index["platform_user_id"]

    def accounts() -> pd.Series:
        acc = state.channel_accounts(PLATFORM)
        return pd.Series(acc["account_id"].to_numpy(), index=acc["agent_id"].to_numpy())

    def check_token(token: str | None) -> Response | None:
        if not token:
            return error(41001, "access_token missing")
        if state.tokens.valid(PLATFORM, token, state.now()):
            return None
        if token in issued:
            return error(42001, "access_token expired")
        return error(40014, "invalid access_token")

    def check_kfid(open_kfid: str | None) -> Response | None:
        if open_kfid and open_kfid != creds["open_kfid"]:
            return error(95000, f"invalid open_kfid {open_kfid}")
        return None

    @api.get("/cgi-bin/gettoken")
    def gettoken(corpid: str = "", corpsecret: str = "") -> Response:
        if corpid != creds["corpid"]:
            return error(40013, "invalid corpid")
        if corpsecret != creds["corpsecret"]:
            return error(40001, "invalid credential")
        token = state.tokens.issue(PLATFORM, state.now(), TOKEN_TTL_S)
        issued.add(token.value)
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token.value, "expires_in": TOKEN_TTL_S}
        )

    @api.post("/cgi-bin/kf/sync_msg")
    def sync_msg(
        request: Request, access_token: str | None = None, body: dict = Body(default_factory=dict)
    ) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        refused = check_kfid(body.get("open_kfid"))
        if refused is not None:
            return refused
        limit = body.get("limit", MAX_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            return error(40058, f"invalid limit {limit!r}, expected 1..{MAX_LIMIT}")
        cursor = body.get("cursor") or ""
        try:
            pos = decode_cursor(cursor) if cursor else None
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
            return error(40058, "invalid cursor")
        return JSONResponse(_sync_page(pos, cursor, limit))

    def _sync_page(pos: tuple[int, int] | None, cursor: str, limit: int) -> dict:
        cfg = state.faults.get(PLATFORM)
        late_ms = cfg.late_by_s * 1000 if cfg.late_updates else 0
        dup = cfg.duplicate_rows if pos is not None else 0
        if pos is None or dup:
            frame = state.messages(PLATFORM)
        else:
            frame = state.messages(PLATFORM, start=pd.Timestamp(pos[0] - late_ms, unit="ms", tz="UTC"))
        frame = apply_late(state, PLATFORM, frame, "message_id", "sent_at")
        sent = frame["sent_at"].to_numpy("datetime64[ms]").astype(np.int64)
        ids = frame["message_id"].to_numpy()
        arrival = sent + late_ms * _hit(ids, LATE_SHARE) if late_ms else sent
        if pos is None:
            after = np.ones(len(frame), dtype=bool)
        else:
            after = (arrival > pos[0]) | ((arrival == pos[0]) & (ids > pos[1]))
        rest = np.flatnonzero(after)  # in send order, which is arrival order up to late_ms
        prev_rows = pd.DataFrame()
        if dup and len(rest) < len(frame):
            before = np.flatnonzero(~after)
            order = np.lexsort((ids[before], arrival[before]))[-dup:]
            prev_rows = frame.iloc[before[order]]
        n_new = max(1, limit - len(prev_rows)) if len(prev_rows) else limit
        if len(rest):
            k = min(n_new, len(rest))
            cut = sent[rest[k - 1]] + late_ms
            cand = rest[: int(np.searchsorted(sent[rest], cut, "right"))]
            take = cand[np.lexsort((ids[cand], arrival[cand]))[:n_new]]
        else:
            take = rest
        page = frame.iloc[take]
        if len(take):
            next_cursor = encode_cursor(int(arrival[take[-1]]), int(ids[take[-1]]))
        else:
            next_cursor = cursor or encode_cursor(-1, -1)
        records = _records(pd.concat([prev_rows, page]) if len(prev_rows) else page)
        records = page_with_duplicates(state, PLATFORM, records, len(prev_rows), len(page))
        records = drift(state, PLATFORM, records, required_key="msgid", typed_key="send_time")
        return {
            "errcode": 0,
            "errmsg": "ok",
            "next_cursor": next_cursor,
            "has_more": int(len(rest) > len(take)),
            "msg_list": records,
        }

    def _records(page: pd.DataFrame) -> list[dict]:
        """sync_msg records for a page of message rows (vectorised columns, one dict per row)."""
        if page.empty:
            return []
        kfid = creds["open_kfid"]
        acc = accounts()
        mids = page["message_id"].to_numpy()
        msgid = ("from_msgid_" + pd.Series(mids).astype(str)).tolist()
        send_time = (page["sent_at"].to_numpy("datetime64[s]").astype(np.int64)).tolist()
        ext = platform_user.reindex(page["conversation_id"].to_numpy()).fillna("").tolist()
        sender = page["sender_type"].astype(str).tolist()
        event = page["event"].astype(str).tolist()
        content = page["content"].astype(object).where(page["content"].notna(), "").tolist()
        hist = history.reindex(mids)

        def account(agent_ids) -> list:
            return [a if isinstance(a, str) else None for a in acc.reindex(np.asarray(agent_ids)).tolist()]

        # an agent message without an agent id (seen in simulated data) goes to the session holder
        agent_ids = page["agent_id"].to_numpy()
        agent = account(np.where(agent_ids >= 0, agent_ids, hist["cur_agent"].to_numpy()))
        prev = account(hist["prev_agent"].to_numpy())
        code = [f"MSG_CODE_{m:x}" for m in mids.tolist()]
        out: list[dict] = []
        for i in range(len(msgid)):
            if sender[i] == "system":
                ev = {"event_type": "session_status_change", "open_kfid": kfid, "external_userid": ext[i]}
                kind = event[i]
                ev["change_type"] = CHANGE_TYPE[kind]
                if kind in ("transfer", "close") and prev[i] is not None:
                    ev["old_servicer_userid"] = prev[i]
                if kind in ("assign", "transfer", "reopen") and agent[i] is not None:
                    ev["new_servicer_userid"] = agent[i]
                if kind in ("assign", "close", "reopen"):
                    ev["msg_code"] = code[i]
                out.append(
                    {
                        "msgid": msgid[i],
                        "send_time": send_time[i],
                        "origin": 4,
                        "msgtype": "event",
                        "event": ev,
                    }
                )
            elif sender[i] == "agent":
                out.append(
                    {
                        "msgid": msgid[i],
                        "open_kfid": kfid,
                        "external_userid": ext[i],
                        "send_time": send_time[i],
                        "origin": 5,
                        "servicer_userid": agent[i] or "",
                        "msgtype": "text",
                        "text": {"content": content[i]},
                    }
                )
            else:  # customer (bot messages never reach here: state hides them for WeCom)
                out.append(
                    {
                        "msgid": msgid[i],
                        "open_kfid": kfid,
                        "external_userid": ext[i],
                        "send_time": send_time[i],
                        "origin": 3,
                        "msgtype": "text",
                        "text": {"content": content[i]},
                    }
                )
        return out

    def _online_agents() -> set[int]:
        st = state.agent_status(PLATFORM, end=state.now())
        on = st[(st["status"] == "online") & st["ended_at"].isna()]
        return set(on["agent_id"].tolist())

    @api.get("/cgi-bin/kf/servicer/list")
    def servicer_list(
        request: Request, access_token: str | None = None, open_kfid: str | None = None
    ) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        if not open_kfid:
            return error(40058, "open_kfid missing")
        refused = check_kfid(open_kfid)
        if refused is not None:
            return refused
        online = _online_agents()
        acc = state.channel_accounts(PLATFORM).sort_values("account_id")
        servicers = [
            {"userid": a, "status": 0 if agent in online else 1}
            for agent, a in zip(acc["agent_id"].tolist(), acc["account_id"].tolist(), strict=True)
        ]
        return JSONResponse({"errcode": 0, "errmsg": "ok", "servicer_list": servicers})

    def _account_list(request: Request, access_token: str | None, offset: int, limit: int) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        accounts_ = [{"open_kfid": creds["open_kfid"], "name": "官方客服", "avatar": AVATAR}]
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "account_list": accounts_[offset : offset + limit]}
        )

    @api.post("/cgi-bin/kf/account/list")
    def account_list(
        request: Request, access_token: str | None = None, body: dict = Body(default_factory=dict)
    ) -> Response:
        return _account_list(request, access_token, int(body.get("offset", 0)), int(body.get("limit", 100)))

    @api.get("/cgi-bin/kf/account/list")
    def account_list_get(
        request: Request, access_token: str | None = None, offset: int = 0, limit: int = 100
    ) -> Response:
        return _account_list(request, access_token, offset, limit)

    @api.get("/cgi-bin/kf/sandbox/live_state")
    def live_state(
        request: Request, access_token: str | None = None, open_kfid: str | None = None
    ) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token) or check_kfid(open_kfid)
        if refused is not None:
            return refused
        live = state.live_state(PLATFORM)
        return JSONResponse(
            {
                "errcode": 0,
                "errmsg": "ok",
                "open_kfid": creds["open_kfid"],
                "waiting_cnt": live["waiting"],
                "servicer_online_cnt": live["agents_online"],
                "update_time": int(live["as_of"].timestamp()),
            }
        )

    return api
