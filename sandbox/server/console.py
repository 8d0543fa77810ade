"""Admin consoles (HTML) of the nine simulated platforms: what the RPA scrapers read.

Douyin Feige and Pinduoduo have no chat API, so their console is the only source of their
sessions, messages, ratings and agents; for the other seven the console is the fallback
when the API is off (DESIGN §5, §6) and the way WeCom history older than the API's three
days is backfilled. Documented for the connectors in `docs/sandbox/console.md`.

Mounted at `/console` (`sandbox.server.app`):

    GET  /console/<platform>/login                  login form with a hidden CSRF token
    POST /console/<platform>/login                  username, password, csrf_token[, next]
    GET  /console/<platform>/logout                 ends the session
    GET  /console/<platform>/                       home: links to the reports
    GET  /console/<platform>/reports/<report>?start=YYYY-MM-DD HH:MM&end=...&page=N
    GET  /console/<platform>/export/<report>.csv?start=...&end=...
    GET|POST|DELETE /console/_settings              session TTL, session clock, layout change

Reports: `sessions`, `messages`, `ratings`, `agents`, `agent_status` (WeCom and WeChat OA
have no session ids, so no `sessions` report and no 会话ID column; WeChat OA has no
ratings). Column headers per platform and report are in `REPORT_COLUMNS`.

Rules the scrapers must cope with:
- Login: wrong username/password -> the login page again, HTTP 200, `<p class="error">`;
  a missing, unknown or already-used CSRF token -> the login page again, HTTP 403. A
  good login sets the HttpOnly cookie `console_sid` (path `/console/<platform>`) and
  answers 303 to `next` (or the home page).
- Sessions live `session_ttl_s` seconds (default 1800) on the simulated clock
  (`session_clock: "simulated"`, default) or on the wall clock (`"wall"`), counted from
  login. A report or export without a valid session answers 302 to
  `/console/<platform>/login?next=...` (`&expired=1` when the session had expired).
- Window `[start, end)` in Asia/Shanghai local time (`YYYY-MM-DD HH:MM[:SS]` or
  `YYYY-MM-DD`); no start = from the beginning, no end = now. Times shown are local
  `YYYY-MM-DD HH:MM:SS` (truncated to the second); durations are whole seconds.
  What is shown stops at the platform's visibility cutoff (`sandbox.truth.visible_cutoff`:
  Taobao is D+1) but has no retention limit: the WeCom console shows all history. WeCom
  shows no bot messages (sent through the API), as its API does.
- Pages of `PAGE_SIZE` (100) rows ordered by (time, id); pager
  `<div class="pager"><span class="page-info" data-page data-pages data-total>` with
  `<a rel="next">`. The CSV export is the whole window with the same headers and cells,
  UTF-8 with BOM, CRLF, `Content-Disposition: attachment`.
- Layout change (`POST /console/_settings {"layout_change": {"douyin": true}}`): the
  agent column header is renamed (客服 -> 接待客服, Zendesk Assignee -> Assigned agent).
- Faults: the platform's `api_off`/`permission_denied` do not touch the console. The
  console has its own fault key `console_<platform>` (`POST /_sandbox/faults/console_jd`
  or the `X-Sandbox-Fault` header on a console request); for douyin and pinduoduo the
  plain platform key works too. On report/export requests: `slow_s` delays,
  `server_errors` -> HTML 502, `hang` -> waits `hang_s` then HTML 504, `rate_limit` ->
  HTML 429 + Retry-After, `error_codes` -> HTML 503 (系统繁忙), `permission_denied` on
  the console key -> HTML 403, `expire_tokens_after` -> after N more report requests every
  console session of the platform ends (the next request: 302 to the login, `expired=1`).
  Record-level faults (duplicates, schema drift) do not apply; `late_updates` on the plain
  douyin / pinduoduo key (their console is their only source) hides a share of recent
  messages and ratings until `late_by_s` after they happened, as a lagging report does.
"""

from __future__ import annotations

import html
import math
import secrets
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.config import CHANNELS, PROFILES
from sandbox.server.faults import apply_late, parse_header
from sandbox.truth import HIDES_BOT_MESSAGES, visible_cutoff

LOCAL_TZ = "Asia/Shanghai"
PAGE_SIZE = 100
COOKIE = "console_sid"
CONSOLE_ONLY = ("douyin", "pinduoduo")
REPORTS = ("sessions", "messages", "ratings", "agents", "agent_status")

