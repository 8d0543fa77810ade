"""Douyin Feige 抖店飞鸽 connector: scraper-only (the platform has no public chat API).

Console: the 抖店 merchant back office (https://fxg.jinritemai.com) -> 飞鸽客服 workbench
(https://im.jinritemai.com/pc_seller_v2/) -> 数据 / 历史会话 with its export; the 抖店开放平台
(https://op.jinritemai.com/docs) offers orders and products but no chat records. Its stand-in
is the sandbox console `/console/douyin` (docs/sandbox/console.md). Every stream is read by
`connectors.scrapers.console.ConsoleScraper` (login form + CSRF, CSV export, HTML paging as
the fallback, header check), so every batch is `source=scrape`. docs/connectors/douyin.md.

Streams (records in the console's canonical shape, `SHAPES["douyin"]`; times are UTC ISO
strings parsed from the console's Asia/Shanghai local time, whole seconds; ids are text):
- sessions: conversations by start time (`session_id`; hand-off, assignment, first response,
  close, wait and FRT seconds, status and rating as known at the read);
- messages: by send time (`message_id`, `sender` customer|agent|bot|system, `event` on system
  rows: handoff|assign|transfer|close|reopen);
- ratings: by rating time (`rating_id`, `rating` 1-5);
- agents: snapshot of the accounts (`agent_account`, `online` online|offline, `snapshot_at`);
- agent_status: online intervals by start (`agent_account`, `started_at`, `ended_at` blank
  while open).

Windows and look-back: the console selects rows by their first time (start, send, rating
time), so a window is re-read for late rows: messages and ratings 1 h (the report lags
behind the chat by minutes: 数据有延迟), sessions and agent-status intervals 12 h (they change
after they start: close, rating, interval end). A re-read row that is already landed
unchanged is not landed again (`drop_landed_unchanged`): a batch holds what is new or
changed, and the loader de-duplicates whatever slips through.

Errors: the console answers in HTML (429 操作过于频繁 + Retry-After, 502, 503 系统繁忙, 504),
all retried with backoff; an expired console session (a redirect to the login page) is
logged in again once. There is no API key to renew: a refused login is a `ScraperAuthError`
naming the account (change the password in the config, or unlock the sub-account in 抖店 ->
子账号管理); a changed report header is a `ScraperLayoutError` (docs/connectors/scrapers.md).

Settings (platforms.douyin): `console_url`, `console_username`, `console_password`, optional
`console_mode` (auto | csv | html), `console_read_timeout_s` (120). From an Airflow
connection `csw_douyin`: host = the console URL, login / password = the console account.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from connectors.core.config import PlatformConfig
from connectors.core.http import RetryPolicy
from connectors.core.runner import PlatformConnector, drop_landed_unchanged
from connectors.core.streams import Page, Stream, Window
from connectors.scrapers.console import ConsoleScraper, console_scraper_for

log = logging.getLogger("connectors.douyin")

PLATFORM = "douyin"
CONSOLE = "https://im.jinritemai.com/pc_seller_v2/ (飞鸽客服 数据 / 历史会话 export); sandbox: docs/sandbox/console.md"


def _stream(
    platform: str, console: str, name: str, key: tuple[str, ...], time_field: str, description: str, **kw
):
    return Stream(
        platform=platform,
        name=name,
        primary_key=key,
        time_field=time_field,
        time_format="iso",
        cursor=kw.pop("cursor", "time_window"),
        doc=f"{console} - report {name}",
        freshness="hourly",  # an RPA job reading a report, not a push API
        retention=None,  # the console keeps all history
        max_window=dt.timedelta(days=1),
        lookback=kw.pop("lookback", dt.timedelta(hours=1)),
        description=description,
        **kw,
    )


def console_streams(platform: str, console: str) -> dict[str, Stream]:
    """The five console reports as streams (the same for every console-only platform)."""
    return {
        "sessions": _stream(
            platform,
            console,
            "sessions",
            ("session_id",),
            "started_at",
            "Conversations (会话记录) by start time, with hand-off, assignment, first response, close, "
            "wait and FRT seconds, status and rating as known at the read.",
            lookback=dt.timedelta(hours=12),
            required=("started_at",),
        ),
        "messages": _stream(
            platform,
            console,
            "messages",
            ("message_id",),
            "sent_at",
            "Chat messages and system events (聊天记录) by send time.",
            required=("session_id", "sender"),
        ),
        "ratings": _stream(
            platform,
            console,
            "ratings",
            ("rating_id",),
            "rated_at",
            "Satisfaction ratings (满意度评价), 1-5.",
            required=("session_id", "rating"),
        ),
        "agents": _stream(
            platform,
            console,
            "agents",
            ("agent_account", "snapshot_at"),
            "snapshot_at",
            "Agent accounts (客服列表) with their presence at the read (snapshot).",
            cursor="snapshot",
        ),
        "agent_status": _stream(
            platform,
            console,
            "agent_status",
            ("agent_account", "started_at"),
            "started_at",
            "Online intervals of the agents (客服状态记录) by start; end blank while ongoing.",
            lookback=dt.timedelta(hours=12),
        ),
    }


STREAMS = console_streams(PLATFORM, CONSOLE)


def console_config(config: PlatformConfig) -> PlatformConfig:
    """The scraper's settings: `console_url` / `console_username` / `console_password`, taken
    from an Airflow connection's host / login / password when not given by name."""
    values = dict(config.values)
    for key, fallback in (
        ("console_url", "base_url"),
        ("console_username", "login"),
        ("console_password", "password"),
    ):
        if values.get(key) in (None, "") and values.get(fallback) not in (None, ""):
            values[key] = values[fallback]
    return PlatformConfig(config.platform, values, config.source)


class ConsoleConnector(PlatformConnector):
    """A platform whose only source is its admin console (Douyin Feige, Pinduoduo)."""

    def __init__(self, config):
        super().__init__(config)
        cfg = console_config(config)
        policy = RetryPolicy(
            attempts=self.policy.attempts,
            connect_timeout_s=self.policy.connect_timeout_s,
            read_timeout_s=float(cfg.get("console_read_timeout_s", 120)),  # an export takes a while
        )
        self._scraper: ConsoleScraper = console_scraper_for(self.name, cfg, policy=policy)

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        yield from drop_landed_unchanged(self.name, stream, window, self._scraper.fetch(stream, window))

    def scraper(self) -> ConsoleScraper:
        return self._scraper


class Connector(ConsoleConnector):
    name = PLATFORM
    streams = STREAMS
