"""Shared state of the platform servers: the simulated data, the one clock, credentials,
issued tokens and per-channel indexes that make "what is visible at as_of" cheap.

Every platform module reads data only through `SandboxState`, so the visibility rules
(`sandbox.truth.visible_cutoff`: WeCom's 3 days, Taobao's D+1) are enforced in one place.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sandbox.simulation import SimData
from sandbox.truth import HIDES_BOT_MESSAGES, as_utc, visible_cutoff

# Test credentials of the simulated accounts; a real deployment never sees these.
DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "wecom": {"corpid": "wwsandboxcorp", "corpsecret": "sandbox-wecom-secret", "open_kfid": "wkSANDBOXKF01"},
    "wechat_oa": {"appid": "wxsandboxappid", "secret": "sandbox-wechat-secret"},
    "taobao": {
        "app_key": "12345678",
        "app_secret": "sandbox-taobao-secret",
        "session": "sandbox-taobao-session",
        "refresh_token": "sandbox-taobao-refresh",
    },
    "jd": {
        "app_key": "JDSANDBOXKEY",
        "app_secret": "sandbox-jd-secret",
        "access_token": "sandbox-jd-token",
        "refresh_token": "sandbox-jd-refresh",
    },
    "meiqia": {"app_id": "mq-sandbox-app", "secret": "sandbox-meiqia-secret"},
    "sobot": {"appid": "sobotsandboxappid", "app_key": "sandbox-sobot-key"},
    "zendesk": {"email": "api@sandbox.example", "api_token": "sandbox-zendesk-token", "subdomain": "sandbox"},
    "douyin": {"username": "admin", "password": "sandbox-douyin-pass"},
    "pinduoduo": {"username": "admin", "password": "sandbox-pdd-pass"},
    "crm": {"api_key": "sandbox-crm-api-key"},
}
CONSOLE_CREDENTIALS = {"username": "admin", "password": "sandbox-console-pass"}


@dataclass
class Clock:
    """The simulated `as_of`. Frozen by default; in live mode it advances with wall time
    times `speed` (speed 60: one simulated minute per second)."""

    as_of: pd.Timestamp
    speed: float = 0.0
    _wall0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> pd.Timestamp:
        with self._lock:
            if self.speed <= 0:
                return self.as_of
            return self.as_of + pd.Timedelta(seconds=(time.monotonic() - self._wall0) * self.speed)

    def set(self, as_of=None, speed: float | None = None, advance_s: float = 0.0) -> pd.Timestamp:
        current = self.now()
        with self._lock:
            self.as_of = as_utc(as_of) if as_of is not None else current
            self.as_of += pd.Timedelta(seconds=advance_s)
            self._wall0 = time.monotonic()
            if speed is not None:
                self.speed = float(speed)
            return self.as_of


@dataclass
class Token:
    value: str
    platform: str
    expires_at: float  # simulated epoch seconds


class TokenStore:
    """Issued access tokens per platform, with expiry on the simulated clock."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, platform: str, now: pd.Timestamp, ttl_s: int) -> Token:
        token = Token(f"{platform}-{secrets.token_hex(16)}", platform, now.timestamp() + ttl_s)
        with self._lock:
            self._tokens[token.value] = token
        return token

    def valid(self, platform: str, value: str | None, now: pd.Timestamp) -> bool:
        with self._lock:
            token = self._tokens.get(value or "")
        return token is not None and token.platform == platform and token.expires_at > now.timestamp()

    def revoke_all(self, platform: str) -> int:
        with self._lock:
            gone = [v for v, t in self._tokens.items() if t.platform == platform]
            for v in gone:
                del self._tokens[v]
        return len(gone)


