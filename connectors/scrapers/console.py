"""The generic admin-console scraper (RPA): log in, read a report, check its header, map it.

Douyin Feige and Pinduoduo have no chat API, so their console is their only source; for the
seven API platforms the console is the fallback when the API is off or refused (DESIGN §6),
and WeCom's console export is how history older than the API's three days is backfilled.
Console behaviour (login, pager, CSV export, session expiry): `docs/sandbox/console.md`;
how this module reads it and how to adapt to a layout change: `docs/connectors/scrapers.md`.

Reading one report for a window `[since, until)`:

1. log in once per scraper: GET the login page, take the hidden `csrf_token` (and `next`) from
   `form#login-form` with lxml, POST `username`/`password` -> 303 + session cookie;
2. read the report either as the CSV export (`export/<report>.csv`, the whole window in one
   answer: the bulk path) or by paging the HTML table (`reports/<report>`, following
   `a[rel=next]`; `data-pages`/`data-total` are cross-checked) - mode `csv`, `html`, or `auto`
   (CSV, falling back to HTML paging when the export itself fails);
3. check the header row against `COLUMN_MAPS[platform][report]` before a single cell is read: a
   renamed, missing or extra column is a `ScraperLayoutError` naming platform, report, expected
   and found headers, and nothing of that page is returned (so nothing lands);
4. a login page where a report was expected (a 3xx to `.../login`, or a login form in the body)
   means the session expired: log in again ONCE and repeat the request; a login page again is a
   `ScraperAuthError`;
5. cells become typed canonical fields (local Asia/Shanghai times -> UTC, durations -> int,
   labels -> codes), then a per-platform `Shape` turns them into the stream's records, with the
   same primary key and time field as the platform's API stream declaration.

Requests go through `connectors.core.http.HttpClient` (timeouts, retries with backoff on 429 /
5xx honouring Retry-After). The password and the session cookie never reach a log line or an
error message (both are registered with the redaction filter as well).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import numpy as np
import pandas as pd
import requests
from lxml import etree
from lxml import html as lxml_html

from connectors.core.http import (
    ApiUnavailable,
    Classified,
    ConnectorError,
    FatalApiError,
    HttpClient,
    RetryPolicy,
    Verdict,
    redact,
    register_secret,
)
from connectors.core.streams import Page, Stream, Window

log = logging.getLogger("connectors.scrapers")

LOCAL_TZ = "Asia/Shanghai"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
CSV_CHUNK = 5000  # records per Page when reading an export
Mode = Literal["auto", "csv", "html"]
TimeFormat = Literal["iso", "unix_s", "unix_ms", "local"]


# -- errors --------------------------------------------------------------------------------
class ScraperError(ConnectorError):
    """The console could not be read; the message says what happened and what to do.

    Not an `ApiUnavailable`: the console *is* the fallback, there is nothing to fall back to."""


class ScraperAuthError(ScraperError):
    """Login refused, or a login page again right after logging in again."""


class ScraperLayoutError(ScraperError):
    """A report's header row differs from the documented columns (`COLUMN_MAPS`)."""

    def __init__(self, platform: str, report: str, expected: list[str], found: list[str], where: str = ""):
        self.platform, self.report = platform, report
        self.expected, self.found = list(expected), list(found)
        missing = [h for h in expected if h not in found]
        extra = [h for h in found if h not in expected]
        dupes = sorted({h for h in found if found.count(h) > 1})
        detail = "; ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {extra}" if extra else "",
                f"duplicated {dupes}" if dupes else "",
            )
            if part
        )
        super().__init__(
            f"{platform} console, report {report!r}{f' ({where})' if where else ''}: the header row does not "
            f"match the expected columns ({detail}). Expected {self.expected}; found {self.found}. The "
            f"console layout changed: nothing from this page was landed. Update "
            f"COLUMN_MAPS[{platform!r}][{report!r}] in connectors/scrapers/console.py "
            "(docs/connectors/scrapers.md, 'Console layout changes') and re-run."
        )


# -- what the consoles show: header -> canonical field ---------------------------------------
_ZH = {
    "sessions": {
        "会话ID": "session_id",
        "{customer}": "customer_id",
        "客服": "agent_account",
        "开始时间": "started_at",
        "转人工时间": "handoff_at",
        "接入时间": "assigned_at",
        "首次响应时间": "first_response_at",
        "结束时间": "closed_at",
        "排队时长(秒)": "wait_s",
        "首次响应时长(秒)": "frt_s",
        "状态": "status",
        "满意度": "rating",
    },
    "messages": {
        "会话ID": "session_id",
        "消息ID": "message_id",
        "发送时间": "sent_at",
        "发送方": "sender",
        "客服": "agent_account",
        "{customer}": "customer_id",
        "消息内容": "content",
        "事件": "event",
    },
    "ratings": {
        "评价ID": "rating_id",
        "会话ID": "session_id",
        "{customer}": "customer_id",
        "客服": "agent_account",
        "评价时间": "rated_at",
        "满意度": "rating",
        "推荐度": "nps",
    },
    "agents": {"客服账号": "agent_account", "客服昵称": "nickname", "分组": "team", "当前状态": "online"},
    "agent_status": {
        "客服": "agent_account",
        "状态": "status",
        "开始时间": "started_at",
        "结束时间": "ended_at",
        "时长(秒)": "duration_s",
    },
}
_EN = {
    "sessions": {
        "Ticket ID": "session_id",
        "Requester": "customer_id",
        "Assignee": "agent_account",
        "Created": "started_at",
        "Bot handoff": "handoff_at",
        "Assigned": "assigned_at",
        "First reply": "first_response_at",
        "Solved": "closed_at",
        "Wait (s)": "wait_s",
        "First reply time (s)": "frt_s",
        "Status": "status",
        "Satisfaction": "rating",
    },
    "messages": {
        "Ticket ID": "session_id",
        "Comment ID": "message_id",
        "Created": "sent_at",
        "Author role": "sender",
        "Assignee": "agent_account",
        "Requester": "customer_id",
        "Body": "content",
        "Event": "event",
    },
    "ratings": {
        "Rating ID": "rating_id",
        "Ticket ID": "session_id",
        "Requester": "customer_id",
        "Assignee": "agent_account",
        "Rated": "rated_at",
        "Satisfaction": "rating",
        "NPS": "nps",
    },
    "agents": {"Agent ID": "agent_account", "Name": "nickname", "Group": "team", "Availability": "online"},
    "agent_status": {
        "Assignee": "agent_account",
        "Status": "status",
        "Start": "started_at",
        "End": "ended_at",
        "Duration (s)": "duration_s",
    },
}


@dataclass(frozen=True)
class ConsoleProfile:
    """How one platform's console differs from the common layout."""

    lang: Literal["zh", "en"] = "zh"
    customer_label: str = "客户"  # the customer column's header
    session_label: str = "会话ID"  # Meiqia: 对话ID
    has_sessions: bool = True  # WeCom, WeChat OA: no session id anywhere
    has_ratings: bool = True  # WeChat OA: none
    asks_nps: bool = False  # Sobot, Zendesk ratings carry NPS
    rating_scale: Literal["5", "3", "2"] = "5"


