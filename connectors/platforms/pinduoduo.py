"""Pinduoduo 拼多多 connector: scraper-only (the platform has no public chat API).

Console: the 拼多多商家后台 (https://mms.pinduoduo.com) -> 多多客服 (https://mms.pinduoduo.com/
chat-merchant/) -> 客服数据 / 聊天记录 with their export; the 拼多多开放平台
(https://open.pinduoduo.com/application/document/api) offers orders and goods but no chat
records. Its stand-in is the sandbox console `/console/pinduoduo` (docs/sandbox/console.md).
Every stream is read by `connectors.scrapers.console.ConsoleScraper`, so every batch is
`source=scrape`. docs/connectors/pinduoduo.md.

The console has the same five reports as Douyin Feige's (the customer column is 买家ID), so
the streams, windows, look-backs, the dropping of re-read unchanged rows and the error
handling are those of `connectors.platforms.douyin` (`console_streams`, `ConsoleConnector`):
- sessions (`session_id`, by start, look-back 12 h), messages (`message_id`, by send time,
  1 h), ratings (`rating_id`, 1-5, 1 h), agents (snapshot), agent_status (by start, 12 h);
- times are UTC ISO strings from the console's Asia/Shanghai local time, whole seconds.

No API key to renew: a refused console login is a `ScraperAuthError` naming the account
(fix the password, or unlock the sub-account in 商家后台 -> 账户 -> 子账号管理).

Settings (platforms.pinduoduo): `console_url`, `console_username`, `console_password`,
optional `console_mode` (auto | csv | html), `console_read_timeout_s` (120). From an Airflow
connection `csw_pinduoduo`: host = the console URL, login / password = the console account.
"""

from __future__ import annotations

from connectors.platforms.douyin import ConsoleConnector, console_streams

PLATFORM = "pinduoduo"
CONSOLE = "https://mms.pinduoduo.com/chat-merchant/ (多多客服 客服数据 / 聊天记录 export); sandbox: docs/sandbox/console.md"

STREAMS = console_streams(PLATFORM, CONSOLE)


class Connector(ConsoleConnector):
    name = PLATFORM
    streams = STREAMS
