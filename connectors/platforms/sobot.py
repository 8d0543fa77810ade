"""Sobot 智齿 online customer service connector (open API v5).

Docs: https://developer.zhichi.com/pages/6cc489 (API调用说明: get_token, the `token` header,
"one token for every business API"), https://developer.zhichi.com/pages/7dbd90 (在线客服 API:
会话列表, 会话记录, 满意度). The session, message and satisfaction field tables were not in the
stored docs: the shapes follow the sandbox (docs/sandbox/sobot.md, tests/golden/sobot/).

- Auth: `GET /api/get_token?appid&create_time&sign`, sign = md5(appid + create_time + app_key)
  lower hex, create_time unix seconds -> `item.token`, valid 24 h, sent in the `token` HTTP
  header. Every get_token issues a NEW token and revokes the old ones, so a connector run
  fetches one token (lazily) and shares it with all its streams (`token_auth`), refreshing it
  ONCE when Sobot says it died (ret_code 900002), under a lock, only if no other stream
  refreshed it meanwhile. Separate runs (parallel Airflow tasks) each fetch their own and
  revoke each other's: run a Sobot account's streams in one task or a pool of one slot
  (docs/connectors/sobot.md). No person has to renew anything: appid/app_key do not expire.
- sessions: `GET /api/online/5/get_chat_list?start_date&end_date&page_no&page_size` - sessions
  STARTED in the window (open ones have end_time 0); a session changes until it closes (and a
  reopen can follow hours later), so windows are re-read 1 day back.
- messages: Sobot has no bulk message export: for a window [since, until] the connector lists
  the sessions started from `session_span_hours` (48) before `since`, keeps those still open
  or ended at or after `since`, reads each one's `get_chat_detail?cid` and keeps the messages
  with `since <= t <= until`. Windows are re-read 1 h back for messages that show up late.
  sender_type 0 user, 1 bot, 2 agent, 3 system event (fixed texts, mapped in staging); `t`
  epoch ms (kept to the ms), `ts` local string.
- ratings: `GET /api/online/5/get_satisfaction?start_date&end_date` - evaluations given in the
  window (1 h look-back); key (`cid`, `type`: 1 agent, 0 bot evaluation); `score` 1-5, `nps`
  0-10 or -1 when not asked (a sandbox extension).
- agents: `get_staff_list` snapshot + `polled_at` (unix s). agent_status:
  `get_staff_status_log?start_date&end_date` intervals by start (1 day look-back: an interval's
  end comes later), status 1 online, 2 busy, 3 away, 0 offline.
- Windows: `start_date`/`end_date` `yyyy-MM-dd HH:mm:ss` Asia/Shanghai, BOTH inclusive to the
  second, at most 31 days; [since, until) asks [floor(since), floor(until)]. Paging `page_no`
  from 1, `page_size` <= 100, until `page_no * page_size >= total_count`. Re-read rows already
  landed unchanged are not landed again (`drop_landed_unchanged`).
- Errors are HTTP 200 + `ret_code`: 900004 (rate limit, "请N秒后重试": waits N s), 900005 (busy),
  999999 / HTTP 5xx are retried; 900006 (API not enabled) and 900007 (no permission) mean
  unavailable -> the console scraper takes over; 900001 (bad parameter) and 900003 (bad appid
  or sign) are fatal with what to check.

Settings (platforms.sobot): `base_url` (https://www.sobot.com, or www.soboten.com on Tencent
Cloud), `appid`, `app_key`, optional `page_size`, `session_span_hours`; the console fallback
reads `console_url`, `console_username`, `console_password`. docs/connectors/sobot.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Iterator

import pandas as pd
import requests

from connectors.core.auth import AccessTokenAuth
from connectors.core.http import (
    Classified,
    ConnectorError,
    FatalApiError,
    HttpClient,
    RetryPolicy,
    Verdict,
    parsed_json,
    register_secret,
)
from connectors.core.runner import PlatformConnector, drop_landed_unchanged
from connectors.core.streams import Page, Stream, Window

log = logging.getLogger("connectors.sobot")

PLATFORM = "sobot"
DOC = "https://developer.zhichi.com/pages/7dbd90"
TOKEN_DOC = "https://developer.zhichi.com/pages/6cc489"
SANDBOX_DOC = "docs/sandbox/sobot.md"
LOCAL_TZ = "Asia/Shanghai"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_PAGE_SIZE = 100
OK = "000000"
TOKEN_ERRORS = {"900002"}
RETRY_ERRORS = {"900004", "900005", "999999"}
UNAVAILABLE_ERRORS = {"900006", "900007"}
FATAL_HINTS = {
    "900001": "bad parameter - this is a connector bug",
    "900003": "appid or sign refused: check platforms.sobot.appid and app_key (from Sobot's after-sales team)",
}
_SECONDS = re.compile(r"(\d+)\s*秒")

STREAMS = {
    "sessions": Stream(
        platform=PLATFORM,
        name="sessions",
        primary_key=("cid",),
        time_field="start_time",
        time_format="unix_ms",
        cursor="time_window",
        doc=f"{DOC} (查询客户会话列表 get_chat_list)",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(days=1),
        description="Sessions by start time (end_time 0 while open); a changed session is a new version.",
    ),
    "messages": Stream(
        platform=PLATFORM,
        name="messages",
        primary_key=("msgid",),
        time_field="t",
        time_format="unix_ms",
        cursor="time_window",
        doc=f"{DOC} (查询客户会话记录 get_chat_detail, per session)",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        required=("sender_type",),
        description="Messages and session events (sender_type 0 user, 1 bot, 2 agent, 3 system) by send time.",
    ),
    "ratings": Stream(
        platform=PLATFORM,
        name="ratings",
        primary_key=("cid", "type"),
        time_field="t",
        time_format="unix_ms",
        cursor="time_window",
        doc=f"{DOC} (客户评价 get_satisfaction)",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        description="Satisfaction evaluations (score 1-5, nps 0-10 or -1) by evaluation time.",
    ),
    "agents": Stream(
        platform=PLATFORM,
        name="agents",
        primary_key=("staff_id", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc=f"sandbox GET /api/online/5/get_staff_list ({SANDBOX_DOC})",
        freshness="real_time",
        description="Agents (staff) with their group and whether they are online, a snapshot per run.",
    ),
    "agent_status": Stream(
        platform=PLATFORM,
        name="agent_status",
        primary_key=("staff_id", "start_time"),
        time_field="start_time",
        time_format="unix_ms",
        cursor="time_window",
        doc=f"sandbox extension GET /api/online/5/get_staff_status_log ({SANDBOX_DOC})",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(days=1),
        description="Agent status intervals by start; end_time 0 while the status lasts.",
    ),
}


def sign(appid: str, create_time: str, app_key: str) -> str:
    """get_token's sign: md5(appid + create_time + app_key), lower-case hex."""
    return hashlib.md5(f"{appid}{create_time}{app_key}".encode()).hexdigest()


