"""WeChat Official Account 微信公众号 customer service (客服), served under `/wechat_oa`.

Documentation followed:
- access token: https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html
- chat records: https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Obtain_chat_transcript.html
  (new page: https://developers.weixin.qq.com/doc/service/api/customer/message/api_getmsglist)
- agents, online agents, waiting sessions:
  https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Customer_Service_Management.html and
  https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Session_control.html
- return codes: https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html

Endpoints (errors are HTTP 200 + `{errcode, errmsg}` with a ` rid: ...` suffix; success bodies carry
no errcode):
- `GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=` -> `{access_token, expires_in: 7200}`
  (7200 s on the simulated clock). 40002 bad grant_type, 40013 invalid appid, 40125 invalid appsecret.
- `POST /customservice/msgrecord/getmsglist?access_token=` body `{starttime, endtime, msgid, number}`
  -> `{recordlist: [{openid, opercode, text, time, worker}], number, msgid}`.
- `GET  /cgi-bin/customservice/getkflist?access_token=` -> `kf_list: [{kf_account, kf_headimgurl,
  kf_id (string), kf_nick, kf_wx}]`.
- `GET  /cgi-bin/customservice/getonlinekflist?access_token=` -> `kf_online_list: [{kf_account, status,
  kf_id, accepted_case}]`: the agents on shift now (status 1 = web online), with the number of open
  sessions each holds (agent status + live state).
- `GET  /customservice/kfsession/getwaitcase?access_token=` -> `{count, waitcaselist: [{latest_time,
  openid}]}`: sessions waiting for an agent now (the queue; shape from the doc table, no golden).

getmsglist rules:
- `starttime`/`endtime` are unix seconds, both inclusive at second resolution (a message sent at
  12:00:00.400 has `time` 12:00:00 and belongs to a window ending at 12:00:00): use windows
  `[t, t + 86399]`, or expect and drop repeats at the shared second. `endtime - starttime` must be
  at most 86400 (24 h), else 65417; `starttime > endtime`, `number` outside 1..10000 or `msgid` < 1:
  65416.
- Paging by `msgid`: every record has an account-wide sequence number, in time order (records carry
  no id in the body). A call returns the records of the window with sequence number >= `msgid`, at
  most `number` of them; the returned `msgid` is the one to ask for next (last returned + 1; the
  request's msgid on an empty page). Start with msgid 1; continue while the returned `number`
  equals the requested one.
- `opercode`: 2003 客服收到消息 (a customer message), 2002 客服发送消息 (an agent reply), 1000 创建未接入会话
  (a bot hand-off into the queue; this account has no bot, so it does not occur), 1001 接入会话
  (assign), 1003 转接会话 (transfer: `worker` is the new agent), 1004 关闭会话 (close), 1001 again for a
  reopen. Session records have `text` "". `worker` is the agent's `kf_account` (the agent holding the
  session; "" for a customer message before any agent took it). `openid` is the customer's openid.
  No session id: WeChat has none.

Faults (`FaultConfig` field -> what a client sees here; `token` itself is never faulted):
- rate_limit: errcode 45009 "reach max api daily quota limit" (HTTP 200, no Retry-After).
- error_codes: errcode -1 "system error" (HTTP 200; WeChat says: retry later).
- server_errors / hang: HTTP 503 with an HTML body (after `hang_s` for hang); slow_s: late answers.
- expire_tokens_after: every issued token dies -> 42001 "access_token expired"; unknown tokens get
  40001, a missing one 41001.
- duplicate_rows: a page after the first repeats that many records of the previous page (the page
  still holds `number` records, so the `number == requested` rule keeps working).
- late_updates: ~10 % of records are missing from a window until `late_by_s` after they happened;
  re-reading the window (a look-back) finds them, at their own msgid.
- schema_drift: new_field adds `sandbox_new_field`; missing_field drops `openid` from a share of
  records; changed_type turns `time` into a string in a share.
- api_off: errcode 65400 "api unavailable" (客服功能未开通); permission_denied: 48001 "api unauthorized".
"""

from __future__ import annotations

import secrets

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sandbox.server.faults import apply_late, drift, gate, page_with_duplicates

PLATFORM = "wechat_oa"
TOKEN_TTL_S = 7200
MAX_NUMBER = 10000
MAX_WINDOW_S = 86400
OPERCODE = {"handoff": 1000, "assign": 1001, "transfer": 1003, "close": 1004, "reopen": 1001}
HEADIMG = "http://mmbiz.qpic.cn/mmbiz/sandbox/0"


