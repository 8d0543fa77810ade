"""WeCom 微信客服 connector.

Docs: https://developer.work.weixin.qq.com/document/path/94670 (kf/sync_msg),
https://developer.work.weixin.qq.com/document/path/91039 (gettoken),
https://developer.work.weixin.qq.com/document/path/94645 (kf/servicer/list),
https://developer.work.weixin.qq.com/document/path/90313 (error codes).

- Auth: `gettoken?corpid&corpsecret` -> access_token (7200 s), sent as `?access_token=`;
  errcode 42001/40014/41001 -> refresh once.
- messages: `kf/sync_msg` with the server cursor (`next_cursor`, stored exactly as
  received), `limit` 1000, until `has_more` = 0. origin 3 customer, 4 system event,
  5 servicer. Only 3 days are kept and API-sent (bot) messages are never returned; older
  history comes once from the console export (backfill). No conversation ids: the
  warehouse sessionises (DESIGN §7).
- servicers: `kf/servicer/list` snapshot (status 0 on shift, 1 off) = agent status;
  each record gets `polled_at` (unix s) because the API gives no time.
- ratings: the API has none (kf/sync_msg carries no 满意度); they are read from the admin
  console's 满意度评价 report (`connectors.scrapers.console`, canonical record shape: `rating_id`,
  `customer_id`, `agent_account`, `rated_at` ISO UTC, `rating` 1-5) by rated_at windows with
  a 1 h look-back, always `source=scrape`. No session id: dbt attaches a rating to the
  customer's latest sessionised conversation started at or before `rated_at`.
- Errors are HTTP 200 + errcode: 45009 rate limit and 45033 concurrency are retried;
  48002 (API forbidden) and 60011 (no privilege) mean unavailable -> console fallback.

Settings: `base_url`, `corpid`, `corpsecret`, `open_kfid`; for ratings, the console fallback
and backfill: `console_url`, `console_username`, `console_password`. docs/connectors/wecom.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import requests

from connectors.core.auth import AccessTokenAuth
from connectors.core.http import Classified, ConnectorError, FatalApiError, HttpClient, Verdict, parsed_json
from connectors.core.runner import PlatformConnector, drop_landed_unchanged
from connectors.core.streams import Page, Stream, Window
from connectors.platforms.douyin import console_streams

DOC = "https://developer.work.weixin.qq.com/document/path/94670"
CONSOLE = (
    "https://work.weixin.qq.com/wework_admin (应用管理 -> 微信客服 -> 数据统计 -> 满意度评价 export); "
    "sandbox: docs/sandbox/console.md"
)
TOKEN_ERRORS = {40014, 41001, 42001}
RETRY_ERRORS = {-1, 45009, 45033}
UNAVAILABLE_ERRORS = {48001, 48002, 60011, 60020}

STREAMS = {
    "messages": Stream(
        platform="wecom",
        name="messages",
        primary_key=("msgid",),
        time_field="send_time",
        time_format="unix_s",
        cursor="server_cursor",
        doc=DOC,
        freshness="real_time",
        retention=dt.timedelta(days=3),
        required=("origin",),
        description="Messages and session events of the customer-service accounts (kf/sync_msg).",
    ),
    "servicers": Stream(
        platform="wecom",
        name="servicers",
        primary_key=("userid", "polled_at"),
        time_field="polled_at",
        time_format="unix_s",
        cursor="snapshot",
        doc="https://developer.work.weixin.qq.com/document/path/94645",
        freshness="real_time",
        description="Agent (servicer) status snapshots: 0 on shift, 1 stopped.",
    ),
    # the console report as the console-only platforms read it, minus the session id
    # WeCom does not have
    "ratings": dataclasses.replace(
        console_streams("wecom", CONSOLE)["ratings"],
        required=("rating",),
        description="Satisfaction ratings (满意度评价), 1-5, from the admin console (the API has none).",
    ),
}


def classify(response: requests.Response) -> Classified:
    if response.status_code == 429 or response.status_code >= 500:
        return Classified(Verdict.RETRY, f"HTTP {response.status_code}")
    if response.status_code >= 400:
        return Classified(Verdict.FATAL, f"HTTP {response.status_code}")
    try:
        code = int(parsed_json(response).get("errcode", 0))
    except ValueError:
        return Classified(Verdict.RETRY, "body is not JSON")
    if code == 0:
        return Classified(Verdict.OK)
    reason = f"errcode {code}"
    if code in TOKEN_ERRORS:
        return Classified(Verdict.TOKEN_EXPIRED, reason)
    if code in RETRY_ERRORS:
        return Classified(Verdict.RETRY, reason, 1.0 if code == 45009 else None)
    if code in UNAVAILABLE_ERRORS:
        return Classified(Verdict.UNAVAILABLE, reason)
    return Classified(Verdict.FATAL, reason)


class Connector(PlatformConnector):
    name = "wecom"
    streams = STREAMS

    def __init__(self, config):
        super().__init__(config)
        self.base = config.base_url
        corpid, secret = config.require("corpid"), config.require("corpsecret")
        self.open_kfid = config.require("open_kfid")

        token_http = HttpClient("wecom", None, classify, self.policy)

        def fetch_token(_session: requests.Session) -> tuple[str, float]:
            try:
                body = token_http.json(
                    "GET", f"{self.base}/cgi-bin/gettoken", params={"corpid": corpid, "corpsecret": secret}
                )
            except FatalApiError as exc:
                raise ConnectorError(
                    f"wecom: gettoken refused ({exc}); check corpid and the customer-service app's "
                    "secret (corpsecret) in the connector config"
                ) from exc
            return body["access_token"], float(body.get("expires_in", 7200))

        self.http = HttpClient("wecom", AccessTokenAuth(fetch_token), classify, self.policy)
        self._scraper = None

    def fetch(self, stream: Stream, cursor, window: Window) -> Iterator[Page]:
        if stream.name == "messages":
            yield from self._messages(cursor)
        elif stream.name == "servicers":
            body = self.http.json(
                "GET", f"{self.base}/cgi-bin/kf/servicer/list", params={"open_kfid": self.open_kfid}
            )
            polled = int(window.until.timestamp())
            yield Page([{**r, "polled_at": polled} for r in body.get("servicer_list", [])], None, done=True)
        elif stream.name == "ratings":
            scraper = self.scraper()
            if scraper is None:
                raise ConnectorError(
                    "wecom.ratings: the WeCom API has no ratings; they are read from the admin console. "
                    "Set console_url, console_username and console_password under platforms.wecom "
                    "(docs/connectors/wecom.md)"
                )
            yield from drop_landed_unchanged("wecom", stream, window, scraper.fetch(stream, window))
        else:
            raise KeyError(stream.name)

    def scraper(self):
        """The admin console, when configured (`console_url`, `console_username`,
        `console_password`): the ratings source, the fallback when the API is off, and the
        backfill source for history older than the API's 3 days. One login per connector."""
        if self._scraper is None and self.config.get("console_url"):
            from connectors.scrapers import console_scraper_for

            self._scraper = console_scraper_for("wecom", self.config)
        return self._scraper

    def _messages(self, cursor) -> Iterator[Page]:
        while True:
            payload = {"limit": self.page_size(1000), "open_kfid": self.open_kfid}
            if cursor:
                payload["cursor"] = cursor
            body = self.http.json("POST", f"{self.base}/cgi-bin/kf/sync_msg", json=payload)
            cursor = body.get("next_cursor") or cursor
            done = not body.get("has_more")
            yield Page(body.get("msg_list", []), cursor, done=done)
            if done:
                return