def classify(response: requests.Response) -> Classified:
    status = response.status_code
    if status == 429 or status >= 500:
        return Classified(Verdict.RETRY, f"HTTP {status}")
    try:
        body = parsed_json(response)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if status == 404:
            return Classified(Verdict.FATAL, "HTTP 404: no such endpoint - check platforms.sobot.base_url")
        if status == 200:
            return Classified(Verdict.RETRY, "HTTP 200 but the body is not a JSON object")
        return Classified(Verdict.FATAL, f"HTTP {status}: {response.text[:200]}")
    code = str(body.get("ret_code", ""))
    reason = f"ret_code {code} {body.get('ret_msg', '')}".strip()
    if status >= 400:
        return Classified(Verdict.FATAL, f"HTTP {status} {reason}")
    if code == OK:
        return Classified(Verdict.OK)
    if code in TOKEN_ERRORS:
        return Classified(Verdict.TOKEN_EXPIRED, reason)
    if code in RETRY_ERRORS:
        wait = _SECONDS.search(str(body.get("ret_msg", "")))
        return Classified(Verdict.RETRY, reason, float(wait.group(1)) if wait else None)
    if code in UNAVAILABLE_ERRORS:
        return Classified(Verdict.UNAVAILABLE, reason)
    hint = FATAL_HINTS.get(code)
    return Classified(Verdict.FATAL, f"{reason}: {hint}" if hint else reason)


# -- one token per connector run ---------------------------------------------------------------
def token_auth(base: str, appid: str, app_key: str, policy: RetryPolicy) -> AccessTokenAuth:
    """The token of one connector run, shared by all its streams. Fetching a token revokes the
    previous one, so it is fetched once (lazily), refreshed only when Sobot says it died, and
    never kept across runs: a token held from an earlier run may have been revoked by another
    process since, and a stale start would spend the one refresh a call may make."""
    register_secret(app_key)
    token_http = HttpClient(PLATFORM, None, classify, policy)

    def fetch_token(_session: requests.Session) -> tuple[str, float]:
        create_time = str(int(time.time()))
        params = {"appid": appid, "create_time": create_time, "sign": sign(appid, create_time, app_key)}
        try:
            body = token_http.json("GET", f"{base}/api/get_token", params=params)
        except FatalApiError as exc:
            raise ConnectorError(
                f"sobot: get_token refused appid {appid!r} ({exc}); check platforms.sobot.appid and "
                "app_key in the connector config (or the Airflow connection csw_sobot)"
            ) from exc
        item = body.get("item") or {}
        if not item.get("token"):
            raise FatalApiError(f"sobot: get_token answered without item.token ({sorted(body)})")
        log.info("sobot: new token for appid %s (the previous one is revoked)", appid)
        return item["token"], float(item.get("expires_in") or 86400)

    return AccessTokenAuth(fetch_token, query_param=None, header="token", margin_s=600.0)