def error(code: int, msg: str) -> JSONResponse:
    rid = f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
    return JSONResponse({"errcode": code, "errmsg": f"{msg} rid: {rid}"})


class WechatErrors:
    """How WeChat says each fault (see the module docstring)."""

    def rate_limited(self, retry_after_s: int) -> Response:
        return error(45009, "reach max api daily quota limit")

    def error_code(self) -> Response:
        return error(-1, "system error")

    def server_error(self) -> Response:
        return HTMLResponse("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", 503)

    def api_off(self) -> Response:
        return error(65400, "api unavailable")

    def permission_denied(self) -> Response:
        return error(48001, "api unauthorized")


def _agent_history(messages: pd.DataFrame) -> pd.DataFrame:
    """Per message: the agent holding the session after it (`cur_agent`, -1 for none).
    Assign, transfer and reopen events set the holder."""
    m = messages.sort_values(["conversation_id", "sent_at", "seq"], kind="stable")
    setter = m["event"].isin(["assign", "transfer", "reopen"]).to_numpy()
    holder = pd.Series(np.where(setter, m["agent_id"].to_numpy(), np.nan), index=m.index)
    cur = holder.groupby(m["conversation_id"].to_numpy()).ffill()
    return pd.DataFrame(
        {"cur_agent": cur.fillna(-1).astype(np.int64).to_numpy()}, index=m["message_id"].to_numpy()
    )


