"""Meiqia 美洽 connector (bearer-token REST API).

Docs: https://meiqia.com/help/article/apiv2-0 (美洽 APIs v2: Access Token, 对话模型 with
`conv_id`, `conv_start_tm`, `conv_end_tm`, `conv_first_resp_wait_in_secs`, `agent_ID`,
`group_id`); `comment_level` codes from Meiqia's SDK (`MQEvaluationType`: 0 差评, 1 中评,
2 好评). The list endpoints' paths and envelope follow the sandbox
(docs/sandbox/meiqia.md, tests/golden/meiqia/), whose shapes were not all in the docs.

- Auth: `POST /token {app_id, secret}` -> `data.access_token` (7200 s), sent as
  `Authorization: Bearer <token>`; HTTP 401 with code 40100/40101 -> refresh once (the
  HttpClient does it once per call, under a lock). A real Meiqia workbench issues the token
  by hand (设置 > 开发者 > APIs, "permanent, re-issuing it revokes the old one"): set
  `access_token` instead of `app_id`/`secret`; when Meiqia refuses it, only a person can
  issue a new one, so that is a `CredentialsExpired` naming the account and the step.
- conversations: `GET /v1/conversations?start_time&end_time&page&per_page` - the records of
  conversations that ENDED in the window (`conv_end_tm`); a rating given after the end
  updates the record, so the window is re-read 1 h back (ratings come minutes after the
  end) and a reopened conversation shows up again with its new end. Key `conv_id`: each
  changed version is a new raw row, staging keeps the latest.
- messages, by the setting `messages_mode`:
  - `bulk` (default): `GET /v1/messages?start_time&end_time&page&per_page` - a SANDBOX
    EXTENSION (every message and event created in the window); real Meiqia answers 404.
  - `per_conversation`: the conversations that ended from the window's start to
    `conversation_span_hours` (48) after its end, then `GET /v1/conversations/{conv_id}/messages`
    for each, keeping the messages sent in the window (the only path on real Meiqia). Meiqia
    lists a conversation only once it has ended, so messages of a conversation still open
    when their window is last read (the run, or its 1 h look-back) are not found: fine for
    chats that end within the hour, a gap for longer ones (docs/connectors/meiqia.md). An
    unknown conversation (40400) is skipped with a log line.
  `from` client | agent | robot | system, `type` message | event; events carry fixed texts
  (hand-off, assign, transfer, close, reopen) that staging maps to event types.
- agents: `GET /v1/agents` snapshot (each record gets `polled_at`, unix s: the API gives no
  time). agent_status: `GET /v1/agents/status_logs?start_time&end_time` - intervals started in
  the window, `end_tm` null while ongoing (re-read 1 day back: shifts last up to 16 h).
- Windows: `start_time`/`end_time` `yyyy-MM-dd HH:mm:ss` Asia/Shanghai, half-open, at most
  31 days; the runner's window [since, until) asks [floor(since), floor(until) + 1 s) so the
  second holding `until` is read whole. Paging `page` from 1, `per_page` <= 1000, until
  `page * per_page >= total`. Every time-window stream drops re-read rows that are already
  landed unchanged (`drop_landed_unchanged`): a look-back costs no duplicate landings.
- Errors: HTTP 429 (code 42900, Retry-After), 5xx (50000), and HTTP 200 code 50010 系统繁忙
  are retried; 403 with 40310 (open API off) / 40300 (no permission) mean unavailable -> the
  console scraper takes over; 400/40000 (bad parameter), 40001 (bad app_id/secret) and a 404
  without Meiqia's envelope (no such endpoint) are fatal with what to check.

Settings (platforms.meiqia): `base_url`, `app_id` + `secret` (or `access_token`), optional
`messages_mode` (bulk | per_conversation), `conversation_span_hours`, `page_size`; the console fallback reads
`console_url`, `console_username`, `console_password`. docs/connectors/meiqia.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pandas as pd
import requests

from connectors.core.auth import AccessTokenAuth
from connectors.core.config import ConfigError
from connectors.core.http import (
    Classified,
    ConnectorError,
    CredentialsExpired,
    FatalApiError,
    HttpClient,
    Verdict,
    parsed_json,
    register_secret,
)
from connectors.core.runner import PlatformConnector, drop_landed_unchanged
from connectors.core.streams import Page, Stream, Window

log = logging.getLogger("connectors.meiqia")

PLATFORM = "meiqia"
DOC = "https://meiqia.com/help/article/apiv2-0"
SANDBOX_DOC = "docs/sandbox/meiqia.md"
LOCAL_TZ = "Asia/Shanghai"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_PER_PAGE = 1000
MESSAGES_MODES = ("bulk", "per_conversation")
TOKEN_ERRORS = {40100, 40101}
RETRY_ERRORS = {42900, 50000, 50010}
UNAVAILABLE_ERRORS = {40300, 40310}
NOT_FOUND = 40400
RENEWAL = (
    "log in to the Meiqia workbench, 设置 > 开发者 > APIs, issue a new Access Token, and put it in "
    "platforms.meiqia.access_token (or the Airflow connection csw_meiqia)"
)

STREAMS = {
    "conversations": Stream(
        platform=PLATFORM,
        name="conversations",
        primary_key=("conv_id",),
        time_field="conv_end_tm",
        time_format="local",
        cursor="time_window",
        doc=f"{DOC} (对话模型); sandbox GET /v1/conversations",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        description="Records of conversations that ended, by end time; a later rating (comment_level) "
        "or a reopen-and-close is a new version of the record.",
    ),
    "messages": Stream(
        platform=PLATFORM,
        name="messages",
        primary_key=("id",),
        time_field="created_on",
        time_format="local",
        cursor="time_window",
        doc=f"{DOC}; bulk: sandbox extension GET /v1/messages ({SANDBOX_DOC})",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(hours=1),
        required=("from",),
        description="Messages and session events (from client|agent|robot|system) by creation time.",
    ),
    "agents": Stream(
        platform=PLATFORM,
        name="agents",
        primary_key=("agent_id", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc=f"sandbox GET /v1/agents ({SANDBOX_DOC})",
        freshness="real_time",
        description="Agents (nickname, group) and whether they are online, a snapshot per run.",
    ),
    "agent_status": Stream(
        platform=PLATFORM,
        name="agent_status",
        primary_key=("agent_id", "start_tm"),
        time_field="start_tm",
        time_format="local",
        cursor="time_window",
        doc=f"sandbox extension GET /v1/agents/status_logs ({SANDBOX_DOC})",
        freshness="real_time",
        max_window=dt.timedelta(days=1),
        lookback=dt.timedelta(days=1),
        description="Agent status intervals by start; end_tm null while the status lasts.",
    ),
}


def _body(response: requests.Response) -> dict | None:
    try:
        body = parsed_json(response)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def classify(response: requests.Response) -> Classified:
    status = response.status_code
    body = _body(response)
    code = body.get("code") if body is not None else None
    message = str(body.get("message", "")) if body is not None else ""
    reason = f"HTTP {status}" + (f" code {code} {message}".rstrip() if code is not None else "")
    if status == 429 or code == 42900:
        retry_after = response.headers.get("Retry-After")
        try:
            wait = float(retry_after) if retry_after is not None else None
        except ValueError:
            wait = None
        return Classified(Verdict.RETRY, reason, wait)
    if status >= 500 or code in RETRY_ERRORS:
        return Classified(Verdict.RETRY, reason)
    if body is None:
        if status == 404:
            return Classified(
                Verdict.FATAL,
                f"{reason}: no such endpoint - check base_url; messages_mode: bulk (GET /v1/messages) exists "
                "only in the sandbox, real Meiqia needs messages_mode: per_conversation",
            )
        if status == 200:
            return Classified(Verdict.RETRY, "HTTP 200 but the body is not JSON")
        return Classified(Verdict.FATAL, f"{reason}: {response.text[:200]}")
    if status == 200 and code == 0:
        return Classified(Verdict.OK)
    if code in TOKEN_ERRORS:
        return Classified(Verdict.TOKEN_EXPIRED, reason)
    if code in UNAVAILABLE_ERRORS:
        return Classified(Verdict.UNAVAILABLE, reason)
    if code == NOT_FOUND:
        return Classified(Verdict.OK)  # an unknown conversation: the caller skips it
    if code == 40001:
        return Classified(Verdict.FATAL, f"{reason}: check platforms.meiqia.app_id and secret")
    if code == 40000:
        return Classified(Verdict.FATAL, f"{reason}: a bad parameter - this is a connector bug")
    return Classified(Verdict.FATAL, reason)


def local_time(ts: pd.Timestamp) -> str:
    """A UTC instant as Meiqia's local `yyyy-MM-dd HH:mm:ss` (Asia/Shanghai)."""
    return pd.Timestamp(ts).tz_convert(LOCAL_TZ).strftime(LOCAL_FORMAT)


