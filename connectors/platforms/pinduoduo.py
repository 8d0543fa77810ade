"""Pinduoduo 拼多多 connector: scraper-only (the platform has no public chat API).

Console: the 拼多多商家后台 (https://mms.pinduoduo.com) -> 多多客服 -> 客服数据 / 聊天记录 with
their export; its stand-in is the sandbox console `/console/pinduoduo` (docs/sandbox/console.md).
Every stream is read by `connectors.scrapers.console.ConsoleScraper`, so every batch is
`source=scrape`.

Streams (records in the console's canonical shape, `SHAPES["pinduoduo"]`; times are UTC ISO
strings parsed from the console's Asia/Shanghai local time, ids are text):
- sessions: conversations by start time (`session_id`; times, waits, status, rating as known now);
- messages: by send time (`message_id`, `sender` customer|agent|bot|system, `event` for system rows);
- ratings: by rating time (`rating_id`, `rating` 1-5);
- agents: snapshot of the accounts (`agent_account`, `online` online|offline, `snapshot_at`);
- agent_status: online intervals by start (`agent_account`, `started_at`, `ended_at` blank while open).

Sessions and agent-status intervals change after they start (close, rating, interval end) while
the console selects them by start time, so they are re-read with a longer look-back (12 h)
than messages and ratings (1 h), which never change once shown.

Settings (platforms.pinduoduo): `console_url`, `console_username`, `console_password`, optional
`console_mode` (auto | csv | html).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from connectors.core.runner import PlatformConnector
from connectors.core.streams import Page, Stream, Window
from connectors.scrapers.console import console_scraper_for

PLATFORM = "pinduoduo"
CONSOLE = "https://mms.pinduoduo.com (多多客服 客服数据 / 聊天记录 export); sandbox: docs/sandbox/console.md"


def _stream(name: str, key: tuple[str, ...], time_field: str, description: str, **kw) -> Stream:
    return Stream(
        platform=PLATFORM,
        name=name,
        primary_key=key,
        time_field=time_field,
        time_format="iso",
        cursor=kw.pop("cursor", "time_window"),
        doc=f"{CONSOLE} - report {kw.pop('report', name)}",
        freshness="hourly",
        retention=None,
        max_window=dt.timedelta(days=1),
        lookback=kw.pop("lookback", dt.timedelta(hours=1)),
        description=description,
        **kw,
    )


STREAMS = {
    "sessions": _stream(
        "sessions",
        ("session_id",),
        "started_at",
        "Conversations (会话记录) by start time, with hand-off, assignment, first response, close, "
        "wait and FRT seconds, status and rating as known at the read.",
        lookback=dt.timedelta(hours=12),
    ),
    "messages": _stream(
        "messages",
        ("message_id",),
        "sent_at",
        "Chat messages and system events (聊天记录) by send time.",
        required=("session_id", "sender"),
    ),
    "ratings": _stream("ratings", ("rating_id",), "rated_at", "Satisfaction ratings (满意度评价), 1-5."),
    "agents": _stream(
        "agents",
        ("agent_account", "snapshot_at"),
        "snapshot_at",
        "Agent accounts (客服列表) with their presence at the read (snapshot).",
        cursor="snapshot",
    ),
    "agent_status": _stream(
        "agent_status",
        ("agent_account", "started_at"),
        "started_at",
        "Online intervals of the agents (客服状态记录) by start; end blank while ongoing.",
        lookback=dt.timedelta(hours=12),
    ),
}


class Connector(PlatformConnector):
    name = PLATFORM
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self._scraper = console_scraper_for(PLATFORM, config)

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        yield from self._scraper.fetch(stream, window)

    def scraper(self):
        return self._scraper