def router(state) -> APIRouter:
    api = APIRouter()
    errors = WechatErrors()
    creds = state.credentials[PLATFORM]
    issued: set[str] = set()
    platform_user = state.conversation_index["platform_user_id"]
    all_msgs = state.data["messages"]
    mine = all_msgs[all_msgs["channel"] == PLATFORM]
    history = _agent_history(mine)
    # the account-wide msgid: 1.. in (time, message id) order
    order = np.lexsort(
        (mine["message_id"].to_numpy(), mine["sent_at"].to_numpy("datetime64[ms]").astype(np.int64))
    )
    seq = pd.Series(np.arange(1, len(order) + 1, dtype=np.int64), index=mine["message_id"].to_numpy()[order])

    def accounts() -> pd.DataFrame:
        acc = state.channel_accounts(PLATFORM).sort_values("agent_id")
        acc["kf_id"] = (1000 + acc["agent_id"]).astype(str)
        return acc

    def check_token(token: str | None) -> Response | None:
        if not token:
            return error(41001, "access_token missing")
        if state.tokens.valid(PLATFORM, token, state.now()):
            return None
        if token in issued:
            return error(42001, "access_token expired")
        return error(40001, "invalid credential, access_token is invalid or not latest")

    @api.get("/cgi-bin/token")
    def token(grant_type: str = "", appid: str = "", secret: str = "") -> Response:
        if grant_type != "client_credential":
            return error(40002, "invalid grant_type")
        if appid != creds["appid"]:
            return error(40013, "invalid appid")
        if secret != creds["secret"]:
            return error(40125, "invalid appsecret")
        tok = state.tokens.issue(PLATFORM, state.now(), TOKEN_TTL_S)
        issued.add(tok.value)
        return JSONResponse({"access_token": tok.value, "expires_in": TOKEN_TTL_S})

    @api.post("/customservice/msgrecord/getmsglist")
    def getmsglist(
        request: Request, access_token: str | None = None, body: dict = Body(default_factory=dict)
    ) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        try:
            start, end, msgid, number = (int(body[k]) for k in ("starttime", "endtime", "msgid", "number"))
        except (KeyError, TypeError, ValueError):
            return error(
                65416, "invalid parameter: starttime, endtime, msgid and number are required integers"
            )
        if start > end or not 1 <= number <= MAX_NUMBER or msgid < 1:
            return error(65416, "invalid parameter")
        if end - start > MAX_WINDOW_S:
            return error(65417, "invalid time range")
        lo = pd.Timestamp(start, unit="s", tz="UTC")
        hi = pd.Timestamp(end + 1, unit="s", tz="UTC") - pd.Timedelta(milliseconds=1)
        frame = apply_late(state, PLATFORM, state.messages(PLATFORM, lo, hi), "message_id", "sent_at")
        ids = seq.reindex(frame["message_id"].to_numpy()).to_numpy()
        by_seq = np.argsort(ids, kind="stable")
        ids = ids[by_seq]
        offset = int(np.searchsorted(ids, msgid, "left"))
        dup = state.faults.get(PLATFORM).duplicate_rows if offset > 0 else 0
        dup = min(dup, offset, number - 1)
        size = number - dup
        # rows [offset - dup, offset + size) by sequence; page_with_duplicates picks the repeats
        lo_i = offset - dup
        rows = _records(frame.iloc[by_seq[lo_i : offset + size]])
        records = page_with_duplicates(state, PLATFORM, rows, dup, size)
        new_last = min(offset + size, len(ids))
        next_msgid = int(ids[new_last - 1]) + 1 if new_last > offset else msgid
        records = drift(state, PLATFORM, records, required_key="openid", typed_key="time")
        return JSONResponse({"recordlist": records, "number": len(records), "msgid": next_msgid})

    def _records(page: pd.DataFrame) -> list[dict]:
        if page.empty:
            return []
        acc = accounts()
        kf = pd.Series(acc["account_id"].to_numpy(), index=acc["agent_id"].to_numpy())
        openid = platform_user.reindex(page["conversation_id"].to_numpy()).fillna("").tolist()
        sender = page["sender_type"].astype(str).to_numpy()
        event = page["event"].astype(str).to_numpy()
        cur = history["cur_agent"].reindex(page["message_id"].to_numpy()).to_numpy()
        agent_ids = page["agent_id"].to_numpy()
        worker_agent = np.where((sender == "agent") & (agent_ids >= 0), agent_ids, cur)
        worker = [w if isinstance(w, str) else "" for w in kf.reindex(worker_agent).tolist()]
        opercode = np.where(
            sender == "agent",
            2002,
            np.where(sender == "system", pd.Series(event).map(OPERCODE).fillna(1001).to_numpy(), 2003),
        ).astype(np.int64)
        text = page["content"].astype(object).where(page["content"].notna(), "").tolist()
        text = [t if s != "system" else "" for t, s in zip(text, sender.tolist(), strict=True)]
        times = page["sent_at"].to_numpy("datetime64[s]").astype(np.int64).tolist()
        return [
            {"openid": o, "opercode": c, "text": t, "time": tm, "worker": w}
            for o, c, t, tm, w in zip(openid, opercode.tolist(), text, times, worker, strict=True)
        ]

    def _online() -> pd.DataFrame:
        st = state.agent_status(PLATFORM, end=state.now())
        return st[(st["status"] == "online") & st["ended_at"].isna()]

    @api.get("/cgi-bin/customservice/getkflist")
    def getkflist(request: Request, access_token: str | None = None) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        acc = accounts()
        kf_list = [
            {
                "kf_account": a,
                "kf_headimgurl": HEADIMG,
                "kf_id": k,
                "kf_nick": n,
                "kf_wx": f"wx_{a.split('@')[0]}",
            }
            for a, k, n in zip(
                acc["account_id"].tolist(), acc["kf_id"].tolist(), acc["name"].tolist(), strict=True
            )
        ]
        return JSONResponse({"kf_list": kf_list})

    @api.get("/cgi-bin/customservice/getonlinekflist")
    def getonlinekflist(request: Request, access_token: str | None = None) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        online = set(_online()["agent_id"].tolist())
        acc = accounts()
        acc = acc[acc["agent_id"].isin(online)]
        load = _open_sessions_by_agent()
        out = [
            {"kf_account": a, "status": 1, "kf_id": k, "accepted_case": int(load.get(agent, 0))}
            for agent, a, k in zip(
                acc["agent_id"].tolist(), acc["account_id"].tolist(), acc["kf_id"].tolist(), strict=True
            )
        ]
        return JSONResponse({"kf_online_list": out})

    def _open_sessions() -> pd.DataFrame:
        c = state.conversations(PLATFORM)
        return c[c["status"] != "closed"]

    def _open_sessions_by_agent() -> dict:
        c = _open_sessions()
        c = c[c["assigned_at"].notna()]
        return c.groupby("first_agent_id").size().to_dict()

    @api.get("/customservice/kfsession/getwaitcase")
    def getwaitcase(request: Request, access_token: str | None = None) -> Response:
        refused = gate(state, PLATFORM, request, errors) or check_token(access_token)
        if refused is not None:
            return refused
        c = _open_sessions()
        waiting = c[c["queue_start_at"].notna() & c["assigned_at"].isna() & c["abandon_at"].isna()]
        waiting = waiting.sort_values("queue_start_at")
        cases = [
            {"latest_time": t, "openid": o}
            for t, o in zip(
                waiting["queue_start_at"].to_numpy("datetime64[s]").astype(np.int64).tolist(),
                waiting["platform_user_id"].tolist(),
                strict=True,
            )
        ]
        return JSONResponse({"count": len(cases), "waitcaselist": cases})

    return api