PROFILES: dict[str, ConsoleProfile] = {
    "taobao": ConsoleProfile(customer_label="买家"),
    "jd": ConsoleProfile(customer_label="顾客账号"),
    "pinduoduo": ConsoleProfile(customer_label="买家ID"),
    "douyin": ConsoleProfile(customer_label="用户ID"),
    "wecom": ConsoleProfile(customer_label="客户", has_sessions=False),
    "wechat_oa": ConsoleProfile(customer_label="粉丝OpenID", has_sessions=False, has_ratings=False),
    "meiqia": ConsoleProfile(customer_label="访客ID", session_label="对话ID", rating_scale="3"),
    "sobot": ConsoleProfile(customer_label="客户ID", asks_nps=True),
    "zendesk": ConsoleProfile(lang="en", customer_label="Requester", asks_nps=True, rating_scale="2"),
}


def _column_map(profile: ConsoleProfile, report: str) -> dict[str, str]:
    base = (_EN if profile.lang == "en" else _ZH)[report]
    out = {}
    for header, name in base.items():
        if name == "session_id" and not profile.has_sessions:
            continue
        if name == "nps" and not profile.asks_nps:
            continue
        if header == "{customer}":
            header = profile.customer_label
        elif name == "session_id" and profile.lang == "zh":
            header = profile.session_label
        out[header] = name
    return out


def _reports(profile: ConsoleProfile) -> tuple[str, ...]:
    out = ["sessions"] if profile.has_sessions else []
    out.append("messages")
    if profile.has_ratings:
        out.append("ratings")
    return (*out, "agents", "agent_status")


COLUMN_MAPS: dict[str, dict[str, dict[str, str]]] = {
    platform: {report: _column_map(profile, report) for report in _reports(profile)}
    for platform, profile in PROFILES.items()
}
"""`COLUMN_MAPS[platform][report] = {console header: canonical field}`, in the console's column
order. The header check compares a report's header row with these keys; a console layout change
is fixed here (and nowhere else)."""

# value labels -> codes, per vocabulary
_VOCAB = {
    "sender": {
        "客户": "customer",
        "客服": "agent",
        "机器人": "bot",
        "系统": "system",
        "Customer": "customer",
        "Agent": "agent",
        "Bot": "bot",
        "System": "system",
    },
    "event": {
        "转人工": "handoff",
        "接入": "assign",
        "转接": "transfer",
        "结束会话": "close",
        "重新打开": "reopen",
        "Bot handoff": "handoff",
        "Assigned": "assign",
        "Transferred": "transfer",
        "Solved": "close",
        "Reopened": "reopen",
    },
    "session_status": {
        "进行中": "open",
        "已结束": "closed",
        "已重开": "reopened",
        "Open": "open",
        "Solved": "closed",
        "Reopened": "reopened",
    },
    "presence": {"在线": "online", "离线": "offline", "Online": "online", "Offline": "offline"},
    "rating3": {"好评": "good", "中评": "neutral", "差评": "bad"},
    "rating2": {"Good": "good", "Bad": "bad"},
}
TIME_FIELDS = frozenset(
    {
        "started_at",
        "handoff_at",
        "assigned_at",
        "first_response_at",
        "closed_at",
        "sent_at",
        "rated_at",
        "ended_at",
        "snapshot_at",
    }
)
INT_FIELDS = frozenset({"wait_s", "frt_s", "duration_s", "nps"})


def _vocabulary(platform: str, report: str, name: str) -> str | None:
    if name in ("sender", "event"):
        return name
    if name == "status":
        return "session_status" if report == "sessions" else "presence"
    if name == "online":
        return "presence"
    if name == "rating":
        scale = PROFILES[platform].rating_scale
        return None if scale == "5" else f"rating{scale}"
    return None


# -- record shapes: canonical fields -> a stream's records ---------------------------------------
@dataclass(frozen=True)
class ShapeContext:
    platform: str
    config: Any
    window: Window


@dataclass(frozen=True)
class Shape:
    """How one console report becomes one stream's records.

    - `primary_key`, `time_field`, `time_format`: must equal the stream declaration (checked
      when fetching), so the loader keys scraped rows exactly like API rows;
    - `rename`: canonical field -> record field (fields not named keep their canonical name);
    - `values`: record field -> {canonical value: record value} (enum codes of the API);
    - `time_formats`: record field -> format for time fields other than `time_format`;
    - `drop`: record fields to leave out; `prefix`: record field -> text put before the id;
    - `snapshot`: record field set to the window end (reports without a time: agents);
    - `build`: a last step over the records (nesting as the API nests, derived fields).
    """

    report: str
    primary_key: tuple[str, ...]
    time_field: str
    time_format: TimeFormat = "iso"
    rename: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)
    time_formats: Mapping[str, TimeFormat] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    prefix: Mapping[str, str] = field(default_factory=dict)
    snapshot: str | None = None
    build: Callable[[list[dict], ShapeContext], list[dict]] | None = None
    note: str = ""


def canonical_shape(report: str, time_format: TimeFormat = "iso") -> Shape:
    """The console's own record shape (Douyin, Pinduoduo, and reports no API serves)."""
    keys = {
        "sessions": (("session_id",), "started_at"),
        "messages": (("message_id",), "sent_at"),
        "ratings": (("rating_id",), "rated_at"),
        "agents": (("agent_account", "snapshot_at"), "snapshot_at"),
        "agent_status": (("agent_account", "started_at"), "started_at"),
    }
    pk, tf = keys[report]
    return Shape(report, pk, tf, time_format, snapshot="snapshot_at" if report == "agents" else None)


# WeCom (kf/sync_msg): msgid, send_time (unix s), origin 3/4/5, text.content or event.*
_WECOM_ORIGIN = {"customer": 3, "system": 4, "agent": 5}  # bot replies are never shown
_WECOM_CHANGE_TYPE = {"handoff": 0, "assign": 1, "transfer": 2, "close": 3, "reopen": 4}


def _wecom_messages(records: list[dict], ctx: ShapeContext) -> list[dict]:
    kfid = ctx.config.get("open_kfid") if ctx.config is not None else None
    out = []
    for r in records:
        customer, agent = r.pop("customer_id"), r.pop("agent_account")
        content, event = r.pop("content"), r.pop("event")
        rec = {"msgid": r["msgid"], "send_time": r["send_time"], "origin": r["origin"]}
        if r["origin"] == 4:
            ev: dict[str, Any] = {"event_type": "session_status_change", "external_userid": customer}
            if kfid:
                ev["open_kfid"] = kfid
            ev["change_type"] = _WECOM_CHANGE_TYPE.get(event, event)
            if agent and event in ("assign", "transfer", "reopen"):
                ev["new_servicer_userid"] = agent
            elif agent and event == "close":
                ev["old_servicer_userid"] = agent
            rec.update(msgtype="event", event=ev)
        else:
            if kfid:
                rec["open_kfid"] = kfid
            rec["external_userid"] = customer
            if r["origin"] == 5:
                rec["servicer_userid"] = agent or ""
            rec.update(msgtype="text", text={"content": content or ""})
        out.append(rec)
    return out