# -- columns: (key, label) per report; labels are what the console shows ------------------
_ZH: dict[str, list[tuple[str, str]]] = {
    "sessions": [
        ("session_id", "会话ID"),
        ("customer", "客户"),
        ("agent", "客服"),
        ("started_at", "开始时间"),
        ("handoff_at", "转人工时间"),
        ("assigned_at", "接入时间"),
        ("first_response_at", "首次响应时间"),
        ("closed_at", "结束时间"),
        ("wait_s", "排队时长(秒)"),
        ("frt_s", "首次响应时长(秒)"),
        ("status", "状态"),
        ("rating", "满意度"),
    ],
    "messages": [
        ("session_id", "会话ID"),
        ("message_id", "消息ID"),
        ("sent_at", "发送时间"),
        ("sender", "发送方"),
        ("agent", "客服"),
        ("customer", "客户"),
        ("content", "消息内容"),
        ("event", "事件"),
    ],
    "ratings": [
        ("rating_id", "评价ID"),
        ("session_id", "会话ID"),
        ("customer", "客户"),
        ("agent", "客服"),
        ("rated_at", "评价时间"),
        ("rating", "满意度"),
        ("nps", "推荐度"),
    ],
    "agents": [("account", "客服账号"), ("name", "客服昵称"), ("team", "分组"), ("online", "当前状态")],
    "agent_status": [
        ("agent", "客服"),
        ("status", "状态"),
        ("started_at", "开始时间"),
        ("ended_at", "结束时间"),
        ("duration_s", "时长(秒)"),
    ],
}
_EN: dict[str, list[tuple[str, str]]] = {
    "sessions": [
        ("session_id", "Ticket ID"),
        ("customer", "Requester"),
        ("agent", "Assignee"),
        ("started_at", "Created"),
        ("handoff_at", "Bot handoff"),
        ("assigned_at", "Assigned"),
        ("first_response_at", "First reply"),
        ("closed_at", "Solved"),
        ("wait_s", "Wait (s)"),
        ("frt_s", "First reply time (s)"),
        ("status", "Status"),
        ("rating", "Satisfaction"),
    ],
    "messages": [
        ("session_id", "Ticket ID"),
        ("message_id", "Comment ID"),
        ("sent_at", "Created"),
        ("sender", "Author role"),
        ("agent", "Assignee"),
        ("customer", "Requester"),
        ("content", "Body"),
        ("event", "Event"),
    ],
    "ratings": [
        ("rating_id", "Rating ID"),
        ("session_id", "Ticket ID"),
        ("customer", "Requester"),
        ("agent", "Assignee"),
        ("rated_at", "Rated"),
        ("rating", "Satisfaction"),
        ("nps", "NPS"),
    ],
    "agents": [("account", "Agent ID"), ("name", "Name"), ("team", "Group"), ("online", "Availability")],
    "agent_status": [
        ("agent", "Assignee"),
        ("status", "Status"),
        ("started_at", "Start"),
        ("ended_at", "End"),
        ("duration_s", "Duration (s)"),
    ],
}
# how each platform's console names the customer (and, on Meiqia, the session)
_CUSTOMER_LABEL = {
    "taobao": "买家",
    "jd": "顾客账号",
    "pinduoduo": "买家ID",
    "douyin": "用户ID",
    "wecom": "客户",
    "wechat_oa": "粉丝OpenID",
    "meiqia": "访客ID",
    "sobot": "客户ID",
}
_SESSION_LABEL = {"meiqia": "对话ID"}
LAYOUT_RENAMES = {"客服": "接待客服", "Assignee": "Assigned agent"}
CONSOLE_TITLES = {
    "taobao": "千牛工作台 · 客服数据",
    "jd": "京麦工作台 · 咚咚客服",
    "pinduoduo": "拼多多商家后台 · 客服数据",
    "douyin": "抖店 · 飞鸽客服工作台",
    "wecom": "企业微信管理后台 · 微信客服",
    "wechat_oa": "微信公众平台 · 客服功能",
    "meiqia": "美洽 · 管理后台",
    "sobot": "智齿客服 · 管理后台",
    "zendesk": "Zendesk Admin Center",
}
_REPORT_TITLES = {
    "zh": {
        "sessions": "会话记录",
        "messages": "聊天记录",
        "ratings": "满意度评价",
        "agents": "客服列表",
        "agent_status": "客服状态记录",
    },
    "en": {
        "sessions": "Tickets",
        "messages": "Messages",
        "ratings": "Satisfaction ratings",
        "agents": "Agents",
        "agent_status": "Agent status",
    },
}
# value labels (simulation code -> what the console shows)
VALUE_LABELS = {
    "zh": {
        "sender": {"customer": "客户", "agent": "客服", "bot": "机器人", "system": "系统"},
        "event": {
            "": "",
            "handoff": "转人工",
            "assign": "接入",
            "transfer": "转接",
            "close": "结束会话",
            "reopen": "重新打开",
        },
        "status": {"open": "进行中", "closed": "已结束", "reopened": "已重开"},
        "agent_status": {"online": "在线", "offline": "离线"},
        "rating3": {5: "好评", 4: "好评", 3: "中评", 2: "差评", 1: "差评"},
    },
    "en": {
        "sender": {"customer": "Customer", "agent": "Agent", "bot": "Bot", "system": "System"},
        "event": {
            "": "",
            "handoff": "Bot handoff",
            "assign": "Assigned",
            "transfer": "Transferred",
            "close": "Solved",
            "reopen": "Reopened",
        },
        "status": {"open": "Open", "closed": "Solved", "reopened": "Reopened"},
        "agent_status": {"online": "Online", "offline": "Offline"},
        "rating2": {5: "Good", 4: "Good", 3: "Bad", 2: "Bad", 1: "Bad"},
    },
}


def _lang(platform: str) -> str:
    return "en" if platform == "zendesk" else "zh"