def window_params(window: Window) -> dict[str, str]:
    """[since, until) -> the half-open [start_time, end_time) in whole local seconds, with the
    second holding `until` read whole (rows in it that land twice are dropped as unchanged)."""
    start = pd.Timestamp(window.since).floor("s")
    end = pd.Timestamp(window.until).floor("s") + pd.Timedelta(seconds=1)
    return {"start_time": local_time(start), "end_time": local_time(end)}


class Connector(PlatformConnector):
    name = PLATFORM
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        self.messages_mode = str(config.get("messages_mode") or "bulk")
        if self.messages_mode not in MESSAGES_MODES:
            raise ConfigError(
                f"platforms.meiqia.messages_mode is {self.messages_mode!r}; use bulk (the sandbox's "
                "GET /v1/messages) or per_conversation (real Meiqia)"
            )
        self.conversation_span = pd.Timedelta(hours=float(config.get("conversation_span_hours", 48)))
        self.http = HttpClient(
            PLATFORM, AccessTokenAuth(self._token_source(), **self._bearer()), classify, self.policy
        )
        self._scraper = None

    @staticmethod
    def _bearer() -> dict:
        return {"query_param": None, "header": "Authorization", "header_format": "Bearer {token}"}

    def _token_source(self):
        static = self.config.get("access_token")
        if static:
            register_secret(str(static))
            issued = {"n": 0}

            def static_token(_session: requests.Session) -> tuple[str, float]:
                issued["n"] += 1
                if issued["n"] > 1:  # Meiqia refused it: a person has to issue a new one
                    raise CredentialsExpired(
                        f"meiqia: the access token of the Meiqia account ({self.base}) was refused "
                        f"(invalid or revoked). Renew it: {RENEWAL}."
                    )
                return str(static), 10 * 365 * 86400.0

            return static_token
        app_id, secret = self.config.require("app_id"), self.config.require("secret")
        register_secret(secret)
        token_http = HttpClient(PLATFORM, None, classify, self.policy)

        def fetch_token(_session: requests.Session) -> tuple[str, float]:
            try:
                body = token_http.json(
                    "POST", f"{self.base}/token", json={"app_id": app_id, "secret": secret}
                )
            except FatalApiError as exc:
                raise ConnectorError(
                    f"meiqia: the token endpoint refused app_id {app_id!r} ({exc}); check platforms.meiqia."
                    "app_id and secret in the connector config (or the Airflow connection csw_meiqia)"
                ) from exc
            data = body.get("data") or {}
            if not data.get("access_token"):
                raise FatalApiError(
                    f"meiqia: the token endpoint answered without data.access_token ({sorted(body)})"
                )
            return data["access_token"], float(data.get("expires_in", 7200))

        return fetch_token

    # -- streams -----------------------------------------------------------------------------
    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        if stream.name == "conversations":
            pages = self._paged("v1/conversations", "conversations", window_params(window))
        elif stream.name == "messages":
            if self.messages_mode == "bulk":
                pages = self._paged("v1/messages", "messages", window_params(window))
            else:
                pages = self._messages_per_conversation(window)
        elif stream.name == "agent_status":
            pages = self._paged("v1/agents/status_logs", "status_logs", window_params(window))
        elif stream.name == "agents":
            body = self.http.json("GET", f"{self.base}/v1/agents")
            polled = int(window.until.timestamp())
            agents = (body.get("data") or {}).get("agents")
            if not isinstance(agents, list):
                raise FatalApiError(f"meiqia: /v1/agents answered without data.agents ({sorted(body)})")
            yield Page([{**a, "polled_at": polled} for a in agents], None, done=True)
            return
        else:
            raise KeyError(stream.name)
        yield from drop_landed_unchanged(PLATFORM, stream, window, pages)

    def scraper(self):
        """The admin console (美洽管理后台) for every stream: reports sessions (= conversations),
        messages, agents, agent_status, shaped like the API records (`SHAPES['meiqia']`)."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers.console import console_scraper_for

            self._scraper = _EndedConversations(
                console_scraper_for(
                    PLATFORM,
                    self.config,
                    {
                        "conversations": "sessions",
                        "messages": "messages",
                        "agents": "agents",
                        "agent_status": "agent_status",
                    },
                )
            )
        return self._scraper

    # -- paging ------------------------------------------------------------------------------
    def _paged(self, path: str, key: str, params: dict) -> Iterator[Page]:
        url = f"{self.base}/{path}"
        per_page = self.page_size(MAX_PER_PAGE)
        page = 1
        while True:
            body = self.http.json("GET", url, params={**params, "page": page, "per_page": per_page})
            data = body.get("data") or {}
            items = data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise FatalApiError(f"meiqia: {path} answered without data.{key} (keys: {sorted(body)})")
            total = int(data.get("total") or 0)
            more = bool(items) and page * per_page < total
            yield Page(items, None, done=not more)
            if not more:
                return
            page += 1

    def _messages_per_conversation(self, window: Window) -> Iterator[Page]:
        """The messages sent in the window, read conversation by conversation: Meiqia lists a
        conversation once it has ended, so the conversations ending from the window's start to
        `conversation_span_hours` after its end are read, and their messages sent in the
        window kept (each batch holds its window's messages, as the batch gate expects)."""
        bounds = window_params(window)
        lo, hi = bounds["start_time"], bounds["end_time"]
        listed = window_params(Window(window.since, window.until + self.conversation_span))
        for page in self._paged("v1/conversations", "conversations", listed):
            messages: list[dict] = []
            seen: set = set()
            for conv in page.records:
                conv_id = conv.get("conv_id")
                if conv_id is None:
                    log.warning("meiqia: a conversation record without conv_id; its messages are skipped")
                    continue
                if conv_id in seen or (conv.get("conv_start_tm") or "") >= hi:
                    continue  # started after the window: nothing of it was sent in the window
                seen.add(conv_id)
                body = self.http.json("GET", f"{self.base}/v1/conversations/{conv_id}/messages")
                if body.get("code") == NOT_FOUND:
                    log.info(
                        "meiqia: conversation %s not found (deleted?); its messages are skipped", conv_id
                    )
                    continue
                items = (body.get("data") or {}).get("messages")
                if not isinstance(items, list):
                    raise FatalApiError(
                        f"meiqia: conversation {conv_id} messages answered without data.messages"
                    )
                # a message without a readable time is landed, and the loader quarantines it
                messages.extend(
                    m for m in items if not isinstance(m.get("created_on"), str) or lo <= m["created_on"] < hi
                )
            yield Page(messages, None, done=page.done)


class _EndedConversations:
    """The console's session report selects by START time and shows open sessions too; the
    conversations stream is records of conversations that ENDED in the window. So read the
    sessions a day further back and keep those whose end falls in the window (the shape keeps
    only closed sessions). Other streams pass through."""

    SPAN = pd.Timedelta(days=1)

    def __init__(self, scraper):
        self.scraper = scraper

    def __getattr__(self, name):
        return getattr(self.scraper, name)

    def fetch(self, stream: Stream, window: Window, cursor=None) -> Iterator[Page]:
        if stream.name != "conversations":
            yield from self.scraper.fetch(stream, window, cursor)
            return
        params = window_params(window)
        lo, hi = params["start_time"], params["end_time"]
        wide = Window(window.since - self.SPAN, window.until)
        for page in self.scraper.fetch(stream, wide, cursor):
            kept = [r for r in page.records if r.get("conv_end_tm") and lo <= r["conv_end_tm"] < hi]
            yield Page(kept, page.cursor_after, page.done, page.source)