# Meiqia and Sobot: the sandbox console shows the simulation's ids (会话ID / 对话ID = conversation,
# 消息ID = message), which the sandbox APIs present in their own form: Meiqia conv_id =
# 1240000000 + id and message id = 5500000000 + id (sandbox/server/platforms/meiqia.py), Sobot
# cid = 32 hex digits derived from the id (`sobot_cid`) and msgid = m_<id>. A real console shows
# the platform's own ids, which pass through unchanged (a Meiqia id >= the base, a Sobot cid that
# is not a small decimal number).
_MEIQIA_CONV_BASE = 1240000000
_MEIQIA_MSG_BASE = 5500000000
_MEIQIA_EVENT_TEXT = {
    "handoff": "访客请求转人工",
    "assign": "客服接入对话",
    "transfer": "对话转接给客服",
    "close": "对话已结束",
    "reopen": "对话重新开启",
}
_SOBOT_EVENT_TEXT = {
    "handoff": "转人工",
    "assign": "客服接入会话",
    "transfer": "会话转接给客服",
    "close": "会话结束",
    "reopen": "会话重新开启",
}
_SOBOT_SENDER = {0: None, 1: ("robot_1", "智能机器人"), 2: None, 3: ("system", "系统消息")}
_U64 = (1 << 64) - 1


def _as_int(value: Any) -> Any:
    """A console id cell as the API's int (text that is not a number is kept as it is)."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return value


def _meiqia_id(value: Any, base: int) -> Any:
    number = _as_int(value)
    return number + base if isinstance(number, int) and number < base else number


def _sobot_cid(value: Any) -> Any:
    """The sandbox console's conversation id -> the API's cid (`sobot_cid`); a real cid passes."""
    text = "" if value is None else str(value)
    if not text.isdigit() or len(text) > 18:
        return value
    n = int(text)
    return f"{(n * 0x9E3779B97F4A7C15) & _U64:016x}{(n * 0xC2B2AE3D27D4EB4F) & _U64:016x}"


def _local_ms(ms: Any) -> Any:
    if not isinstance(ms, int):
        return ms
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        .astimezone(dt.timezone(dt.timedelta(hours=8)))
        .strftime(LOCAL_FORMAT)
    )


def _meiqia_conversations(records: list[dict], ctx: ShapeContext) -> list[dict]:
    out = []
    for r in records:
        if r.get("status") != "closed":  # the API's records are of ended conversations only
            continue
        out.append(
            {
                "conv_id": _meiqia_id(r["conv_id"], _MEIQIA_CONV_BASE),
                "track_id": r["track_id"],
                "agent_id": _as_int(r["agent_id"]),
                "conv_start_tm": r["conv_start_tm"],
                "conv_end_tm": r["conv_end_tm"],
                "conv_first_resp_wait_in_secs": r["conv_first_resp_wait_in_secs"],
                "comment_level": r["comment_level"],
            }
        )
    return out


def _meiqia_messages(records: list[dict], ctx: ShapeContext) -> list[dict]:
    out = []
    for r in records:
        system = r["from"] == "system"
        out.append(
            {
                "id": _meiqia_id(r["id"], _MEIQIA_MSG_BASE),
                "conv_id": _meiqia_id(r["conv_id"], _MEIQIA_CONV_BASE),
                "from": r["from"],
                "type": "event" if system else "message",
                "content_type": "text",
                "content": _MEIQIA_EVENT_TEXT.get(r["event"], r["event"] or "")
                if system
                else (r["content"] or ""),
                "agent_id": _as_int(r["agent_id"]),
                "created_on": r["created_on"],
            }
        )
    return out


def _meiqia_agents(records: list[dict], ctx: ShapeContext) -> list[dict]:
    """Agents and agent-status rows: the account is Meiqia's numeric agent id."""
    return [{**r, "agent_id": _as_int(r["agent_id"])} for r in records]


def _sobot_sessions(records: list[dict], ctx: ShapeContext) -> list[dict]:
    out = []
    for r in records:
        closed = r.get("status") == "closed"  # a reopened session shows end_time 0 until it closes again
        end = r["end_time"] if closed else None
        out.append(
            {
                "cid": _sobot_cid(r["cid"]),
                "partnerid": r["partnerid"],
                "staff_id": r["staff_id"] or "",
                "transfer_flag": int(r.get("handoff_at") is not None),
                "start_time": r["start_time"],
                "start_time_str": _local_ms(r["start_time"]),
                "end_time": end if end is not None else 0,
                "end_time_str": _local_ms(end) if end is not None else "",
                "first_response_seconds": r["first_response_seconds"] or 0,
            }
        )
    return out


def _sobot_messages(records: list[dict], ctx: ShapeContext) -> list[dict]:
    out = []
    for r in records:
        kind = r["sender_type"]
        fixed = _SOBOT_SENDER.get(kind)
        if fixed is None:  # the customer (partnerid) or the agent (staff id; the name is not shown)
            who = r["customer_id"] if kind == 0 else r["agent_account"]
            fixed = (who or "", "访客" if kind == 0 else (r["agent_account"] or ""))
        out.append(
            {
                "cid": _sobot_cid(r["cid"]),
                "msgid": r["msgid"],
                "sender_type": kind,
                "sender": fixed[0],
                "sender_name": fixed[1],
                "msg_type": 0,
                "msg": _SOBOT_EVENT_TEXT.get(r["event"], r["event"] or "") if kind == 3 else (r["msg"] or ""),
                "t": r["t"],
                "ts": _local_ms(r["t"]),
            }
        )
    return out


def _sobot_ratings(records: list[dict], ctx: ShapeContext) -> list[dict]:
    return [
        {
            "cid": _sobot_cid(r["cid"]),
            "partnerid": r["partnerid"],
            "staff_id": r["staff_id"] or "",
            "type": 1 if r["staff_id"] else 0,
            "score": r["score"],
            "t": r["t"],
            "ts": _local_ms(r["t"]),
            "nps": r["nps"] if r["nps"] is not None else -1,
        }
        for r in records
    ]


def _sobot_status(records: list[dict], ctx: ShapeContext) -> list[dict]:
    out = []
    for r in records:
        end = r["end_time"]
        out.append(
            {
                "staff_id": r["staff_id"],
                "status": r["status"],
                "start_time": r["start_time"],
                "start_time_str": _local_ms(r["start_time"]),
                "end_time": end if end is not None else 0,
                "end_time_str": _local_ms(end) if end is not None else "",
            }
        )
    return out


def _taobao_main_account(records: list[dict], ctx: ShapeContext, fields: tuple[str, ...]) -> str:
    """The shop's main account `cntaobao<shop>`: `seller_nick` from the config, else the part
    before ':' of a sub-account (`cntaobao<shop>:<sub>`) seen in the records."""
    nick = ctx.config.get("seller_nick") if ctx.config is not None else None
    if nick:
        return f"cntaobao{nick}"
    for r in records:
        for name in fields:
            value = r.get(name)
            if isinstance(value, str) and ":" in value:
                return value.split(":", 1)[0]
    return "cntaobao"


