"""JD (京东咚咚) customer-service connector over the JOS gateway.

Docs: https://open.jd.com/home/home#/doc/common?listId=890 (call protocol, signing, system error
codes), https://open.jd.com/home/home#/doc/api?apiCateId=53&apiName=jingdong.im.pop.chatlog.get
(chat log; fields per the JD open-api-sdk `ChatLogPage`/`ChatLog`),
jingdong.im.pop.sessionlist.get (same catalogue, `ChatSessionPage`),
https://open.jd.com/home/home#/doc/common?listId=2 (OAuth: access_token and its refresh).
Golden samples: tests/golden/jd/ (see tests/golden/README.md).

- Auth: every call is signed (`JosSigner`: app_key, access_token, `timestamp` GMT+8 from the real
  clock - JOS refuses more than 6 minutes of skew -, v=2.0, sign_method=md5, business params as
  one JSON string in `360buy_param_json`, sign = upper hex MD5(secret + sorted name+value +
  secret)). The `access_token` was issued when the shop authorised the app and it expires. JOS
  code 19 means it died: with a `refresh_token` configured the connector renews it ONCE at the
  OAuth endpoint (`oauth2/refresh_token`); otherwise, or when that is refused, it raises
  `CredentialsExpired` naming the app_key and the renewal step.
- Responses: `<method with underscores>_responce` (JOS's historic spelling; `_response` is
  accepted too) holding `"code": "0"` and the result.
- sessions: `jingdong.im.pop.sessionlist.get` without `waiter` (every waiter) by `startTime`,
  page/pageSize (<= 100) inside `360buy_param_json`; key `sid`. `endTime` (epoch ms) is absent
  while a session is open and appears later, so the look-back re-reads 2 days of sessions (a
  changed session is a new version; staging keeps the latest).
- messages: JOS has no "all messages" call; `chatlog.get` needs a `customer`. For a window the
  connector lists the sessions that can have messages in it (started up to 2 days before it, and
  not ended before it), then reads `chatlog.get` per customer for the window, without `waiter`
  (a waiter filter would cut transferred chats). Records are the `chatLogList` items as received
  (`waiterSend` true for waiter and robot messages, `time` epoch ms) plus `msg_key`: JOS has no
  message id, so the key is (`sid`, `time` in seconds, sender side, MD5 of `content`) - seconds,
  so that the console (which shows seconds) keys a message the same way.
- ratings: `jingdong.im.pop.evaluationlist.get` by evaluation time (sandbox shape: the SDKs name
  the method but not its fields); `score` 1..5 (seed scale `five_point`); key `sid` (one
  evaluation per session; a new one replaces it).
- agents: `jingdong.im.pop.groupinfo.get` snapshot: one record per waiter with its group
  (`groupId`, `groupName`) and `polled_at` (unix s); `robot` marks the shop robot.
- agent_status: `jingdong.im.pop.waiterstatus.get` (SANDBOX EXTENSION; no public JOS method
  found) status intervals by `startTime`; key (`waiter`, `startTime`); 1 day look-back for the
  `endTime` of intervals still running.
- queue: `jingdong.im.pop.realtime.get` (SANDBOX EXTENSION) snapshot: waiting customers and
  waiters online, one record per poll.
- Errors are HTTP 200 + `error_response {code (string), zh_desc, en_desc}`: "2" App Call Limited
  (the wait is in zh_desc) and "66" (backend unavailable) are retried, HTTP 5xx too; "19" is the
  dead access_token; "67" (API switched off) and "13" (no permission) mean unavailable -> the
  京麦 console is read instead (messages, sessions, ratings); "12" (signature), "8" (timestamp),
  "10" (app_key) and "17"/"18" (arguments) are fatal with what to check.

Settings (platforms.jd): `base_url` (https://api.jd.com), `app_key`, `app_secret`,
`access_token`; optional `refresh_token`, `token_url` (default `<base_url>/oauth2/refresh_token`;
real: https://open-oauth.jd.com/oauth2/refresh_token), `page_size` (<= 100),
`session_lookback_days` (2), and `console_url`/`console_username`/`console_password` for the
fallback. docs/connectors/jd.md has the real-account set-up and the renewal steps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator

import pandas as pd
import requests

from connectors.core.auth import JosSigner
from connectors.core.http import (
    Classified,
    CredentialsExpired,
    FatalApiError,
    HttpClient,
    Verdict,
    parsed_json,
    register_secret,
)
from connectors.core.runner import PlatformConnector
from connectors.core.streams import Page, Stream, Window

log = logging.getLogger("connectors.jd")

DOC = "https://open.jd.com/home/home#/doc/api?apiCateId=53&apiName=jingdong.im.pop.chatlog.get"
SESSIONS_DOC = "https://open.jd.com/home/home#/doc/api?apiCateId=53&apiName=jingdong.im.pop.sessionlist.get"
OAUTH_DOC = "https://open.jd.com/home/home#/doc/common?listId=2"
LOCAL_TZ = "Asia/Shanghai"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_PAGE_SIZE = 100
MAX_DAYS = 7  # startTime..endTime of one call
SESSION_LOOKBACK = dt.timedelta(days=2)
RETRY_CODES = {"2", "66"}
TOKEN_CODES = {"19"}
UNAVAILABLE_CODES = {"13", "67"}
FATAL_HINTS = {
    "8": "timestamp refused: JOS allows 6 minutes of skew - check this machine's clock (NTP)",
    "9": "missing app_key: set platforms.jd.app_key",
    "10": "invalid app_key: check platforms.jd.app_key",
    "11": "missing signature: a connector bug",
    "12": "invalid signature: check platforms.jd.app_secret (it must belong to app_key)",
    "14": "missing method: a connector bug",
    "15": "unknown method: this account's JOS API catalogue lacks it",
    "17": "missing business argument: a connector bug",
    "18": "invalid business argument (window over 7 days? pageSize over 100?): a connector bug",
}
_WAIT = re.compile(r"(\d+)\s*秒")
EXPIRED_MARK = "access_token expired"


def _stream(name: str, key: tuple[str, ...], time_field: str, cursor: str, doc: str = DOC, **kw) -> Stream:
    return Stream(
        platform="jd",
        name=name,
        primary_key=key,
        time_field=time_field,
        time_format=kw.pop("time_format", "unix_ms"),
        cursor=cursor,  # type: ignore[arg-type]
        doc=doc,
        **kw,
    )


STREAMS = {
    "messages": _stream(
        "messages",
        ("msg_key",),
        "time",
        "time_window",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        required=("sid", "waiterSend"),
        description="Chat messages of every session (chatlog.get per customer) plus msg_key.",
    ),
    "sessions": _stream(
        "sessions",
        ("sid",),
        "startTime",
        "time_window",
        SESSIONS_DOC,
        max_window=dt.timedelta(days=1),
        lookback=SESSION_LOOKBACK,
        description="Sessions (sessionlist.get): sid, customer, first waiter, startTime, endTime once ended.",
    ),
    "ratings": _stream(
        "ratings",
        ("sid",),
        "time",
        "time_window",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        required=("score",),
        description="Session evaluations (evaluationlist.get): score 1..5 (5 best).",
    ),
    "agents": _stream(
        "agents",
        ("waiter", "polled_at"),
        "polled_at",
        "snapshot",
        time_format="unix_s",
        freshness="hourly",
        description="Waiters with their group (groupinfo.get), a snapshot per run; robot marks the shop robot.",
    ),
    "agent_status": _stream(
        "agent_status",
        ("waiter", "startTime"),
        "startTime",
        "time_window",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(days=1),
        description="Waiter status intervals (waiterstatus.get, sandbox extension): 1 online 2 busy 3 away 0 offline.",
    ),
    "queue": _stream(
        "queue",
        ("polled_at",),
        "polled_at",
        "snapshot",
        time_format="unix_s",
        description="Customers waiting and waiters online at the poll (realtime.get, sandbox extension).",
    ),
}


def message_key(sid, time_ms, waiter_send, content) -> str | None:
    """The key of a chat message: JOS has none, so (sid, second, side, MD5 of the content).
    The console fallback computes the same from its cells (connectors/scrapers/console.py)."""
    if sid in (None, "") or time_ms in (None, ""):
        return None
    try:
        second = int(float(time_ms)) // 1000
    except (TypeError, ValueError):
        return None
    side = "w" if str(waiter_send).lower() in ("true", "1") else "c"
    digest = hashlib.md5(str(content or "").encode("utf-8")).hexdigest()[:12]
    return f"{sid}:{second}:{side}:{digest}"


def jos_window(since: pd.Timestamp, until: pd.Timestamp) -> tuple[str, str]:
    """[since, until) -> startTime/endTime, GMT+8 strings, both inclusive to the second."""
    lo = pd.Timestamp(since).tz_convert(LOCAL_TZ).floor("s")
    hi = pd.Timestamp(until).tz_convert(LOCAL_TZ)
    hi = hi.ceil("s") - pd.Timedelta(seconds=1)
    return lo.strftime(LOCAL_FORMAT), max(lo, hi).strftime(LOCAL_FORMAT)


def chunks(
    since: pd.Timestamp, until: pd.Timestamp, days: int = MAX_DAYS
) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    start = since
    while start < until:
        end = min(until, start + pd.Timedelta(days=days))
        yield start, end
        start = end


def classify(response: requests.Response) -> Classified:
    status = response.status_code
    if status == 429 or status >= 500:
        return Classified(Verdict.RETRY, f"HTTP {status}")
    if status >= 400:
        return Classified(Verdict.FATAL, f"HTTP {status}: {response.text[:200]}")
    try:
        body = parsed_json(response)
    except ValueError:
        return Classified(Verdict.RETRY, "body is not JSON")
    error = body.get("error_response") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return Classified(Verdict.OK)
    code = str(error.get("code", ""))
    zh = str(error.get("zh_desc") or "")
    reason = f"JOS code {code} {error.get('en_desc') or ''} ({zh})".strip()
    if code in RETRY_CODES:
        wait = _WAIT.search(zh)
        return Classified(Verdict.RETRY, reason, float(wait.group(1)) if wait else None)
    if code in TOKEN_CODES:
        return Classified(Verdict.TOKEN_EXPIRED, f"{EXPIRED_MARK}: {reason}")
    if code in UNAVAILABLE_CODES:
        return Classified(Verdict.UNAVAILABLE, reason)
    hint = FATAL_HINTS.get(code)
    return Classified(Verdict.FATAL, f"{reason}: {hint}" if hint else reason)


def renewal_steps(app_key: str, base_url: str) -> str:
    return (
        "Renew it: with the refresh token, GET https://open-oauth.jd.com/oauth2/refresh_token?app_key="
        f"{app_key}&app_secret=<app_secret>&grant_type=refresh_token&refresh_token=<refresh_token> (set "
        "platforms.jd.refresh_token and the connector does it by itself); when the refresh token has "
        "expired too, the shop's main account must authorise the app again (https://open-oauth.jd.com/"
        f"oauth2/to_login?app_key={app_key}&response_type=code&redirect_uri=<your callback>&state=csw, then "
        "exchange the code at https://open-oauth.jd.com/oauth2/access_token). Put the new token into "
        f"platforms.jd.access_token (or the Airflow connection csw_jd, extra.access_token) ({OAUTH_DOC}). "
        f"Sandbox: {base_url}/oauth2/refresh_token."
    )


class RenewableJosSigner(JosSigner):
    """`JosSigner` whose access_token can be replaced once it died (`renew()` -> a new token)."""

    def __init__(self, app_key: str, app_secret: str, access_token: str, renew: Callable[[], str]):
        super().__init__(app_key, app_secret, access_token)
        self._renew = renew
        self._lock = threading.Lock()

    def current_token(self) -> str | None:
        return self._token

    def refresh(self, stale: str | None = None) -> None:
        with self._lock:
            if stale is not None and stale != self._token:
                return
            token = self._renew()
            register_secret(token)
            self._token = token


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _UnmappedGuard:
    """The console scraper; a stream the console has no report for fails clearly."""

    def __init__(self, inner):
        self.inner = inner

    def fetch(self, stream: Stream, window: Window, cursor=None) -> Iterator[Page]:
        if stream.name not in self.inner.streams_map:
            from connectors.scrapers.console import ScraperError

            raise ScraperError(
                f"jd.{stream.name}: the API is unavailable and the 京麦 console has no report of this "
                "stream; it is read again when the API is back (the window is re-run from its cursor)"
            )
        yield from self.inner.fetch(stream, window, cursor)

    def close(self) -> None:
        self.inner.close()


class Connector(PlatformConnector):
    name = "jd"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        self.gateway = f"{self.base}/routerjson"
        # an Airflow connection may carry them as login / password
        self.app_key = str(config.get("app_key") or config.get("login") or config.require("app_key"))
        self._secret = str(config.get("app_secret") or config.get("password") or config.require("app_secret"))
        self._refresh_token = config.get("refresh_token")
        register_secret(self._refresh_token)
        self.token_url = config.get("token_url") or f"{self.base}/oauth2/refresh_token"
        self.session_lookback = pd.Timedelta(days=float(config.get("session_lookback_days", 2)))
        self._scraper = None
        self._token_http = HttpClient("jd-oauth", None, None, self.policy)
        signer = RenewableJosSigner(self.app_key, self._secret, config.require("access_token"), self._renew)
        self.http = HttpClient("jd", signer, classify, self.policy)

    # -- token renewal -----------------------------------------------------------------------
    def _expired(self, why: str) -> CredentialsExpired:
        return CredentialsExpired(
            f"jd: the access_token of app_key {self.app_key} has expired or was revoked ({why}). "
            f"{renewal_steps(self.app_key, self.base)}"
        )

    def _renew(self) -> str:
        if not self._refresh_token:
            raise self._expired("JOS code 19; no refresh_token is configured")
        log.warning(
            "jd: access_token of app_key %s expired; renewing it with the refresh token", self.app_key
        )
        try:
            response = self._token_http.request(
                "POST",
                self.token_url,
                data={
                    "app_key": self.app_key,
                    "app_secret": self._secret,
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh_token,
                },
            )
            body = parsed_json(response)
        except (FatalApiError, ValueError) as exc:
            raise self._expired(f"the refresh token was refused: {exc}") from exc
        if not isinstance(body, dict) or str(body.get("code", "0")) != "0" or not body.get("access_token"):
            msg = body.get("msg") if isinstance(body, dict) else body
            raise self._expired(f"the refresh token was refused: {msg}")
        if body.get("refresh_token"):
            self._refresh_token = body["refresh_token"]
            register_secret(self._refresh_token)
        register_secret(body["access_token"])
        return str(body["access_token"])

    # -- calls -------------------------------------------------------------------------------
    def call(self, method: str, **biz) -> dict:
        """One JOS call; the result inside `<method>_responce`."""
        data = {
            "method": method,
            "360buy_param_json": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        try:
            body = self.http.json("POST", self.gateway, data=data)
        except FatalApiError as exc:
            if EXPIRED_MARK in str(exc):
                raise self._expired("JOS code 19 again right after renewing it") from exc
            raise
        name = method.replace(".", "_")
        inner = body.get(f"{name}_responce", body.get(f"{name}_response")) if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            raise FatalApiError(f"jd: {method} answered without {name}_responce (keys {sorted(body)[:6]})")
        if str(inner.get("code", "0")) != "0":
            raise FatalApiError(f"jd: {method} answered code {inner.get('code')}: {inner}"[:300])
        return inner

    def pages(self, method: str, page_key: str, list_key: str, **biz) -> Iterator[list[dict]]:
        """Every page of a paged list (page from 1, pageSize <= 100, until totalRecord)."""
        size = self.page_size(MAX_PAGE_SIZE)
        page = 1
        while True:
            body = self.call(method, **biz, page=page, pageSize=size)
            node = body.get(page_key) or {}
            items = [r for r in (node.get(list_key) or []) if isinstance(r, dict)]
            total = _int(node.get("totalRecord")) or 0
            yield items
            if not items or page * size >= total:
                return
            page += 1

    def sessions(self, since: pd.Timestamp, until: pd.Timestamp) -> Iterator[list[dict]]:
        for lo, hi in chunks(since, until):
            start, end = jos_window(lo, hi)
            yield from self.pages(
                "jingdong.im.pop.sessionlist.get",
                "ChatSessionPage",
                "chatSessionList",
                startTime=start,
                endTime=end,
            )

    # -- streams -----------------------------------------------------------------------------
    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        polled = int(window.until.timestamp())
        if stream.name == "messages":
            yield from self._messages(window)
        elif stream.name == "sessions":
            for items in self.sessions(window.since, window.until):
                yield Page(items, None)
        elif stream.name in ("ratings", "agent_status"):
            method, page_key, list_key = {
                "ratings": ("jingdong.im.pop.evaluationlist.get", "EvaluationPage", "evaluationList"),
                "agent_status": ("jingdong.im.pop.waiterstatus.get", "WaiterStatusPage", "waiterStatusList"),
            }[stream.name]
            for lo, hi in chunks(window.since, window.until):
                start, end = jos_window(lo, hi)
                for items in self.pages(method, page_key, list_key, startTime=start, endTime=end):
                    yield Page(items, None)
        elif stream.name == "agents":
            body = self.call("jingdong.im.pop.groupinfo.get")
            records = [
                {**w, "groupId": g.get("groupId"), "groupName": g.get("groupName"), "polled_at": polled}
                for g in body.get("groupInfoList") or []
                for w in g.get("waiterList") or []
            ]
            yield Page(records, None, done=True)
            return
        elif stream.name == "queue":
            body = self.call("jingdong.im.pop.realtime.get")
            yield Page([{**(body.get("RealtimeInfo") or {}), "polled_at": polled}], None, done=True)
            return
        else:
            raise KeyError(stream.name)
        yield Page([], None, done=True)

    def _messages(self, window: Window) -> Iterator[Page]:
        """Chat messages of the window: the customers of every session that can have any (started
        up to `session_lookback_days` before the window, not ended before it), one chatlog each."""
        since_ms = int(window.since.timestamp() * 1000)
        customers: set[str] = set()
        for items in self.sessions(window.since - self.session_lookback, window.until):
            for s in items:
                ended = _int(s.get("endTime"))
                if s.get("customer") and (ended is None or ended >= since_ms):
                    customers.add(str(s["customer"]))
        start, end = jos_window(window.since, window.until)
        for customer in sorted(customers):
            records: list[dict] = []
            for items in self.pages(
                "jingdong.im.pop.chatlog.get",
                "ChatLogPage",
                "chatLogList",
                customer=customer,
                startTime=start,
                endTime=end,
            ):
                records.extend(
                    {
                        **m,
                        "msg_key": message_key(
                            m.get("sid"), m.get("time"), m.get("waiterSend"), m.get("content")
                        ),
                    }
                    for m in items
                )
            yield Page(records, None)

    def scraper(self):
        """The 京麦 console for messages, sessions and ratings."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers.console import console_scraper_for

            inner = console_scraper_for(
                "jd", self.config, {"messages": "messages", "sessions": "sessions", "ratings": "ratings"}
            )
            self._scraper = _UnmappedGuard(inner)
        return self._scraper