class _TimeIndexed:
    """One table of one channel, sorted by a time column, sliced by searchsorted."""

    def __init__(self, frame: pd.DataFrame, time_col: str):
        self.frame = frame.sort_values([time_col], kind="stable").reset_index(drop=True)
        self.times = self.frame[time_col].to_numpy("datetime64[ms]").astype("int64")

    def between(self, lower: pd.Timestamp | None, upper: pd.Timestamp) -> pd.DataFrame:
        lo = 0 if lower is None else int(np.searchsorted(self.times, lower.value // 10**6, "left"))
        hi = int(np.searchsorted(self.times, upper.value // 10**6, "right"))
        return self.frame.iloc[lo:hi]


class SandboxState:
    """Everything a request handler needs. Thread-safe for the server's worker threads."""

    def __init__(self, data: SimData, as_of=None, speed: float = 0.0, faults=None):
        from sandbox.server.faults import FaultBook

        self.data = data
        end = pd.Timestamp(data.config["end"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
        self.clock = Clock(as_utc(as_of) if as_of is not None else end, speed)
        self.faults = faults or FaultBook()
        self.tokens = TokenStore()
        self.credentials = {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
        self.console_credentials = dict(CONSOLE_CREDENTIALS)
        self.started_at = data["conversations"]["started_at"].min()
        self._messages: dict[str, _TimeIndexed] = {}
        self._ratings: dict[str, _TimeIndexed] = {}
        self._conversations: dict[str, _TimeIndexed] = {}
        self._status: dict[str, _TimeIndexed] = {}
        msgs = data["messages"]
        by_channel = dict(tuple(msgs.groupby("channel", observed=True, sort=False)))
        for ch in data.config["channels"]:
            m = by_channel.get(ch, msgs.iloc[:0])
            if ch in HIDES_BOT_MESSAGES:
                m = m[m["sender_type"] != "bot"]
            self._messages[ch] = _TimeIndexed(m, "sent_at")
        for name, store, col in (
            ("ratings", self._ratings, "rated_at"),
            ("conversations", self._conversations, "started_at"),
            ("agent_status", self._status, "started_at"),
        ):
            table = data[name]
            for ch, frame in table.groupby("channel", sort=False):
                store[ch] = _TimeIndexed(frame, col)
        conv = data["conversations"]
        self.conversation_index = conv.set_index("conversation_id")
        self.identities = data["identities"]
        self.agents = data["agents"].set_index("agent_id")
        self.accounts = data["agent_accounts"]

    # -- the clock and visibility ------------------------------------------------------
    def now(self) -> pd.Timestamp:
        return self.clock.now()

    def window(self, channel: str, start=None, end=None) -> tuple[pd.Timestamp | None, pd.Timestamp]:
        """The visible part of [start, end] for `channel` at the current clock."""
        lower, upper = visible_cutoff(channel, self.now())
        if start is not None:
            start = as_utc(start)
            lower = start if lower is None else max(lower, start)
        if end is not None:
            upper = min(upper, as_utc(end))
        return lower, upper

    def messages(self, channel: str, start=None, end=None) -> pd.DataFrame:
        """Messages and events the platform can show, sent in [start, end], by time."""
        lower, upper = self.window(channel, start, end)
        return self._messages[channel].between(lower, upper)

    def ratings(self, channel: str, start=None, end=None) -> pd.DataFrame:
        lower, upper = self.window(channel, start, end)
        store = self._ratings.get(channel)
        return store.between(lower, upper) if store else self.data["ratings"].iloc[:0]

    def conversations(self, channel: str, start=None, end=None) -> pd.DataFrame:
        """Conversations started in the visible window, with fields as known now:
        times after the clock are blanked, status is open/closed at the clock."""
        lower, upper = self.window(channel, start, end)
        store = self._conversations.get(channel)
        if store is None:
            return self.data["conversations"].iloc[:0]
        frame = store.between(lower, upper).copy()
        now = self.now()
        for col in ("handoff_at", "queue_start_at", "assigned_at", "first_response_at", "abandon_at"):
            frame[col] = frame[col].where(frame[col] <= now)
        closed = frame["closed_at"] <= now
        first_closed = frame["first_closed_at"] <= now
        # reopened only once the reopen has happened (by the clock), not because one will
        reopened = (
            (frame["reopened_at"] <= now)
            if "reopened_at" in frame
            else first_closed & (frame["reopen_count"] > 0)
        )
        frame["status"] = np.where(
            closed, "closed", np.where(reopened, "reopened", np.where(first_closed, "closed", "open"))
        )
        # a reopened conversation that is open again shows the first close until it closes again
        frame["closed_at"] = frame["closed_at"].where(closed, frame["first_closed_at"].where(first_closed))
        frame["first_closed_at"] = frame["first_closed_at"].where(first_closed)
        frame["updated_at"] = frame[["started_at", "closed_at", "assigned_at", "first_response_at"]].max(
            axis=1
        )
        return frame

    def agent_status(self, channel: str, start=None, end=None) -> pd.DataFrame:
        lower, upper = self.window(channel, start, end)
        store = self._status.get(channel)
        if store is None:
            return self.data["agent_status"].iloc[:0]
        frame = store.between(lower, upper).copy()
        frame["ended_at"] = frame["ended_at"].where(frame["ended_at"] <= self.now())
        return frame

    def channel_accounts(self, channel: str) -> pd.DataFrame:
        """The platform's agent accounts joined to the person's name and team."""
        acc = self.accounts[self.accounts["channel"] == channel]
        return acc.join(self.agents, on="agent_id")

    def live_state(self, channel: str) -> dict:
        """Queue length and agents online right now (platforms' real-time endpoints)."""
        now = self.now()
        conv = self.data["conversations"]
        c = conv[conv["channel"] == channel]
        waiting = (c["queue_start_at"] <= now) & ~(c["assigned_at"] <= now) & ~(c["abandon_at"] <= now)
        st = self.data["agent_status"]
        st = st[st["channel"] == channel]
        online = (st["started_at"] <= now) & (st["ended_at"] > now)
        return {"waiting": int(waiting.sum()), "agents_online": int(online.sum()), "as_of": now}