def _as_int(value):
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _taobao_messages(records: list[dict], ctx: ShapeContext) -> list[dict]:
    """Console rows -> chatlog msgs keyed like the API (to_id, time, direction, content).

    chatlog has no system rows (dropped here); `from_id` is the account the API files a message
    under: the bot speaks as the main account, a buyer's message belongs to the agent serving the
    buyer at that moment (the last agent named in the session so far), else the main account."""
    main = _taobao_main_account(records, ctx, ("from_id",))
    owner: dict = {}
    out = []
    for r in records:
        session = r.get("session_id")
        agent = r.get("from_id")
        if agent:
            owner[session] = agent
        r.pop("event", None)
        if r["direction"] == "system":
            continue
        if r["direction"] == 1:
            r["from_id"] = owner.get(session, main)
        elif not agent:
            r["from_id"] = main
        r["content"] = r.get("content") or ""
        r["session_id"] = _as_int(session)
        out.append(r)
    return out


def _taobao_ratings(records: list[dict], ctx: ShapeContext) -> list[dict]:
    """Console ratings -> evals eval_detail; a rating of a bot-only chat is the main account's."""
    main = _taobao_main_account(records, ctx, ("eval_sender",))
    for r in records:
        r["eval_sender"] = r.get("eval_sender") or main
        r["session_id"] = _as_int(r.get("session_id"))
    return records


def _jd_messages(records: list[dict], ctx: ShapeContext) -> list[dict]:
    """Console rows -> chatLogList items: no system rows (the API serves none), `msg_key` as the
    connector computes it (sid, second, side, content), so a scraped message keys like the API's."""
    from connectors.platforms.jd import message_key

    out = []
    for r in records:
        r.pop("event", None)
        if r["waiterSend"] == "system":
            continue
        r["content"] = r.get("content") or ""
        r["msg_key"] = message_key(r.get("sid"), r.get("time"), r["waiterSend"], r["content"])
        out.append(r)
    return out


_RATING_5_TO_TOP_EVAL_CODE = {5: 0, 4: 1, 3: 2, 2: 3, 1: 4}  # Taobao eval_code 0 非常满意 .. 4 非常不满意

