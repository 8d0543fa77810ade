"""WeChat Official Account 微信公众号 customer service (客服) connector.

Docs: https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Obtain_chat_transcript.html
(getmsglist; new page https://developers.weixin.qq.com/doc/service/api/customer/message/api_getmsglist),
https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html (token),
https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Customer_Service_Management.html
(getkflist, getonlinekflist),
https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Session_control.html (getwaitcase),
https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html (errcodes).

- Auth: `cgi-bin/token?grant_type=client_credential&appid&secret` -> access_token (7200 s),
  sent as `?access_token=`; errcode 40001/40014/41001/42001 -> refresh once.
- messages: `POST customservice/msgrecord/getmsglist` `{starttime, endtime, msgid, number}` in
  windows of at most 24 h (`endtime - starttime` <= 86400 s, both inclusive at second
  resolution: a window [since, until) asks [floor(since), ceil(until) - 1]); inside a window
  page by `msgid` from 1, passing back the returned `msgid`, while the returned `number`
  equals the requested one (10000). Windows are re-read 1 h back for records that show up
  late. Records are `{openid, opercode, text, time, worker}` and carry NO id and NO session
  id: nothing is added to them; the key is the whole record (openid, time, opercode, worker,
  text), so a re-read or repeated record is the same key and the loader keeps one. opercode
  2003 customer message, 2002 agent reply, 1000 bot hand-off, 1001 assign/reopen,
  1003 transfer, 1004 close; `worker` is the agent's kf_account. The warehouse sessionises
  (DESIGN §7).
- agents: `cgi-bin/customservice/getkflist` snapshot (kf_account, kf_id, kf_nick, ...).
- agent_status: `cgi-bin/customservice/getonlinekflist` snapshot: the agents online now with
  `accepted_case` (open sessions); offline agents are absent.
- queue: `customservice/kfsession/getwaitcase` snapshot: one record per poll, the body as
  received (`count`, `waitcaselist`), so an empty queue is a row too.
  Snapshots have no time of their own: each record gets `polled_at` (unix s, the run's
  `until`), as WeCom's servicers do.
- Errors are HTTP 200 + errcode: -1 system busy, 45009 frequency/quota, 45033 concurrency are
  retried; 48001 (unauthorized), 48002/48004 (API blocked), 50001/50002 (not authorised or
  limited) and 65400 (customer service not enabled) mean unavailable; 65417 (window over
  24 h) and 65416 (bad parameter) are fatal - a bug, since windows are <= 24 h; 61004 (the
  server's IP is not whitelisted) is fatal with what to do.

No console fallback yet: the console's messages report is keyed by its own message id, not
by the API record (see docs/connectors/wechat_oa.md).

Settings (platforms.wechat_oa): `base_url`, `appid`, `secret`, optional `page_size`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import requests

from connectors.core.auth import AccessTokenAuth
from connectors.core.http import Classified, ConnectorError, FatalApiError, HttpClient, Verdict, parsed_json
from connectors.core.runner import PlatformConnector
from connectors.core.streams import Page, Stream, Window

DOC = "https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Obtain_chat_transcript.html"
KF_DOC = "https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Customer_Service_Management.html"
MAX_NUMBER = 10000
MAX_WINDOW = dt.timedelta(hours=24)
TOKEN_ERRORS = {40001, 40014, 41001, 42001}
RETRY_ERRORS = {-1, 45009, 45033}
UNAVAILABLE_ERRORS = {48001, 48002, 48004, 50001, 50002, 65400}
HINTS = {
    48001: "the account lacks this API permission (认证/接口权限)",
    50001: "the account is not authorised for this API",
    65400: "customer service (客服功能) is not enabled for the account",
    65416: "invalid parameter (starttime/endtime/msgid/number); this is a connector bug",
    65417: "time range over 24 h; the connector's windows must be <= 24 h - this is a connector bug",
    61004: "this server's IP is not on the account's IP whitelist (mp.weixin.qq.com > 设置与开发 > 基本配置)",
    40013: "invalid appid: check platforms.wechat_oa.appid",
    40125: "invalid appsecret: check platforms.wechat_oa.secret",
}

STREAMS = {
    "messages": Stream(
        platform="wechat_oa",
        name="messages",
        primary_key=("openid", "time", "opercode", "worker", "text"),
        time_field="time",
        time_format="unix_s",
        cursor="time_window",
        doc=DOC,
        freshness="real_time",
        max_window=MAX_WINDOW,
        lookback=dt.timedelta(hours=1),
        required=("opercode",),
        description="Chat records (messages and session events) of the customer-service agents.",
    ),
    "agents": Stream(
        platform="wechat_oa",
        name="agents",
        primary_key=("kf_account", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc=KF_DOC,
        freshness="real_time",
        description="Customer-service accounts (getkflist), a snapshot per run.",
    ),
    "agent_status": Stream(
        platform="wechat_oa",
        name="agent_status",
        primary_key=("kf_account", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc=KF_DOC,
        freshness="real_time",
        description="Agents online at the poll (getonlinekflist) with their open sessions (accepted_case).",
    ),
    "queue": Stream(
        platform="wechat_oa",
        name="queue",
        primary_key=("polled_at",),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc="https://developers.weixin.qq.com/doc/offiaccount/Customer_Service/Session_control.html",
        freshness="real_time",
        description="Sessions waiting for an agent at the poll (getwaitcase): count and list.",
    ),
}


def classify(response: requests.Response) -> Classified:
    if response.status_code == 429 or response.status_code >= 500:
        return Classified(Verdict.RETRY, f"HTTP {response.status_code}")
    if response.status_code >= 400:
        return Classified(Verdict.FATAL, f"HTTP {response.status_code}")
    try:
        body = parsed_json(response)
        code = int(body.get("errcode", 0)) if isinstance(body, dict) else 0
    except (ValueError, TypeError):
        return Classified(Verdict.RETRY, "body is not JSON")
    if code == 0:
        return Classified(Verdict.OK)
    reason = f"errcode {code} {str(body.get('errmsg', '')).split(' rid:')[0]}".strip()
    if code in TOKEN_ERRORS:
        return Classified(Verdict.TOKEN_EXPIRED, reason)
    if code in RETRY_ERRORS:
        return Classified(Verdict.RETRY, reason)
    hint = HINTS.get(code)
    reason = f"{reason}: {hint}" if hint else reason
    if code in UNAVAILABLE_ERRORS:
        return Classified(Verdict.UNAVAILABLE, reason)
    return Classified(Verdict.FATAL, reason)


def window_seconds(window: Window) -> tuple[int, int]:
    """[starttime, endtime] (unix s, both inclusive) covering [since, until)."""
    start = math.floor(window.since.timestamp())
    end = max(start, math.ceil(window.until.timestamp()) - 1)
    if end - start > MAX_WINDOW.total_seconds():
        raise ValueError(f"window {window.since}..{window.until} is longer than getmsglist allows (24 h)")
    return start, end


class Connector(PlatformConnector):
    name = "wechat_oa"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        appid, secret = config.require("appid"), config.require("secret")
        token_http = HttpClient("wechat_oa", None, classify, self.policy)

        def fetch_token(_session: requests.Session) -> tuple[str, float]:
            try:
                body = token_http.json(
                    "GET",
                    f"{self.base}/cgi-bin/token",
                    params={"grant_type": "client_credential", "appid": appid, "secret": secret},
                )
            except FatalApiError as exc:
                raise ConnectorError(
                    f"wechat_oa: token refused ({exc}); check appid and the AppSecret (secret) of the "
                    "official account in the connector config, and the IP whitelist"
                ) from exc
            return body["access_token"], float(body.get("expires_in", 7200))

        self.http = HttpClient("wechat_oa", AccessTokenAuth(fetch_token), classify, self.policy)

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        polled = int(window.until.timestamp())
        if stream.name == "messages":
            yield from self._messages(window)
        elif stream.name == "agents":
            body = self.http.json("GET", f"{self.base}/cgi-bin/customservice/getkflist")
            yield Page([{**r, "polled_at": polled} for r in body.get("kf_list", [])], None, done=True)
        elif stream.name == "agent_status":
            body = self.http.json("GET", f"{self.base}/cgi-bin/customservice/getonlinekflist")
            yield Page([{**r, "polled_at": polled} for r in body.get("kf_online_list", [])], None, done=True)
        elif stream.name == "queue":
            body = self.http.json("GET", f"{self.base}/customservice/kfsession/getwaitcase")
            record = {k: v for k, v in body.items() if k not in ("errcode", "errmsg")}
            yield Page([{**record, "polled_at": polled}], None, done=True)
        else:
            raise KeyError(stream.name)

    def _messages(self, window: Window) -> Iterator[Page]:
        start, end = window_seconds(window)
        number = self.page_size(MAX_NUMBER)
        msgid = 1
        while True:
            body = self.http.json(
                "POST",
                f"{self.base}/customservice/msgrecord/getmsglist",
                json={"starttime": start, "endtime": end, "msgid": msgid, "number": number},
            )
            records = body.get("recordlist")
            if not isinstance(records, list):
                raise FatalApiError(
                    f"wechat_oa: getmsglist answered without recordlist (keys: {sorted(body)})"
                )
            returned = int(body.get("number", len(records)))
            more = returned >= number
            if more:
                following = int(body.get("msgid", 0))
                if following <= msgid:
                    raise FatalApiError(
                        f"wechat_oa: getmsglist returned a full page but msgid did not advance ({msgid} -> "
                        f"{following}) for window {start}..{end}"
                    )
                msgid = following
            yield Page(records, None, done=not more)
            if not more:
                return