def _reports_offered(platform: str) -> tuple[str, ...]:
    if platform == "wechat_oa":
        return ("messages", "agents", "agent_status")  # no session id, no ratings
    if platform == "wecom":
        return ("messages", "ratings", "agents", "agent_status")  # no session id
    return REPORTS


def report_fields(platform: str, report: str) -> list[tuple[str, str]]:
    """(key, header) of one report on one platform's console, in column order."""
    if report not in _reports_offered(platform):
        raise KeyError(f"{platform} console has no {report!r} report")
    base = (_EN if _lang(platform) == "en" else _ZH)[report]
    out = []
    for key, label in base:
        if key == "session_id" and platform in ("wecom", "wechat_oa"):
            continue
        if key == "nps" and not PROFILES[platform].asks_nps:
            continue
        if key == "customer":
            label = _CUSTOMER_LABEL.get(platform, label)
        if key == "session_id":
            label = _SESSION_LABEL.get(platform, label)
        out.append((key, label))
    return out


REPORT_COLUMNS: dict[str, dict[str, list[str]]] = {
    p: {r: [label for _, label in report_fields(p, r)] for r in _reports_offered(p)} for p in CHANNELS
}


def headers_for(platform: str, report: str, layout_change: bool = False) -> list[str]:
    """The header row as served: `REPORT_COLUMNS`, with the layout change applied if on."""
    cols = REPORT_COLUMNS[platform][report]
    return [LAYOUT_RENAMES.get(c, c) for c in cols] if layout_change else list(cols)


# -- settings and sessions -----------------------------------------------------------------
@dataclass
class ConsoleSettings:
    session_ttl_s: float = 1800.0
    session_clock: str = "simulated"  # simulated | wall
    layout_change: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.session_clock not in ("simulated", "wall"):
            raise ValueError(f"session_clock must be 'simulated' or 'wall', got {self.session_clock!r}")
        if float(self.session_ttl_s) <= 0:
            raise ValueError("session_ttl_s must be > 0")
        unknown = set(self.layout_change) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown platform(s) in layout_change: {sorted(unknown)}")
        self.session_ttl_s = float(self.session_ttl_s)
        self.layout_change = {p: bool(v) for p, v in self.layout_change.items()}


@dataclass
class _Session:
    platform: str
    username: str
    sim_at: float  # simulated epoch seconds at login
    wall_at: float  # time.monotonic() at login
    ended: bool = False  # ended by the expire_tokens_after fault


class WindowError(ValueError):
    """A report's start/end/page parameter could not be understood."""