SHAPES: dict[str, dict[str, Shape]] = {
    "douyin": {r: canonical_shape(r) for r in COLUMN_MAPS["douyin"]},
    "pinduoduo": {r: canonical_shape(r) for r in COLUMN_MAPS["pinduoduo"]},
    "wecom": {
        "messages": Shape(
            "messages",
            ("msgid",),
            "send_time",
            "unix_s",
            rename={"message_id": "msgid", "sent_at": "send_time", "sender": "origin"},
            values={"origin": _WECOM_ORIGIN},
            prefix={"msgid": "from_msgid_"},
            build=_wecom_messages,
            note="kf/sync_msg records: msgid from_msgid_<消息ID>, send_time, origin, text / event",
        ),
        "agents": Shape(
            "agents",
            ("userid", "polled_at"),
            "polled_at",
            "unix_s",
            rename={"agent_account": "userid", "online": "status", "snapshot_at": "polled_at"},
            values={"status": {"online": 0, "offline": 1}},
            drop=("nickname", "team"),
            snapshot="polled_at",
            note="kf/servicer/list records: userid, status 0 接待中 / 1 停止接待, polled_at",
        ),
        "ratings": canonical_shape("ratings"),
        "agent_status": canonical_shape("agent_status"),
    },
    "wechat_oa": {
        "messages": Shape(
            "messages",
            ("message_id",),
            "time",
            "unix_s",
            rename={"customer_id": "openid", "agent_account": "worker", "sent_at": "time", "content": "text"},
            build=lambda recs, ctx: [
                {
                    **r,
                    "opercode": _WECHAT_OPERCODE.get(r["event"] or r["sender"]),
                    "worker": r["worker"] or "",
                    "text": r["text"] or "",
                }
                for r in recs
            ],
            note="getmsglist records (openid, opercode, text, time, worker) + the console's message_id",
        ),
        "agents": canonical_shape("agents"),
        "agent_status": canonical_shape("agent_status"),
    },
    "taobao": {
        "messages": Shape(
            "messages",
            ("to_id", "time", "direction", "content"),
            "time",
            "local",
            rename={
                "sender": "direction",
                "sent_at": "time",
                "agent_account": "from_id",
                "customer_id": "to_id",
            },
            values={"direction": {"customer": 1, "agent": 0, "bot": 0, "system": "system"}},
            prefix={"from_id": "cntaobao", "to_id": "cntaobao"},
            build=_taobao_messages,
            note="chatlog msgs (direction, time, content, session_id) + from_id/to_id as the connector adds "
            "them; the console's message_id kept",
        ),
        "ratings": Shape(
            "ratings",
            ("eval_recer", "eval_time"),
            "eval_time",
            "local",
            rename={
                "rating": "eval_code",
                "rated_at": "eval_time",
                "agent_account": "eval_sender",
                "customer_id": "eval_recer",
            },
            values={"eval_code": _RATING_5_TO_TOP_EVAL_CODE},
            prefix={"eval_sender": "cntaobao", "eval_recer": "cntaobao"},
            build=_taobao_ratings,
            note="evals eval_detail (eval_code = 5 - csat, eval_time, eval_sender, eval_recer, session_id)",
        ),
        "sessions": canonical_shape("sessions", "local"),
        "agents": canonical_shape("agents"),
        "agent_status": canonical_shape("agent_status", "local"),
    },
    "jd": {
        "messages": Shape(
            "messages",
            ("msg_key",),
            "time",
            "unix_ms",
            rename={
                "session_id": "sid",
                "customer_id": "customer",
                "agent_account": "waiter",
                "sent_at": "time",
                "sender": "waiterSend",
            },
            values={"waiterSend": {"customer": False, "agent": True, "bot": True, "system": "system"}},
            build=_jd_messages,
            note="chatLogList items (sid, customer, waiter, content, time ms, waiterSend) + msg_key; the "
            "console shows seconds, the robot's waiter is left empty",
        ),
        "sessions": Shape(
            "sessions",
            ("sid",),
            "startTime",
            "unix_ms",
            rename={
                "session_id": "sid",
                "customer_id": "customer",
                "agent_account": "waiter",
                "started_at": "startTime",
                "closed_at": "endTime",
            },
            note="chatSessionList items (sid, customer, waiter, startTime, endTime ms) + console extras",
        ),
        "ratings": Shape(
            "ratings",
            ("sid",),
            "time",
            "unix_ms",
            rename={
                "session_id": "sid",
                "customer_id": "customer",
                "agent_account": "waiter",
                "rating": "score",
                "rated_at": "time",
            },
            note="evaluationList items (sid, customer, waiter, score 1-5, time ms)",
        ),
        "agents": canonical_shape("agents"),
        "agent_status": canonical_shape("agent_status", "unix_ms"),
    },
    "meiqia": {
        "sessions": Shape(
            "sessions",
            ("conv_id",),
            "conv_end_tm",
            "local",
            rename={
                "session_id": "conv_id",
                "customer_id": "track_id",
                "agent_account": "agent_id",
                "started_at": "conv_start_tm",
                "closed_at": "conv_end_tm",
                "frt_s": "conv_first_resp_wait_in_secs",
                "rating": "comment_level",
            },
            values={"comment_level": {"good": 2, "neutral": 1, "bad": 0}},
            build=_meiqia_conversations,
            note="GET /v1/conversations records of ENDED conversations (conv_id, track_id, agent_id, "
            "conv_start_tm, conv_end_tm, conv_first_resp_wait_in_secs, comment_level 2/1/0); open "
            "sessions are left out",
        ),
        "messages": Shape(
            "messages",
            ("id",),
            "created_on",
            "local",
            rename={
                "message_id": "id",
                "session_id": "conv_id",
                "sender": "from",
                "agent_account": "agent_id",
                "sent_at": "created_on",
            },
            values={"from": {"customer": "client", "agent": "agent", "bot": "robot", "system": "system"}},
            build=_meiqia_messages,
            note="GET /v1/messages records (id, conv_id, from, type, content_type, content, agent_id, "
            "created_on); event texts without the agent's nickname (the console shows the account)",
        ),
        "ratings": canonical_shape("ratings", "local"),
        "agents": Shape(
            "agents",
            ("agent_id", "polled_at"),
            "polled_at",
            "unix_s",
            rename={
                "agent_account": "agent_id",
                "team": "group_name",
                "online": "status",
                "snapshot_at": "polled_at",
            },
            snapshot="polled_at",
            build=_meiqia_agents,
            note="GET /v1/agents records (agent_id, nickname, group_name, status online|offline) + polled_at",
        ),
        "agent_status": Shape(
            "agent_status",
            ("agent_id", "start_tm"),
            "start_tm",
            "local",
            rename={"agent_account": "agent_id", "started_at": "start_tm", "ended_at": "end_tm"},
            drop=("duration_s",),
            build=_meiqia_agents,
            note="GET /v1/agents/status_logs records (agent_id, status, start_tm, end_tm null while ongoing)",
        ),
    },
    "sobot": {
        "sessions": Shape(
            "sessions",
            ("cid",),
            "start_time",
            "unix_ms",
            rename={
                "session_id": "cid",
                "customer_id": "partnerid",
                "agent_account": "staff_id",
                "started_at": "start_time",
                "closed_at": "end_time",
                "frt_s": "first_response_seconds",
            },
            build=_sobot_sessions,
            note="get_chat_list items (cid, partnerid, staff_id, transfer_flag, start_time / end_time ms "
            "with *_str, first_response_seconds); end_time 0 while open, times to the second",
        ),
        "messages": Shape(
            "messages",
            ("msgid",),
            "t",
            "unix_ms",
            rename={
                "session_id": "cid",
                "message_id": "msgid",
                "sender": "sender_type",
                "content": "msg",
                "sent_at": "t",
            },
            values={"sender_type": {"customer": 0, "bot": 1, "agent": 2, "system": 3}},
            prefix={"msgid": "m_"},
            build=_sobot_messages,
            note="get_chat_detail items (cid, msgid m_<消息ID>, sender_type 0 user 1 bot 2 agent 3 system, "
            "sender, sender_name, msg_type, msg, t ms, ts local); t to the second, agent names unknown",
        ),
        "ratings": Shape(
            "ratings",
            ("cid", "type"),
            "t",
            "unix_ms",
            rename={
                "session_id": "cid",
                "customer_id": "partnerid",
                "agent_account": "staff_id",
                "rating": "score",
                "rated_at": "t",
            },
            drop=("rating_id",),
            build=_sobot_ratings,
            note="get_satisfaction items (cid, partnerid, staff_id, type 1 agent / 0 bot, score 1-5, t ms, "
            "ts, nps -1 when not asked)",
        ),
        "agents": Shape(
            "agents",
            ("staff_id", "polled_at"),
            "polled_at",
            "unix_s",
            rename={
                "agent_account": "staff_id",
                "nickname": "staff_name",
                "team": "group_name",
                "online": "status",
                "snapshot_at": "polled_at",
            },
            values={"status": {"online": 1, "offline": 0}},
            snapshot="polled_at",
            build=lambda recs, ctx: [{**r, "staff_nick": r["staff_name"]} for r in recs],
            note="get_staff_list items (staff_id, staff_name, staff_nick, group_name, status 1/0) + polled_at",
        ),
        "agent_status": Shape(
            "agent_status",
            ("staff_id", "start_time"),
            "start_time",
            "unix_ms",
            rename={"agent_account": "staff_id", "started_at": "start_time", "ended_at": "end_time"},
            values={"status": {"online": 1, "busy": 2, "away": 3, "offline": 0}},
            drop=("duration_s",),
            build=_sobot_status,
            note="get_staff_status_log items (staff_id, status 1 online, start_time / end_time ms with "
            "*_str, end_time 0 while ongoing)",
        ),
    },
    "zendesk": {
        "sessions": Shape(
            "sessions",
            ("id",),
            "created_at",
            "iso",
            rename={
                "session_id": "id",
                "customer_id": "requester_id",
                "agent_account": "assignee_id",
                "started_at": "created_at",
                "closed_at": "solved_at",
            },
            note="tickets by id; the console has no updated_at, so the API's incremental time field is absent",
        ),
        "messages": Shape(
            "messages",
            ("id",),
            "created_at",
            "iso",
            rename={
                "message_id": "id",
                "session_id": "ticket_id",
                "content": "body",
                "sent_at": "created_at",
            },
        ),
        "ratings": Shape(
            "ratings",
            ("id",),
            "created_at",
            "iso",
            rename={
                "rating_id": "id",
                "session_id": "ticket_id",
                "customer_id": "requester_id",
                "agent_account": "assignee_id",
                "rating": "score",
                "rated_at": "created_at",
            },
        ),
        "agents": canonical_shape("agents"),
        "agent_status": canonical_shape("agent_status"),
    },
}
"""`SHAPES[platform][report]`: the record shape the scraper yields for that report."""

_WECHAT_OPERCODE = {
    "customer": 2003,
    "agent": 2002,
    "handoff": 1000,
    "assign": 1001,
    "transfer": 1003,
    "close": 1004,
    "reopen": 1001,
}

# stream name -> console report, per platform (what `console_scraper_for` wires)
DEFAULT_STREAMS: dict[str, dict[str, str]] = {
    "douyin": {r: r for r in COLUMN_MAPS["douyin"]},
    "pinduoduo": {r: r for r in COLUMN_MAPS["pinduoduo"]},
    "wecom": {
        "messages": "messages",
        "servicers": "agents",
        "ratings": "ratings",
        "agent_status": "agent_status",
    },
    **{
        p: {r: r for r in COLUMN_MAPS[p]} for p in ("taobao", "jd", "wechat_oa", "meiqia", "sobot", "zendesk")
    },
}


# -- cell conversion (column-wise) ---------------------------------------------------------------
def _blank(values: pd.Series) -> np.ndarray:
    return (values == "").to_numpy()