# -- times --------------------------------------------------------------------------------------
def local_time(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert(LOCAL_TZ).strftime(LOCAL_FORMAT)


def window_params(since: pd.Timestamp, until: pd.Timestamp) -> dict[str, str]:
    """[since, until) -> start_date / end_date, both inclusive to the second."""
    return {
        "start_date": local_time(pd.Timestamp(since).floor("s")),
        "end_date": local_time(pd.Timestamp(until).floor("s")),
    }


def _ms(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value // 10**6)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Connector(PlatformConnector):
    name = PLATFORM
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        self.appid = config.require("appid")
        auth = token_auth(self.base, self.appid, config.require("app_key"), self.policy)
        self.http = HttpClient(PLATFORM, auth, classify, self.policy)
        self.session_span = pd.Timedelta(hours=float(config.get("session_span_hours", 48)))
        self._scraper = None

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        params = window_params(window.since, window.until)
        if stream.name == "sessions":
            pages = self._paged("get_chat_list", params)
        elif stream.name == "messages":
            pages = self._messages(window)
        elif stream.name == "ratings":
            pages = self._paged("get_satisfaction", params)
        elif stream.name == "agent_status":
            pages = self._paged("get_staff_status_log", params)
        elif stream.name == "agents":
            item = self._call("get_staff_list", {}).get("item") or {}
            staff = item.get("list")
            if not isinstance(staff, list):
                raise FatalApiError("sobot: get_staff_list answered without item.list")
            polled = int(window.until.timestamp())
            yield Page([{**s, "polled_at": polled} for s in staff], None, done=True)
            return
        else:
            raise KeyError(stream.name)
        yield from drop_landed_unchanged(PLATFORM, stream, window, pages)

    def scraper(self):
        """The admin console (智齿管理后台): every stream has a report of the API's shape
        (`SHAPES['sobot']`)."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers.console import console_scraper_for

            self._scraper = console_scraper_for(PLATFORM, self.config)
        return self._scraper

    # -- calls and paging ------------------------------------------------------------------------
    def _call(self, endpoint: str, params: dict) -> dict:
        return self.http.json("GET", f"{self.base}/api/online/5/{endpoint}", params=params)

    def _paged(self, endpoint: str, params: dict) -> Iterator[Page]:
        size = self.page_size(MAX_PAGE_SIZE)
        page_no = 1
        while True:
            item = self._call(endpoint, {**params, "page_no": page_no, "page_size": size}).get("item")
            items = item.get("list") if isinstance(item, dict) else None
            if not isinstance(items, list):
                raise FatalApiError(f"sobot: {endpoint} answered without item.list")
            total = _int(item.get("total_count")) or 0
            more = bool(items) and page_no * size < total
            yield Page(items, None, done=not more)
            if not more:
                return
            page_no += 1

    def _messages(self, window: Window) -> Iterator[Page]:
        """The messages sent in [since, until] of every session active then."""
        since, until = _ms(window.since), _ms(window.until)
        listed = window_params(window.since - self.session_span, window.until)
        seen: set[str] = set()
        for page in self._paged("get_chat_list", listed):
            messages: list[dict] = []
            for session in page.records:
                cid = session.get("cid")
                if not cid:
                    log.warning("sobot: a session without cid in get_chat_list; its messages cannot be read")
                    continue
                start, end = _int(session.get("start_time")), _int(session.get("end_time"))
                if cid in seen or (start is not None and start > until) or (end and end < since):
                    continue  # not active in the window (a reopened session shows end_time 0)
                seen.add(cid)
                items = self._call("get_chat_detail", {"cid": cid}).get("items")
                if not isinstance(items, list):
                    raise FatalApiError(
                        f"sobot: get_chat_detail answered without items for a session of {cid[:6]}…"
                    )
                for m in items:
                    t = _int(m.get("t"))
                    if t is None or since <= t <= until:  # no time: land it so the loader quarantines it
                        messages.append(m)
            yield Page(messages, None, done=page.done)