class Console:
    """State of the consoles of one sandbox: settings, CSRF tokens, login sessions, and
    per-channel tables sorted by (time, id)."""

    def __init__(self, state) -> None:
        self.state = state
        self.settings = ConsoleSettings()
        self._lock = threading.Lock()
        self._csrf: dict[str, str] = {}  # token -> platform (single use)
        self._sessions: dict[str, _Session] = {}
        self._account_cache: dict[str, pd.Series] = {}
        data = state.data
        self.channels = tuple(c for c in data.config["channels"] if c in CHANNELS)
        self._tables: dict[tuple[str, str], tuple[pd.DataFrame, np.ndarray]] = {}
        specs = {
            "messages": ("sent_at", "message_id"),
            "ratings": ("rated_at", "rating_id"),
            "agent_status": ("started_at", "agent_id"),
        }
        for name, (tcol, idcol) in specs.items():
            table = data[name]
            groups = dict(tuple(table.groupby(table["channel"].astype(str), sort=False)))
            for ch in self.channels:
                frame = groups.get(ch, table.iloc[:0])
                if name == "messages" and ch in HIDES_BOT_MESSAGES:
                    frame = frame[frame["sender_type"] != "bot"]
                frame = frame.sort_values([tcol, idcol], kind="stable").reset_index(drop=True)
                self._tables[(name, ch)] = (frame, frame[tcol].to_numpy("datetime64[ms]").astype("int64"))

    # settings ------------------------------------------------------------------------
    def configure(self, **values) -> ConsoleSettings:
        with self._lock:
            current = asdict(self.settings)
            if "layout_change" in values:
                values["layout_change"] = {**current["layout_change"], **(values["layout_change"] or {})}
            current.update(values)
            self.settings = ConsoleSettings(**current)
            return self.settings

    def reset(self) -> None:
        with self._lock:
            self.settings = ConsoleSettings()
            self._sessions.clear()
            self._csrf.clear()

    def layout_changed(self, platform: str) -> bool:
        return self.settings.layout_change.get(platform, False)

    # csrf and sessions ---------------------------------------------------------------
    def issue_csrf(self, platform: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            if len(self._csrf) > 10_000:  # bounded: forget the oldest half
                for old in list(self._csrf)[:5_000]:
                    del self._csrf[old]
            self._csrf[token] = platform
        return token

    def take_csrf(self, platform: str, token: str | None) -> bool:
        with self._lock:
            return bool(token) and self._csrf.pop(token, None) == platform

    def login(self, platform: str, username: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) > 10_000:  # bounded: forget the oldest half
                for old in list(self._sessions)[:5_000]:
                    del self._sessions[old]
            self._sessions[sid] = _Session(platform, username, self.state.now().timestamp(), time.monotonic())
        return sid

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def end_sessions(self, platform: str) -> int:
        with self._lock:
            gone = [v for v in self._sessions.values() if v.platform == platform and not v.ended]
            for v in gone:
                v.ended = True
        return len(gone)

    def session(self, platform: str, sid: str | None) -> tuple[_Session | None, bool]:
        """(the live session, expired?) for a cookie value. An expired session stays known
        (as expired) until logout or reset, so every later request says so."""
        with self._lock:
            sess = self._sessions.get(sid or "")
            if sess is None or sess.platform != platform:
                return None, False
            if self.settings.session_clock == "wall":
                age = time.monotonic() - sess.wall_at
            else:
                age = self.state.now().timestamp() - sess.sim_at
            if sess.ended or age >= self.settings.session_ttl_s:
                return None, True
            return sess, False

    def credentials_ok(self, platform: str, username: str, password: str) -> bool:
        accepted = [self.state.console_credentials]
        own = self.state.credentials.get(platform, {})
        if "username" in own and "password" in own:
            accepted.append(own)
        return any(
            secrets.compare_digest(username, c["username"])
            and secrets.compare_digest(password, c["password"])
            for c in accepted
        )

    # data ----------------------------------------------------------------------------
    def _between(
        self, name: str, channel: str, lower: pd.Timestamp | None, upper: pd.Timestamp
    ) -> pd.DataFrame:
        """Rows with lower <= time <= upper (both inclusive, ms precision)."""
        frame, times = self._tables[(name, channel)]
        lo = 0 if lower is None else int(np.searchsorted(times, lower.value // 10**6, "left"))
        hi = int(np.searchsorted(times, upper.value // 10**6, "right"))
        return frame.iloc[lo:hi]

    def bounds(self, channel: str, start: pd.Timestamp | None, end: pd.Timestamp | None):
        """[lower, upper] inclusive in UTC for a console window [start, end): no retention,
        but the platform's visibility cutoff (D+1) and the clock."""
        _, upper = visible_cutoff(channel, self.state.now())
        if end is not None:
            upper = min(upper, end - pd.Timedelta(milliseconds=1))
        return start, upper

    def raw(self, platform: str, report: str, start=None, end=None) -> pd.DataFrame:
        """The report's source rows for the window [start, end), in the console's order."""
        lower, upper = self.bounds(platform, start, end)
        if report in ("messages", "ratings") and platform in CONSOLE_ONLY:
            # the console is Douyin's / Pinduoduo's only source, so their `late_updates`
            # (plain platform key) lands here: the report's data lag behind (数据有延迟)
            id_col = "message_id" if report == "messages" else "rating_id"
            time_col = "sent_at" if report == "messages" else "rated_at"
            return apply_late(
                self.state, platform, self._between(report, platform, lower, upper), id_col, time_col
            )
        if report in ("messages", "ratings", "agent_status"):
            return self._between(report, platform, lower, upper)
        if report == "sessions":
            return self.raw_sessions(platform, lower, upper)
        if report == "agents":
            return self.state.channel_accounts(platform).sort_values(
                ["account_id", "agent_id"], kind="stable"
            )
        raise KeyError(report)

    def format(self, platform: str, report: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Source rows -> the cells the console shows (columns = report keys, all strings)."""
        formatter = {
            "messages": self._fmt_messages,
            "ratings": self._fmt_ratings,
            "agent_status": self._fmt_status,
            "sessions": self._fmt_sessions,
            "agents": self._fmt_agents,
        }[report]
        return formatter(platform, frame)

    def records(self, platform: str, report: str, start=None, end=None) -> pd.DataFrame:
        """The whole window as the console shows it (the CSV export)."""
        return self.format(platform, report, self.raw(platform, report, start, end))

    def raw_sessions(self, platform: str, lower, upper) -> pd.DataFrame:
        conv = self.state.conversations(platform, lower, upper)
        return conv.sort_values(["started_at", "conversation_id"], kind="stable")

    # formatting (vectorised over the frame) --------------------------------------------
    def _accounts(self, platform: str) -> pd.Series:
        """agent_id -> the platform account id (static: cached per platform)."""
        cached = self._account_cache.get(platform)
        if cached is None:
            acc = self.state.channel_accounts(platform)
            cached = acc.drop_duplicates("agent_id").set_index("agent_id")["account_id"].astype(object)
            self._account_cache[platform] = cached
        return cached

    def _account_of(self, platform: str, agent_ids: pd.Series) -> np.ndarray:
        return _text(agent_ids.map(self._accounts(platform)))

    @staticmethod
    def _session_ids(platform: str, conversation_ids: pd.Series) -> np.ndarray:
        """The session id a console shows: JD's 京麦 shows the API's `sid` (so a scraped record
        keys like an API one); the others show the conversation id."""
        if platform == "jd":
            from sandbox.server.platforms.jd import jd_sid

            return jd_sid(conversation_ids.to_numpy()).astype(object)
        return _text(conversation_ids)

    def _customer_of(self, conversation_ids: pd.Series) -> np.ndarray:
        users = self.state.conversation_index["platform_user_id"].astype(object)
        return _text(users.reindex(conversation_ids.to_numpy()))

    def _rating_label(self, platform: str, csat: pd.Series) -> np.ndarray:
        scale = PROFILES[platform].rating_scale
        lang = VALUE_LABELS[_lang(platform)]
        if scale == "3":
            labels = csat.map(lang["rating3"])
        elif scale == "2":
            labels = csat.map(lang["rating2"])
        else:
            labels = csat.map(lambda v: str(int(v)), na_action="ignore")
        return _text(labels)

    def _visible_ratings(self, platform: str) -> pd.DataFrame:
        _, upper = visible_cutoff(platform, self.state.now())
        return self._between("ratings", platform, None, upper)

    def _fmt_messages(self, platform: str, m: pd.DataFrame) -> pd.DataFrame:
        lang = VALUE_LABELS[_lang(platform)]
        out = {
            "session_id": self._session_ids(platform, m["conversation_id"]),
            "message_id": _text(m["message_id"]),
            "sent_at": _local(m["sent_at"]),
            "sender": _text(m["sender_type"].astype(str).map(lang["sender"])),
            "agent": self._account_of(platform, m["agent_id"]),
            "customer": self._customer_of(m["conversation_id"]),
            "content": _text(m["content"]),
            "event": _text(m["event"].astype(str).map(lang["event"])),
        }
        return self._select(platform, "messages", out, len(m))

    def _fmt_ratings(self, platform: str, r: pd.DataFrame) -> pd.DataFrame:
        nps = r["nps"].astype("Int64")
        out = {
            "rating_id": _text(r["rating_id"]),
            "session_id": self._session_ids(platform, r["conversation_id"]),
            "customer": self._customer_of(r["conversation_id"]),
            "agent": self._account_of(platform, r["agent_id"]),
            "rated_at": _local(r["rated_at"]),
            "rating": self._rating_label(platform, r["csat"].astype("Int64")),
            "nps": _text(nps.where(nps >= 0)),
        }
        return self._select(platform, "ratings", out, len(r))

    def _fmt_status(self, platform: str, s: pd.DataFrame) -> pd.DataFrame:
        lang = VALUE_LABELS[_lang(platform)]
        ended = s["ended_at"].where(s["ended_at"] <= self.state.now())
        out = {
            "agent": self._account_of(platform, s["agent_id"]),
            "status": s["status"]
            .astype(str)
            .map(lang["agent_status"])
            .fillna(s["status"].astype(str))
            .to_numpy(),
            "started_at": _local(s["started_at"]),
            "ended_at": _local(ended),
            "duration_s": _seconds((ended - s["started_at"]).dt.total_seconds()),
        }
        return self._select(platform, "agent_status", out, len(s))

    def _fmt_sessions(self, platform: str, c: pd.DataFrame) -> pd.DataFrame:
        lang = VALUE_LABELS[_lang(platform)]
        rated = self._visible_ratings(platform).drop_duplicates("conversation_id", keep="last")
        csat = c["conversation_id"].map(rated.set_index("conversation_id")["csat"]).astype("Int64")
        out = {
            "session_id": self._session_ids(platform, c["conversation_id"]),
            "customer": _text(c["platform_user_id"]),
            "agent": self._account_of(platform, c["first_agent_id"].where(c["assigned_at"].notna(), -1)),
            "started_at": _local(c["started_at"]),
            "handoff_at": _local(c["handoff_at"]),
            "assigned_at": _local(c["assigned_at"]),
            "first_response_at": _local(c["first_response_at"]),
            "closed_at": _local(c["closed_at"]),
            "wait_s": _seconds(c["wait_s"].where(c["assigned_at"].notna())),
            "frt_s": _seconds(c["frt_s"].where(c["first_response_at"].notna())),
            "status": _text(c["status"].astype(str).map(lang["status"])),
            "rating": self._rating_label(platform, csat),
        }
        return self._select(platform, "sessions", out, len(c))

    def _fmt_agents(self, platform: str, acc: pd.DataFrame) -> pd.DataFrame:
        lang = VALUE_LABELS[_lang(platform)]
        now = self.state.now()
        st = self._between("agent_status", platform, None, now)
        online_ids = set(st.loc[~(st["ended_at"] <= now), "agent_id"].tolist())
        online = acc["agent_id"].isin(online_ids).to_numpy()
        out = {
            "account": _text(acc["account_id"]),
            "name": _text(acc["name"]),
            "team": _text(acc["team"]),
            "online": np.where(online, lang["agent_status"]["online"], lang["agent_status"]["offline"]),
        }
        return self._select(platform, "agents", out, len(acc))

    @staticmethod
    def _select(platform: str, report: str, columns: dict, n: int) -> pd.DataFrame:
        keys = [k for k, _ in report_fields(platform, report)]
        return pd.DataFrame({k: columns[k] for k in keys}, index=pd.RangeIndex(n))


def _text(series: pd.Series) -> np.ndarray:
    """Any column -> an object array of strings, '' for missing values."""
    return series.astype("string").fillna("").to_numpy(dtype=object)


def _local(series: pd.Series) -> np.ndarray:
    """UTC timestamps -> 'YYYY-MM-DD HH:MM:SS' Asia/Shanghai strings ('' for missing)."""
    s = pd.to_datetime(series, utc=True)
    return _text(s.dt.tz_convert(LOCAL_TZ).dt.strftime("%Y-%m-%d %H:%M:%S"))


def _seconds(series: pd.Series) -> np.ndarray:
    """Durations in seconds -> whole seconds as strings ('' for missing)."""
    v = pd.to_numeric(series, errors="coerce").round().astype("Int64")
    return _text(v)


def parse_local(value: str | None, name: str) -> pd.Timestamp | None:
    """'YYYY-MM-DD HH:MM[:SS]' or 'YYYY-MM-DD' in Asia/Shanghai -> UTC timestamp."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            ts = pd.to_datetime(text, format=fmt)
        except (ValueError, TypeError):
            continue
        return ts.tz_localize(LOCAL_TZ).tz_convert("UTC")
    raise WindowError(f"{name}={value!r}: expected YYYY-MM-DD HH:MM (Asia/Shanghai)")


# -- HTML ------------------------------------------------------------------------------
_e = html.escape

_STYLE = (
    "body{font-family:sans-serif;margin:1em}table.report{border-collapse:collapse}"
    "table.report th,table.report td{border:1px solid #ccc;padding:2px 6px;font-size:12px}"
    ".error{color:#b00}.pager{margin:.5em 0}"
)


def _page(title: str, body: str, lang: str = "zh") -> str:
    code = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{code}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html(status: int, platform: str, title: str, body: str, **headers) -> HTMLResponse:
    lang = _lang(platform) if platform in CHANNELS else "zh"
    return HTMLResponse(_page(title, body, lang), status_code=status, headers=headers or None)


_TEXT = {
    "zh": {
        "login": "登录",
        "username": "账号",
        "password": "密码",
        "bad_credentials": "账号或密码错误",
        "bad_csrf": "页面已失效，请刷新后重新登录",
        "expired": "登录已过期，请重新登录",
        "logout": "退出登录",
        "export": "导出CSV",
        "query": "查询",
        "start": "开始时间",
        "end": "结束时间",
        "prev": "上一页",
        "next": "下一页",
        "page_info": "第 {page} 页 / 共 {pages} 页，共 {total} 条",
        "all_time": "全部",
        "now": "现在",
        "window": "时间范围",
    },
    "en": {
        "login": "Sign in",
        "username": "Email",
        "password": "Password",
        "bad_credentials": "Invalid email or password",
        "bad_csrf": "Your session form expired; reload the page and sign in again",
        "expired": "Your session has expired, please sign in again",
        "logout": "Sign out",
        "export": "Export CSV",
        "query": "Apply",
        "start": "Start",
        "end": "End",
        "prev": "Previous",
        "next": "Next",
        "page_info": "Page {page} of {pages}, {total} rows",
        "all_time": "all",
        "now": "now",
        "window": "Window",
    },
}


def _login_page(platform: str, csrf: str, error: str = "", next_url: str = "") -> str:
    t = _TEXT[_lang(platform)]
    err = f'<p class="error">{_e(error)}</p>\n' if error else ""
    nxt = f'<input type="hidden" name="next" value="{_e(next_url)}">\n' if next_url else ""
    body = (
        f'<h1 class="console-title">{_e(CONSOLE_TITLES[platform])}</h1>\n{err}'
        f'<form id="login-form" method="post" action="login">\n'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf)}">\n{nxt}'
        f'<label>{t["username"]} <input type="text" name="username" autocomplete="username"></label>\n'
        f'<label>{t["password"]} <input type="password" name="password" '
        'autocomplete="current-password"></label>\n'
        f'<button type="submit">{t["login"]}</button>\n</form>'
    )
    return _page(f"{CONSOLE_TITLES[platform]} - {t['login']}", body, _lang(platform))


def _table(report: str, headers: list[str], rows: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    # one page (PAGE_SIZE rows): escaping cell by cell is cheaper than pandas' per-column machinery
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
        for row in rows.to_numpy(dtype=object).tolist()
    )
    return (
        f'<table class="report" id="report-{report}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table>"
    )


def _fmt_local(ts: pd.Timestamp | None) -> str:
    return "" if ts is None else ts.tz_convert(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


# -- router ------------------------------------------------------------------------------
_CONSOLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def console_for(state) -> Console:
    """The console state of a sandbox (settings, sessions) for tests and the demo."""
    return _CONSOLES[state]


class _FaultPage(Exception):
    def __init__(self, response: Response):
        self.response = response


def router(state) -> APIRouter:
    console = Console(state)
    _CONSOLES[state] = console
    api = APIRouter()

    def prefix(request: Request) -> str:
        route = request.scope.get("route")
        path = getattr(route, "path", "")
        return path.split("/{platform}")[0] if "/{platform}" in path else "/console"

    def check_platform(platform: str) -> None:
        if platform not in console.channels:
            raise HTTPException(404, f"no console for platform {platform!r}")

    def fault_page(platform: str, request: Request) -> Response | None:
        book = state.faults
        keys = [f"console_{platform}"] + ([platform] if platform in CONSOLE_ONLY else [])
        header = request.headers.get("x-sandbox-fault")
        if header:
            try:
                book.set(keys[0], **parse_header(header))
            except (TypeError, ValueError) as exc:
                return _html(400, platform, "400", f'<p class="error">{_e(str(exc))}</p>')
        for key in keys:
            cfg = book.get(key)
            if cfg.slow_s > 0:
                time.sleep(cfg.slow_s)
            if key.startswith("console_") and cfg.permission_denied:
                book._fire(key, "permission_denied")
                return _html(403, platform, "403 无权限", '<h1 class="error">403 无权限访问该页面</h1>')
            if book.take(key, "hang"):
                time.sleep(cfg.hang_s)
                return _html(504, platform, "504 Gateway Time-out", "<h1>504 Gateway Time-out</h1>")
            if book.take(key, "rate_limit"):
                return _html(
                    429,
                    platform,
                    "429 操作过于频繁",
                    '<h1 class="error">操作过于频繁，请稍后再试</h1>',
                    **{"Retry-After": str(cfg.retry_after_s)},
                )
            if book.take(key, "server_errors"):
                return _html(502, platform, "502 Bad Gateway", "<h1>502 Bad Gateway</h1>")
            if book.take(key, "error_codes"):
                return _html(503, platform, "503 系统繁忙", '<h1 class="error">系统繁忙，请稍后重试</h1>')
            if book.count_data_request(key):
                console.end_sessions(platform)
        return None

    def require_session(platform: str, request: Request) -> Response | None:
        sess, expired = console.session(platform, request.cookies.get(COOKIE))
        if sess is not None:
            return None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target, **({"expired": "1"} if expired else {})}
        return RedirectResponse(f"{prefix(request)}/{platform}/login?{urlencode(query)}", status_code=302)

    def window(request: Request) -> tuple[pd.Timestamp | None, pd.Timestamp | None, int]:
        q = request.query_params
        start = parse_local(q.get("start"), "start")
        end = parse_local(q.get("end"), "end")
        if start is not None and end is not None and start > end:
            raise WindowError("start is after end")
        try:
            page = int(q.get("page", "1") or "1")
        except ValueError as exc:
            raise WindowError(f"page={q.get('page')!r}: expected a whole number >= 1") from exc
        if page < 1:
            raise WindowError("page must be >= 1")
        return start, end, page

    def check_report(platform: str, report: str) -> Response | None:
        if report in _reports_offered(platform):
            return None
        body = f'<h1 class="error">404: no report {_e(report)!s} on this console</h1>'
        return _html(404, platform, "404", body)

    # settings (registered before the /{platform} routes) -------------------------------
    @api.get("/_settings")
    def get_settings() -> dict:
        return asdict(console.settings)

    @api.post("/_settings")
    def set_settings(body: dict = Body(default_factory=dict)) -> dict:
        try:
            return asdict(console.configure(**body))
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, f"bad console settings: {exc}") from exc

    @api.delete("/_settings")
    def reset_settings() -> dict:
        console.reset()
        return asdict(console.settings)

    # login ---------------------------------------------------------------------------
    @api.get("/{platform}/login", response_class=HTMLResponse)
    def login_form(platform: str, request: Request) -> HTMLResponse:
        check_platform(platform)
        t = _TEXT[_lang(platform)]
        error = t["expired"] if request.query_params.get("expired") else ""
        nxt = request.query_params.get("next", "")
        return HTMLResponse(_login_page(platform, console.issue_csrf(platform), error, nxt))

    @api.post("/{platform}/login")
    async def login_submit(platform: str, request: Request) -> Response:
        check_platform(platform)
        t = _TEXT[_lang(platform)]
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        nxt = str(form.get("next", ""))
        if not console.take_csrf(platform, str(form.get("csrf_token", "")) or None):
            page = _login_page(platform, console.issue_csrf(platform), t["bad_csrf"], nxt)
            return HTMLResponse(page, status_code=403)
        if not console.credentials_ok(platform, username, password):
            page = _login_page(platform, console.issue_csrf(platform), t["bad_credentials"], nxt)
            return HTMLResponse(page, status_code=200)
        base = f"{prefix(request)}/{platform}"
        target = nxt if nxt.startswith(f"{base}/") and "//" not in nxt else f"{base}/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, console.login(platform, username), path=base, httponly=True, samesite="lax"
        )
        return response

    @api.get("/{platform}/logout")
    def logout(platform: str, request: Request) -> Response:
        check_platform(platform)
        console.logout(request.cookies.get(COOKIE))
        base = f"{prefix(request)}/{platform}"
        response = RedirectResponse(f"{base}/login", status_code=302)
        response.delete_cookie(COOKIE, path=base)
        return response

    # pages ---------------------------------------------------------------------------
    def header_bar(platform: str, sess) -> str:
        t = _TEXT[_lang(platform)]
        return (
            f'<header><h1 class="console-title">{_e(CONSOLE_TITLES[platform])}</h1> '
            f'<span class="user">{_e(sess.username)}</span> <a class="logout" href="logout">{t["logout"]}</a>'
            "</header>"
        )

    @api.get("/{platform}/", response_class=HTMLResponse)
    def home(platform: str, request: Request) -> Response:
        check_platform(platform)
        redirect = require_session(platform, request)
        if redirect is not None:
            return redirect
        sess, _ = console.session(platform, request.cookies.get(COOKIE))
        titles = _REPORT_TITLES[_lang(platform)]
        t = _TEXT[_lang(platform)]
        items = "\n".join(
            f'<li><a class="report-link" href="reports/{r}">{_e(titles[r])}</a> '
            f'(<a class="export-link" href="export/{r}.csv">{t["export"]}</a>)</li>'
            for r in _reports_offered(platform)
        )
        body = f'{header_bar(platform, sess)}\n<ul class="reports">\n{items}\n</ul>'
        return _html(200, platform, CONSOLE_TITLES[platform], body)

    @api.get("/{platform}/reports/{report}", response_class=HTMLResponse)
    def report_page(platform: str, report: str, request: Request) -> Response:
        check_platform(platform)
        fault = fault_page(platform, request)
        if fault is not None:
            return fault
        redirect = require_session(platform, request)
        if redirect is not None:
            return redirect
        missing = check_report(platform, report)
        if missing is not None:
            return missing
        try:
            start, end, page = window(request)
        except WindowError as exc:
            return _html(400, platform, "400", f'<p class="error">{_e(str(exc))}</p>')
        sess, _ = console.session(platform, request.cookies.get(COOKIE))
        source = console.raw(platform, report, start, end)
        total = len(source)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        rows = console.format(platform, report, source.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
        headers = headers_for(platform, report, console.layout_changed(platform))
        lang = _lang(platform)
        t = _TEXT[lang]
        title = _REPORT_TITLES[lang][report]
        s_txt, e_txt = _fmt_local(start), _fmt_local(end)
        keep = {
            k: v
            for k, v in (
                ("start", request.query_params.get("start")),
                ("end", request.query_params.get("end")),
            )
            if v
        }

        def link(n: int) -> str:
            return "?" + urlencode({**keep, "page": n}, quote_via=quote)

        prev = f'<a class="prev" rel="prev" href="{_e(link(page - 1))}">{t["prev"]}</a>' if page > 1 else ""
        nxt = (
            f'<a class="next" rel="next" href="{_e(link(page + 1))}">{t["next"]}</a>' if page < pages else ""
        )
        info = t["page_info"].format(page=page, pages=pages, total=total)
        export = f"../export/{report}.csv" + ("?" + urlencode(keep, quote_via=quote) if keep else "")
        body = (
            f"{header_bar(platform, sess)}\n"
            f'<h2 class="report-title" data-report="{report}">{_e(title)}</h2>\n'
            f'<form class="filter" method="get" action="{report}">'
            f'<label>{t["start"]} <input name="start" value="{_e(keep.get("start", ""))}"></label> '
            f'<label>{t["end"]} <input name="end" value="{_e(keep.get("end", ""))}"></label> '
            f'<button type="submit">{t["query"]}</button></form>\n'
            f'<p class="window" data-start="{_e(s_txt)}" data-end="{_e(e_txt)}">{t["window"]}: '
            f"{_e(s_txt or t['all_time'])} ~ {_e(e_txt or t['now'])}</p>\n"
            f'<p><a class="export" href="{_e(export)}">{t["export"]}</a></p>\n'
            f"{_table(report, headers, rows)}\n"
            f'<div class="pager"><span class="page-info" data-page="{page}" data-pages="{pages}" '
            f'data-total="{total}" data-page-size="{PAGE_SIZE}">{_e(info)}</span> {prev} {nxt}</div>'
        )
        return _html(200, platform, f"{title} - {CONSOLE_TITLES[platform]}", body)

    @api.get("/{platform}/export/{filename}")
    def export_csv(platform: str, filename: str, request: Request) -> Response:
        check_platform(platform)
        report = filename.removesuffix(".csv")
        fault = fault_page(platform, request)
        if fault is not None:
            return fault
        redirect = require_session(platform, request)
        if redirect is not None:
            return redirect
        if not filename.endswith(".csv"):
            return _html(404, platform, "404", '<h1 class="error">404: exports are .csv</h1>')
        missing = check_report(platform, report)
        if missing is not None:
            return missing
        try:
            start, end, _ = window(request)
        except WindowError as exc:
            return _html(400, platform, "400", f'<p class="error">{_e(str(exc))}</p>')
        records = console.records(platform, report, start, end)
        records.columns = headers_for(platform, report, console.layout_changed(platform))
        text = "\ufeff" + records.to_csv(index=False, lineterminator="\r\n")

        def stamp(ts: pd.Timestamp | None, default: str) -> str:
            return default if ts is None else ts.tz_convert(LOCAL_TZ).strftime("%Y%m%d%H%M")

        name = f"{platform}_{report}_{stamp(start, 'begin')}_{stamp(end, 'now')}.csv"
        return Response(
            text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return api