def _to_utc(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """'YYYY-MM-DD HH:MM:SS' Asia/Shanghai -> UTC timestamps; returns (times, unparseable mask)."""
    parsed = pd.to_datetime(values.where(values != ""), format=LOCAL_FORMAT, errors="coerce")
    bad = parsed.isna().to_numpy() & ~_blank(values)
    return parsed.dt.tz_localize(LOCAL_TZ).dt.tz_convert("UTC"), bad


def _to_int(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    parsed = pd.to_numeric(values.where(values != ""), errors="coerce")
    whole = parsed.notna() & (parsed == parsed.round())
    bad = (~whole).to_numpy() & ~_blank(values)
    return parsed.where(whole).astype("Int64"), bad


def _format_time(times: pd.Series, fmt: TimeFormat) -> list:
    missing = times.isna().to_numpy()
    if fmt == "iso":
        out = times.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
    elif fmt == "local":
        out = times.dt.tz_convert(LOCAL_TZ).dt.strftime(LOCAL_FORMAT).to_numpy(dtype=object)
    else:
        ns = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype("int64")
        out = (ns // (10**9 if fmt == "unix_s" else 10**6)).astype(object)
    out[missing] = None
    return out.tolist()


def _objects(values: pd.Series) -> list:
    """A column as Python objects with None for missing (ints stay ints)."""
    arr = values.astype(object).to_numpy(copy=True)
    arr[pd.isna(values).to_numpy()] = None
    return arr.tolist()


@dataclass
class Canonical:
    """A report's rows as typed canonical columns (in console order), plus what did not parse."""

    columns: dict[str, pd.Series]
    raw: dict[str, pd.Series]
    bad: dict[str, np.ndarray]
    rows: int


def to_canonical(platform: str, report: str, header: list[str], rows: list[list[str]]) -> Canonical:
    """Cells of a checked report -> typed canonical columns. Unparseable cells (a time or a
    number in an unexpected format, an unknown label) keep their raw text, so the record
    still lands and the loader quarantines it when it is the key or time field; they are
    logged, never dropped."""
    mapping = COLUMN_MAPS[platform][report]
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    columns, raw, bad = {}, {}, {}
    for head, name in mapping.items():
        values = frame[head].astype(str)
        raw[name] = values
        vocab = _vocabulary(platform, report, name)
        if name in TIME_FIELDS:
            columns[name], bad[name] = _to_utc(values)
        elif name in INT_FIELDS or (name == "rating" and vocab is None):
            columns[name], bad[name] = _to_int(values)
        elif vocab is not None:
            mapped = values.map(_VOCAB[vocab])
            bad[name] = (mapped.isna() & (values != "")).to_numpy()
            columns[name] = mapped
        else:
            columns[name] = values.where(values != "")
            bad[name] = np.zeros(len(values), dtype=bool)
    for name, mask in bad.items():
        if mask.any():
            log.warning(
                "%s console, report %s: %d cell(s) of %s could not be parsed (e.g. %r); kept as text",
                platform,
                report,
                int(mask.sum()),
                name,
                raw[name][mask].iloc[0],
            )
    return Canonical(columns, raw, bad, len(frame))


def shape_records(canon: Canonical, shape: Shape, ctx: ShapeContext) -> list[dict]:
    """Typed canonical columns -> the stream's records (one dict per row)."""
    out: dict[str, list] = {}
    for name, values in canon.columns.items():
        target = shape.rename.get(name, name)
        if target in shape.drop:
            continue
        if name in TIME_FIELDS:
            fmt = shape.time_formats.get(target, shape.time_format)
            col = _format_time(values, fmt)
        else:
            col = _objects(values)
        if target in shape.values:
            table = shape.values[target]
            col = [table.get(v, v) if v is not None else None for v in col]
        if target in shape.prefix:
            col = [f"{shape.prefix[target]}{v}" if v is not None else None for v in col]
        mask = canon.bad[name]
        if mask.any():  # keep what did not parse as the console showed it
            raw = canon.raw[name].tolist()
            for i in np.flatnonzero(mask):
                col[i] = raw[i]
        out[target] = col
    if shape.snapshot:
        ts = pd.Series([ctx.window.until] * canon.rows, dtype="datetime64[ns, UTC]")
        out[shape.snapshot] = _format_time(ts, shape.time_formats.get(shape.snapshot, shape.time_format))
    keys = list(out)
    records = [dict(zip(keys, row, strict=True)) for row in zip(*out.values(), strict=True)] if keys else []
    return shape.build(records, ctx) if shape.build else records


# -- the scraper ---------------------------------------------------------------------------------
def _classify(response: requests.Response) -> Classified:
    code = response.status_code
    if code == 429 or code >= 500:
        retry_after = response.headers.get("Retry-After")
        try:
            wait = float(retry_after) if retry_after is not None else None
        except ValueError:
            wait = None
        return Classified(Verdict.RETRY, f"HTTP {code} {_page_error(response)}".strip(), wait)
    if code >= 400 and not (code == 403 and urlsplit(response.url).path.endswith("/login")):
        return Classified(Verdict.FATAL, f"HTTP {code} {_page_error(response)}".strip())
    return Classified(Verdict.OK)


def _page_error(response: requests.Response) -> str:
    """The error text of a console HTML page (`.error`, else the title), for messages."""
    if "html" not in response.headers.get("content-type", ""):
        return ""
    try:
        doc = lxml_html.fromstring(response.content)
    except (ValueError, etree.ParserError):
        return ""
    nodes = doc.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), ' error ')]") or doc.xpath(
        "//title"
    )
    return nodes[0].text_content().strip()[:200] if nodes else ""


def _login_form(doc) -> Any | None:
    forms = doc.xpath("//form[@id='login-form']") or doc.xpath("//form[.//input[@type='password']]")
    return forms[0] if forms else None


def _console_window(window: Window | None) -> dict[str, str]:
    """A runner window [since, until) in UTC -> the console's local `start`/`end` strings.
    `start` rounds down and `end` up to the second (the console takes seconds); a row in the
    overlap second is read twice and de-duplicated on its key."""
    if window is None:
        return {}
    start = pd.Timestamp(window.since).tz_convert(LOCAL_TZ).floor("s")
    end = pd.Timestamp(window.until).tz_convert(LOCAL_TZ).ceil("s")
    return {"start": start.strftime(LOCAL_FORMAT), "end": end.strftime(LOCAL_FORMAT)}


