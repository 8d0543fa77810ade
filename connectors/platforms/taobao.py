"""Taobao / Tmall Qianniu (千牛) customer-service connector over the TOP gateway.

Docs: https://open.taobao.com/doc.htm?docId=101617&docType=1 (call protocol and signing),
https://open.taobao.com/doc.htm?docId=114&docType=1 (error codes),
https://open.taobao.com/api.htm?cid=10&docType=2 (taobao.wangwang.eservice.* - retired from the
live catalogue; fields per the TOP SDKs, see tests/golden/README.md),
https://open.taobao.com/api.htm?docId=21349&docType=2 (taobao.user.seller.get),
https://open.taobao.com/doc.htm?docId=102635&docType=1 (OAuth: session keys and their renewal).

- Auth: every call is signed (`TopSigner`: app_key, session, `timestamp` in GMT+8 from the real
  clock - TOP refuses more than 10 minutes of skew -, v=2.0, sign_method=md5, sign = upper hex
  MD5(secret + sorted name+value + secret)). The `session` key was issued when the shop's main
  account authorised the app, and it expires. TOP code 27 (invalid-sessionkey) or 26 means it
  died: with a `refresh_token` configured the connector renews it ONCE through the OAuth token
  endpoint (`grant_type=refresh_token`); otherwise, or when that is refused, it raises
  `CredentialsExpired` naming the app_key and the renewal step (re-authorise the app as the
  main account and put the new session into the config). Nothing else can renew it.
- Accounts: the main account (`cntaobao<shop>`, from `seller_nick` or taobao.user.seller.get)
  and every sub-account (`cntaobao<shop>:<sub>`, taobao.sellercenter.subusers.get). The shop
  bot (店小蜜) speaks as the MAIN account, and buyers' messages before an agent takes over
  belong to it, so the main account is read as well as every sub-account.
- messages: per account `wangwang.eservice.chatpeers.get` (the buyers it chatted with), then
  `wangwang.eservice.chatlog.get` per (account, buyer). Records are the chatlog `msg` items as
  received (direction 0 account -> buyer, 1 buyer -> account; `time` GMT+8) plus the request's
  `from_id` (the account) and `to_id` (the buyer). The real API has no message id: the key is
  (`to_id`, `time`, `direction`, `content`). The sandbox adds `session_id` (its conversation
  id, a SANDBOX EXTENSION); the warehouse uses it as the conversation id where present.
- ratings: `wangwang.eservice.evals.get` for up to 30 accounts per call; `eval_code` 0 非常满意
  .. 4 非常不满意 (seed scale `taobao_eval_code`); key (`eval_recer`, `eval_time`).
- agent_status: `wangwang.eservice.loginlogs.get` per sub-account (type "0" login, "1" logout),
  plus `user_id`; key (`user_id`, `time`, `type`).
- agents: `sellercenter.subusers.get` snapshot plus `polled_at` (unix s).
- D+1 windows: the eservice APIs serve whole days (GMT+8), at most 7, within 90 days and never
  today. Every window [since, until) is read as the whole local days [day(since), day(until)):
  consecutive windows tile the days without gap or overlap, and the day of `until` - today - is
  never asked for (it is read by the first run after midnight). The look-back is one day: every
  run reads the last complete day again, for rows that show up late (a D+1 source fills up
  during the next day); the loader keeps one copy of what did not change. Schedule the
  stream daily (or a few times a day): each run costs about two days of calls.
- Errors are HTTP 200 + `error_response`: code 7 (App Call Limited; "ban will last N more
  seconds") and `isp.*` sub_codes are retried; 26/27 are the dead session; 11 (insufficient
  permissions) and 22 with `isv.method-not-permit` (API switched off) mean unavailable -> the
  Qianniu console is read instead (messages, ratings); 25 (signature), 29 (app key), 31
  (timestamp) and `isv.*` business errors are fatal with what to check. HTTP 5xx is retried.

Settings (platforms.taobao): `base_url` (https://eco.taobao.com), `app_key`, `app_secret`,
`session`; optional `seller_nick` (else asked from taobao.user.seller.get), `refresh_token` and
`token_url` (default `<base_url>/token`; real: https://oauth.taobao.com/token), `page_size`
(unused: nothing pages), and `console_url`/`console_username`/`console_password` for the
fallback. docs/connectors/taobao.md has the real-account set-up and the renewal steps.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Iterator

import pandas as pd
import requests

from connectors.core.auth import TopSigner
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

log = logging.getLogger("connectors.taobao")

DOC = "https://open.taobao.com/api.htm?cid=10&docType=2"
PROTOCOL_DOC = "https://open.taobao.com/doc.htm?docId=101617&docType=1"
OAUTH_DOC = "https://open.taobao.com/doc.htm?docId=102635&docType=1"
PREFIX = "cntaobao"
LOCAL_TZ = "Asia/Shanghai"
MAX_IDS = 30  # ids per evals.get call
MAX_DAYS = 7  # days per call
RETENTION = dt.timedelta(days=90)
LOOKBACK = dt.timedelta(days=1)
SESSION_CODES = {26, 27}
UNAVAILABLE_CODES = {11}
FATAL_HINTS = {
    25: "invalid signature: check platforms.taobao.app_secret (it must belong to app_key)",
    28: "missing app_key: set platforms.taobao.app_key",
    29: "invalid app_key: check platforms.taobao.app_key",
    30: "missing timestamp: a connector bug",
    31: "timestamp refused: TOP allows 10 minutes of skew - check this machine's clock (NTP)",
    21: "missing method: a connector bug",
}
_BAN = re.compile(r"(\d+)\s*more\s*seconds")
EXPIRED_MARK = "session key expired"

STREAMS = {
    "messages": Stream(
        platform="taobao",
        name="messages",
        primary_key=("to_id", "time", "direction", "content"),
        time_field="time",
        time_format="local",
        cursor="time_window",
        doc=DOC,
        freshness="d_plus_1",
        retention=RETENTION,
        max_window=dt.timedelta(days=1),
        lookback=LOOKBACK,
        description="Chat messages of the main account and every sub-account (chatpeers + chatlog), D+1.",
    ),
    "ratings": Stream(
        platform="taobao",
        name="ratings",
        primary_key=("eval_recer", "eval_time"),
        time_field="eval_time",
        time_format="local",
        cursor="time_window",
        doc=DOC,
        freshness="d_plus_1",
        retention=RETENTION,
        max_window=dt.timedelta(days=1),
        lookback=LOOKBACK,
        required=("eval_code",),
        description="Service evaluations (evals.get eval_detail): eval_code 0 非常满意 .. 4 非常不满意.",
    ),
    "agent_status": Stream(
        platform="taobao",
        name="agent_status",
        primary_key=("user_id", "time", "type"),
        time_field="time",
        time_format="local",
        cursor="time_window",
        doc=DOC,
        freshness="d_plus_1",
        retention=RETENTION,
        max_window=dt.timedelta(days=1),
        lookback=LOOKBACK,
        description="Login (type 0) and logout (type 1) events of each sub-account (loginlogs.get).",
    ),
    "agents": Stream(
        platform="taobao",
        name="agents",
        primary_key=("nick", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc=DOC,  # taobao.sellercenter.subusers.get
        freshness="hourly",
        description="The shop's sub-accounts (sellercenter.subusers.get), a snapshot per run.",
    ),
}


# -- windows ------------------------------------------------------------------------------------
def local_days(window: Window) -> tuple[dt.date, dt.date] | None:
    """The whole GMT+8 days a window stands for: [day(since), day(until)) as (first, last),
    both inclusive; None when there is no complete day (the window lies within today)."""
    first = pd.Timestamp(window.since).tz_convert(LOCAL_TZ).date()
    end = pd.Timestamp(window.until).tz_convert(LOCAL_TZ).date()
    if end <= first:
        return None
    return first, end - dt.timedelta(days=1)


def day_chunks(first: dt.date, last: dt.date, size: int = MAX_DAYS) -> Iterator[tuple[str, str]]:
    """(start_date, end_date) strings of at most `size` days covering [first, last]."""
    day = first
    while day <= last:
        end = min(last, day + dt.timedelta(days=size - 1))
        yield day.isoformat(), end.isoformat()
        day = end + dt.timedelta(days=1)


def day_window(first: dt.date, last: dt.date) -> Window:
    """[first 00:00, last + 1 day 00:00) GMT+8 as a UTC window."""
    lo = pd.Timestamp(first).tz_localize(LOCAL_TZ).tz_convert("UTC")
    hi = pd.Timestamp(last + dt.timedelta(days=1)).tz_localize(LOCAL_TZ).tz_convert("UTC")
    return Window(lo, hi)


# -- errors ---------------------------------------------------------------------------------------
def response_key(method: str) -> str:
    """`taobao.wangwang.eservice.chatlog.get` -> `wangwang_eservice_chatlog_get_response`."""
    name = method[len("taobao.") :] if method.startswith("taobao.") else method
    return name.replace(".", "_") + "_response"


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
    try:
        code = int(error.get("code", 0))
    except (TypeError, ValueError):
        code = -1
    sub_code = str(error.get("sub_code") or "")
    sub_msg = str(error.get("sub_msg") or "")
    reason = f"TOP code {code} {error.get('msg', '')}" + (f" ({sub_code}: {sub_msg})" if sub_code else "")
    if code == 7 or sub_code.startswith("accesscontrol."):
        ban = _BAN.search(sub_msg)
        return Classified(Verdict.RETRY, reason, float(ban.group(1)) if ban else 1.0)
    if sub_code.startswith("isp."):
        return Classified(Verdict.RETRY, reason)
    if code in SESSION_CODES:
        return Classified(Verdict.TOKEN_EXPIRED, f"{EXPIRED_MARK}: {reason}")
    if code in UNAVAILABLE_CODES or (code == 22 and sub_code == "isv.method-not-permit"):
        return Classified(Verdict.UNAVAILABLE, reason)
    hint = FATAL_HINTS.get(code)
    return Classified(Verdict.FATAL, f"{reason}: {hint}" if hint else reason)


def renewal_steps(app_key: str, base_url: str) -> str:
    return (
        "Renew it: log in to Qianniu/卖家中心 as the shop's MAIN account and authorise the app again "
        f"(https://oauth.taobao.com/authorize?response_type=code&client_id={app_key}&redirect_uri=<your "
        "callback>&view=web, then exchange the code at https://oauth.taobao.com/token), put the new "
        "session key into platforms.taobao.session (or the Airflow connection csw_taobao, extra.session) "
        "and, to let the connector renew it by itself next time, its refresh_token into "
        f"platforms.taobao.refresh_token ({OAUTH_DOC}). Sandbox: POST {base_url}/token with "
        "grant_type=refresh_token."
    )


class RenewableTopSigner(TopSigner):
    """`TopSigner` whose session key can be replaced once it died (`renew()` -> a new key)."""

    def __init__(self, app_key: str, app_secret: str, session_key: str, renew: Callable[[], str]):
        super().__init__(app_key, app_secret, session_key)
        self._renew = renew
        self._lock = threading.Lock()

    def current_token(self) -> str | None:
        return self._session

    def refresh(self, stale: str | None = None) -> None:
        with self._lock:
            if stale is not None and stale != self._session:
                return  # another caller renewed it already
            session = self._renew()
            register_secret(session)
            self._session = session


class _DayAlignedScraper:
    """The console scraper, asked for the same whole days as the API would be."""

    def __init__(self, inner):
        self.inner = inner

    def fetch(self, stream: Stream, window: Window, cursor=None) -> Iterator[Page]:
        if stream.name not in self.inner.streams_map:
            from connectors.scrapers.console import ScraperError

            raise ScraperError(
                f"taobao.{stream.name}: the API is unavailable and the Qianniu console has no report of "
                "this stream; it is read again when the API is back (the window is re-run from its cursor)"
            )
        days = local_days(window)
        if days is None:
            yield Page([], cursor, done=True, source="scrape")
            return
        yield from self.inner.fetch(stream, day_window(*days), cursor)

    def close(self) -> None:
        self.inner.close()


class Connector(PlatformConnector):
    name = "taobao"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        self.gateway = f"{self.base}/router/rest"
        # an Airflow connection may carry them as login / password
        self.app_key = str(config.get("app_key") or config.get("login") or config.require("app_key"))
        self._secret = str(config.get("app_secret") or config.get("password") or config.require("app_secret"))
        self._refresh_token = config.get("refresh_token")
        register_secret(self._refresh_token)
        self.token_url = config.get("token_url") or f"{self.base}/token"
        self.seller_nick: str | None = config.get("seller_nick")
        self._accounts: list[str] | None = None
        self._scraper = None
        self._token_http = HttpClient("taobao-oauth", None, None, self.policy)
        signer = RenewableTopSigner(self.app_key, self._secret, config.require("session"), self._renew)
        self.http = HttpClient("taobao", signer, classify, self.policy)

    # -- session renewal ---------------------------------------------------------------------
    def _expired(self, why: str) -> CredentialsExpired:
        return CredentialsExpired(
            f"taobao: the session key of app_key {self.app_key} (shop {self.seller_nick or '?'}) has "
            f"expired or was revoked ({why}). {renewal_steps(self.app_key, self.base)}"
        )

    def _renew(self) -> str:
        if not self._refresh_token:
            raise self._expired("TOP code 27 invalid-sessionkey; no refresh_token is configured")
        log.warning(
            "taobao: session key of app_key %s expired; renewing it with the refresh token", self.app_key
        )
        try:
            response = self._token_http.request(
                "POST",
                self.token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": self.app_key,
                    "client_secret": self._secret,
                    "refresh_token": self._refresh_token,
                },
            )
            body = parsed_json(response)
        except (FatalApiError, ValueError) as exc:
            raise self._expired(f"the refresh token was refused: {exc}") from exc
        session = body.get("access_token") if isinstance(body, dict) else None
        if not session:
            raise self._expired(f"the token endpoint answered without access_token (keys {sorted(body)[:6]})")
        if body.get("refresh_token"):
            self._refresh_token = body["refresh_token"]
            register_secret(self._refresh_token)
        register_secret(session)
        return session

    # -- calls -------------------------------------------------------------------------------
    def call(self, method: str, **params) -> dict:
        """One TOP call; the inside of `<method>_response`."""
        try:
            body = self.http.json("POST", self.gateway, data={"method": method, **params})
        except FatalApiError as exc:
            if EXPIRED_MARK in str(exc):
                raise self._expired("TOP code 27 again right after renewing it") from exc
            raise
        inner = body.get(response_key(method)) if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            raise FatalApiError(
                f"taobao: {method} answered without {response_key(method)} (keys {sorted(body)[:6]})"
            )
        return inner

    @staticmethod
    def items(body: dict, outer: str, inner: str) -> list[dict]:
        """A TOP list (`{"msgs": {"msg": [...]}}`); TOP leaves empty lists out."""
        node = body.get(outer) or {}
        values = node.get(inner) if isinstance(node, dict) else node
        return [v for v in (values or []) if isinstance(v, dict)]

    def main_account(self) -> str:
        if not self.seller_nick:
            user = self.call("taobao.user.seller.get", fields="nick,user_id").get("user") or {}
            if not user.get("nick"):
                raise FatalApiError(
                    "taobao: taobao.user.seller.get returned no nick; set platforms.taobao.seller_nick"
                )
            self.seller_nick = str(user["nick"])
        return PREFIX + self.seller_nick

    def sub_users(self) -> list[dict]:
        main = self.main_account()
        body = self.call("taobao.sellercenter.subusers.get", nick=main[len(PREFIX) :])
        return self.items(body, "subusers", "sub_user_info")

    def accounts(self) -> list[str]:
        """The main account first, then every sub-account (cached for the run)."""
        if self._accounts is None:
            subs = sorted({PREFIX + str(s["nick"]) for s in self.sub_users() if s.get("nick")})
            self._accounts = [self.main_account(), *subs]
        return self._accounts

    # -- streams -----------------------------------------------------------------------------
    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        if stream.name == "agents":
            polled = int(window.until.timestamp())
            yield Page([{**s, "polled_at": polled} for s in self.sub_users()], None, done=True)
            return
        days = local_days(window)
        if pd.Timestamp(window.until).tz_convert(LOCAL_TZ).normalize() < window.until:
            log.info(
                "taobao.%s: a D+1 source - the window ends %s, read up to the start of that day",
                stream.name,
                pd.Timestamp(window.until).tz_convert(LOCAL_TZ).strftime("%Y-%m-%d %H:%M"),
            )
        if days is None:
            yield Page([], None, done=True)
            return
        for start, end in day_chunks(*days):
            if stream.name == "messages":
                yield from self._messages(start, end)
            elif stream.name == "ratings":
                yield from self._ratings(start, end)
            elif stream.name == "agent_status":
                yield from self._login_logs(start, end)
            else:
                raise KeyError(stream.name)
        yield Page([], None, done=True)

    def _messages(self, start: str, end: str) -> Iterator[Page]:
        for account in self.accounts():
            body = self.call(
                "taobao.wangwang.eservice.chatpeers.get", chat_id=account, start_date=start, end_date=end
            )
            buyers = sorted(
                {str(p["uid"]) for p in self.items(body, "chatpeers", "chatpeer") if p.get("uid")}
            )
            records: list[dict] = []
            for buyer in buyers:
                log_body = self.call(
                    "taobao.wangwang.eservice.chatlog.get",
                    from_id=account,
                    to_id=buyer,
                    start_date=start,
                    end_date=end,
                )
                records.extend(
                    {**m, "from_id": account, "to_id": buyer} for m in self.items(log_body, "msgs", "msg")
                )
            yield Page(records, None)

    def _ratings(self, start: str, end: str) -> Iterator[Page]:
        accounts = self.accounts()
        for i in range(0, len(accounts), MAX_IDS):
            ids = ",".join(accounts[i : i + MAX_IDS])
            body = self.call(
                "taobao.wangwang.eservice.evals.get", service_staff_id=ids, start_date=start, end_date=end
            )
            yield Page(self.items(body, "staff_eval_details", "eval_detail"), None)

    def _login_logs(self, start: str, end: str) -> Iterator[Page]:
        for account in self.accounts()[1:]:  # the main account is the shop, not an agent
            body = self.call(
                "taobao.wangwang.eservice.loginlogs.get",
                service_staff_id=account,
                start_date=start,
                end_date=end,
            )
            user = str(body.get("user_id") or account)
            yield Page([{**r, "user_id": user} for r in self.items(body, "loginlogs", "login_log")], None)

    def scraper(self):
        """The Qianniu console for messages and ratings, read by whole days like the API."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers.console import console_scraper_for

            inner = console_scraper_for("taobao", self.config, {"messages": "messages", "ratings": "ratings"})
            self._scraper = _DayAlignedScraper(inner)
        return self._scraper