class ConsoleScraper:
    """Reads one platform's admin console. `streams_map` maps the connector's stream names to
    console reports (`{"servicers": "agents"}`); `SHAPES[platform][report]` gives the records.

    Settings read from the platform config: `console_url` (`https://.../console/<platform>`),
    `console_username`, `console_password`, optional `console_mode` (auto | csv | html).
    """

    def __init__(
        self,
        platform: str,
        config,
        streams_map: Mapping[str, str] | None = None,
        *,
        mode: Mode | None = None,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ):
        if platform not in COLUMN_MAPS:
            raise ScraperError(
                f"no console column map for platform {platform!r}; known: {sorted(COLUMN_MAPS)}"
            )
        self.platform = platform
        self.config = config
        self.base = config.require("console_url").rstrip("/")
        self.username = config.require("console_username")
        self._password = config.require("console_password")
        register_secret(self._password)
        self.streams_map = MappingProxyType(dict(streams_map or DEFAULT_STREAMS.get(platform, {})))
        for stream_name, report in self.streams_map.items():
            if report not in COLUMN_MAPS[platform]:
                raise ScraperError(
                    f"{platform} console has no {report!r} report (stream {stream_name!r}); "
                    f"its reports: {sorted(COLUMN_MAPS[platform])}"
                )
        self.mode: Mode = mode or config.get("console_mode") or "auto"
        if self.mode not in ("auto", "csv", "html"):
            raise ScraperError(f"{platform}: console_mode must be auto, csv or html, not {self.mode!r}")
        self.http = HttpClient(
            f"{platform}-console",
            None,
            _classify,
            policy or RetryPolicy(read_timeout_s=120.0),
            session=session,
        )
        self._logged_in = False
        self._csv_broken: set[str] = set()
        self.stats = {"logins": 0, "requests": 0, "pages": 0, "rows": 0}

    def __repr__(self) -> str:  # never shows the password
        return f"ConsoleScraper({self.platform!r}, {self.base!r}, user={self.username!r}, mode={self.mode!r})"

    # -- session ------------------------------------------------------------------------
    def login(self) -> None:
        """Log in (GET the form, POST it with its CSRF token). A refused CSRF token (HTTP 403)
        is retried once with a fresh form; wrong credentials are a `ScraperAuthError`."""
        url = f"{self.base}/login"
        for attempt in (1, 2):
            page = self._call("GET", url, allow_redirects=True)
            try:
                form = _login_form(lxml_html.fromstring(page.content))
            except (ValueError, etree.ParserError):
                form = None
            if form is None:
                raise ScraperError(
                    f"{self.platform} console: no login form at {url}; check console_url "
                    "(expected .../console/<platform>)"
                )
            fields = {
                i.get("name"): i.get("value", "")
                for i in form.xpath(".//input[@type='hidden'][@name]")  # csrf_token, next
            }
            if not fields.get("csrf_token"):
                raise ScraperError(f"{self.platform} console: the login form carries no csrf_token")
            fields.update(username=self.username, password=self._password)
            action = urljoin(page.url, form.get("action") or url)
            response = self._call("POST", action, data=fields, allow_redirects=False)
            if response.status_code in (301, 302, 303, 307, 308) and not _is_login_url(
                response.headers.get("location", "")
            ):
                for cookie in self.http.session.cookies:
                    register_secret(cookie.value)
                self._logged_in = True
                self.stats["logins"] += 1
                log.info("%s console: logged in as %s", self.platform, self.username)
                return
            if response.status_code == 403 and attempt == 1:
                log.warning("%s console: login form token refused; retrying with a fresh form", self.platform)
                continue
            reason = _page_error(response) or f"HTTP {response.status_code}"
            raise ScraperAuthError(
                f"{self.platform} console: login as {self.username!r} refused ({reason}). Check "
                f"platforms.{self.platform}.console_username / console_password in the connector config "
                f"(or the Airflow connection csw_{self.platform})."
            )

    def _call(self, method: str, url: str, **kwargs) -> requests.Response:
        self.stats["requests"] += 1
        try:
            return self.http.request(method, url, **kwargs)
        except (ApiUnavailable, FatalApiError) as exc:
            raise ScraperError(
                f"{self.platform} console: {method} {redact(urlsplit(url).path)} failed: {redact(str(exc))}"
            ) from exc

    def _get(self, url: str, params: dict | None) -> requests.Response:
        """GET a report or export; a login page instead means: log in again once, then fail."""
        if not self._logged_in:
            self.login()
        for attempt in (1, 2):
            response = self._call("GET", url, params=params, allow_redirects=False)
            if not self._is_login_page(response):
                if response.status_code in (301, 302, 303, 307, 308):
                    raise ScraperError(
                        f"{self.platform} console: {urlsplit(url).path} redirected to "
                        f"{urlsplit(response.headers.get('location', '')).path!r}, not a report"
                    )
                return response
            self._logged_in = False
            if attempt == 2:
                raise ScraperAuthError(
                    f"{self.platform} console: still sent to the login page right after logging in again "
                    f"(reading {urlsplit(url).path}); the session is refused or expires at once. Check "
                    f"the console account {self.username!r} and the console's session settings."
                )
            log.warning(
                "%s console: session expired reading %s; logging in again", self.platform, urlsplit(url).path
            )
            self.login()
        raise AssertionError("unreachable")

    @staticmethod
    def _is_login_page(response: requests.Response) -> bool:
        """A redirect to the login page, or a login form served in place of the report."""
        if response.status_code in (301, 302, 303, 307, 308):
            return _is_login_url(response.headers.get("location", ""))
        if "html" not in response.headers.get("content-type", "") or not response.content:
            return False
        try:
            doc = lxml_html.fromstring(response.content)
        except (ValueError, etree.ParserError):
            return False
        response.parsed_html = doc  # parsed once: the report reader uses it
        return _login_form(doc) is not None

    def close(self) -> None:
        self.http.session.close()

    # -- reading ------------------------------------------------------------------------
    def read_rows(
        self, report: str, window: Window | None = None, mode: Mode | None = None
    ) -> Iterator[tuple[list[str], list[list[str]]]]:
        """(header, rows) chunks of a report for a window, header already checked."""
        if report not in COLUMN_MAPS[self.platform]:
            raise ScraperError(f"{self.platform} console has no {report!r} report")
        params = {} if report == "agents" else _console_window(window)
        mode = mode or self.mode
        if mode == "html" or (mode == "auto" and report in self._csv_broken):
            yield from self._read_html(report, params)
            return
        try:
            chunk = self._read_csv(report, params)
        except (ScraperAuthError, ScraperLayoutError):
            raise
        except ScraperError as exc:
            if mode == "csv":
                raise
            log.warning(
                "%s console: CSV export of %s failed (%s); paging the HTML report", self.platform, report, exc
            )
            self._csv_broken.add(report)
            yield from self._read_html(report, params)
            return
        yield chunk

    def _check_header(self, report: str, header: list[str], where: str) -> None:
        expected = list(COLUMN_MAPS[self.platform][report])
        if sorted(header) != sorted(expected) or len(set(header)) != len(header):
            raise ScraperLayoutError(self.platform, report, expected, header, where)

    def _read_csv(self, report: str, params: dict) -> tuple[list[str], list[list[str]]]:
        response = self._get(f"{self.base}/export/{report}.csv", params)
        ctype = response.headers.get("content-type", "")
        if "csv" not in ctype:
            raise ScraperError(
                f"{self.platform} console: export/{report}.csv answered {ctype or 'no content type'}, not CSV"
            )
        text = response.content.decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, [])
        self._check_header(report, header, "CSV export")
        rows = list(reader)
        width = len(header)
        broken = next((i for i, r in enumerate(rows) if len(r) != width), None)
        if broken is not None:
            raise ScraperError(
                f"{self.platform} console: export/{report}.csv row {broken + 2} has {len(rows[broken])} cells, "
                f"the header {width}; the export is damaged - re-run (or set console_mode: html)"
            )
        self.stats["pages"] += 1
        self.stats["rows"] += len(rows)
        return header, rows

    def _read_html(self, report: str, params: dict) -> Iterator[tuple[list[str], list[list[str]]]]:
        url = f"{self.base}/reports/{report}"
        query: dict | None = {**params, "page": 1}
        seen, total, pages, number = 0, None, None, 0
        while url:
            number += 1
            response = self._get(url, query)
            try:
                doc = getattr(response, "parsed_html", None)
                doc = lxml_html.fromstring(response.content) if doc is None else doc
            except (ValueError, etree.ParserError) as exc:
                raise ScraperError(
                    f"{self.platform} console: reports/{report} page {number} is not HTML"
                ) from exc
            tables = doc.xpath("//table[contains(concat(' ', normalize-space(@class), ' '), ' report ')]")
            if not tables:
                raise ScraperError(
                    f"{self.platform} console: reports/{report} page {number} has no report table "
                    f"({_page_error(response) or 'unexpected page'})"
                )
            table = tables[0]
            header = [th.text_content().strip() for th in table.xpath("./thead/tr[1]/th")]
            self._check_header(report, header, f"HTML page {number}")
            rows = [[td.text_content() for td in tr.xpath("./td")] for tr in table.xpath("./tbody/tr")]
            if any(len(r) != len(header) for r in rows):
                raise ScraperError(f"{self.platform} console: reports/{report} page {number} has ragged rows")
            info = doc.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), ' page-info ')]")
            if info:
                total = int(info[0].get("data-total", total or 0))
                pages = int(info[0].get("data-pages", pages or 1))
            seen += len(rows)
            self.stats["pages"] += 1
            self.stats["rows"] += len(rows)
            yield header, rows
            nxt = doc.xpath("//a[@rel='next']/@href")
            if not nxt:
                break
            if pages is not None and number >= pages:
                raise ScraperError(
                    f"{self.platform} console: reports/{report} offers a next page beyond data-pages={pages}"
                )
            url, query = urljoin(response.url, nxt[0]), None
        if total is not None and seen != total:
            log.warning(
                "%s console: reports/%s showed %d rows over %d pages but announced %d; the report changed "
                "while it was paged (rows are de-duplicated on their key)",
                self.platform,
                report,
                seen,
                number,
                total,
            )

    # -- records ------------------------------------------------------------------------
    def report_for(self, stream_name: str) -> str:
        try:
            return self.streams_map[stream_name]
        except KeyError:
            raise ScraperError(
                f"{self.platform}: no console report is mapped to stream {stream_name!r}; mapped: "
                f"{dict(self.streams_map)}"
            ) from None

    def shape_for(self, stream: Stream | str) -> Shape:
        name = stream if isinstance(stream, str) else stream.name
        report = self.report_for(name)
        shape = SHAPES.get(self.platform, {}).get(report) or canonical_shape(report)
        if isinstance(stream, Stream):
            declared = (stream.primary_key, stream.time_field, stream.time_format)
            produced = (shape.primary_key, shape.time_field, shape.time_format)
            if declared != produced:
                raise ScraperError(
                    f"{self.platform}.{stream.name}: the console shape for report {report!r} yields key "
                    f"{shape.primary_key}, time {shape.time_field} ({shape.time_format}), but the stream "
                    f"declares key {stream.primary_key}, time {stream.time_field} ({stream.time_format}); "
                    f"align SHAPES[{self.platform!r}][{report!r}] in connectors/scrapers/console.py"
                )
        return shape

    def records(self, stream: Stream | str, window: Window, mode: Mode | None = None) -> Iterator[list[dict]]:
        shape = self.shape_for(stream)
        ctx = ShapeContext(self.platform, self.config, window)
        for header, rows in self.read_rows(shape.report, window, mode):
            for start in range(0, max(len(rows), 1), CSV_CHUNK):
                canon = to_canonical(self.platform, shape.report, header, rows[start : start + CSV_CHUNK])
                yield shape_records(canon, shape, ctx)

    def fetch(self, stream: Stream, window: Window, cursor: Any = None) -> Iterator[Page]:
        """The stream's records for `window`, as `Page`s with `source="scrape"`; the last is `done`."""
        pending: list[dict] | None = None
        for records in self.records(stream, window):
            if pending is not None:
                yield Page(pending, cursor, done=False, source="scrape")
            pending = records
        yield Page(pending or [], cursor, done=True, source="scrape")


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _is_login_url(location: str) -> bool:
    return urlsplit(location).path.rstrip("/").endswith("/login")


def console_scraper_for(
    platform: str, config, streams_map: Mapping[str, str] | None = None, **kwargs
) -> ConsoleScraper:
    """The console scraper of `platform`, with its default stream -> report map."""
    return ConsoleScraper(platform, config, streams_map or DEFAULT_STREAMS.get(platform), **kwargs)


# -- backfill -------------------------------------------------------------------------------------
def backfill(platform: str, stream: str, since, until, *, config=None, mode: Mode | None = None):
    """Land a stream's history for `[since, until)` from the console export, one batch per
    window of the stream's `max_window`, `source=scrape`. For history older than the API keeps
    (WeCom: 3 days); the console has no retention limit.

    The newest manifest's cursor is carried over unchanged, so the API sync resumes where it
    was. Returns the runner's `ExtractResult`. `config` defaults to the connector config."""
    from connectors.core.config import ConfigError, load_config
    from connectors.core.landing import latest_manifest, write_batch
    from connectors.core.runner import ExtractResult, dedupe, plan_windows
    from connectors.core.streams import StreamEvents
    from connectors.platforms import connector_class

    declared = connector_class(platform).streams
    if stream not in declared:
        raise ScraperError(f"{platform} has no stream {stream!r}; streams: {sorted(declared)}")
    decl = declared[stream]
    if config is None:
        configs = load_config()
        if platform not in configs:
            raise ConfigError(f"no connector configuration for {platform}; see docs/connectors/scrapers.md")
        config = configs[platform]
    scraper = console_scraper_for(platform, config, mode=mode)
    since, until = _utc(since), _utc(until)
    latest = latest_manifest(platform, stream)
    cursor = latest.cursor_after if latest else None
    result = ExtractResult(platform, stream, source="scrape", cursor_after=cursor)
    windows = plan_windows(decl, since, until) if decl.cursor != "snapshot" else [Window(since, until)]
    try:
        for i, window in enumerate(windows):
            events = StreamEvents()
            if i == 0:
                events.add(
                    "console_backfill",
                    "info",
                    f"{platform}.{stream}: backfill {since:%Y-%m-%d %H:%M}..{until:%Y-%m-%d %H:%M} UTC "
                    f"from the console export ({len(windows)} window(s))",
                )
            records = [r for page in scraper.fetch(decl, window) for r in page.records]
            result.pages += 1
            manifest = write_batch(
                platform,
                stream,
                dedupe(records, decl),
                source="scrape",
                cursor_before=cursor,
                cursor_after=cursor,
                window=window.as_dict(),
                events=events.items,
            )
            result.batches += 1
            result.rows += manifest.row_count
            result.events.extend(events.items)
            log.info("%s.%s backfill: %s rows for %s", platform, stream, manifest.row_count, window.as_dict())
    finally:
        scraper.close()
    return result
