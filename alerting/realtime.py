"""Real-time rules, evaluated every minute (`cs_realtime`), never waiting for the warehouse.

Inputs:
- the platforms' live-state endpoints (queue length, agents online): in the sandbox
  `GET <CSW_SANDBOX_URL>/_sandbox/live/<platform>` (the same numbers WeCom's
  `kf/sandbox/live_state`, WeChat's `getwaitcase`, Meiqia's `/v1/realtime`, Sobot's
  `get_online_stat` and JD's `realtime.get` serve); elsewhere `CSW_LIVE_STATE_URL`, a URL
  template with `{platform}` pointing at a small gateway in front of those endpoints;
- the newest landed batches of the real-time message streams (WeCom, WeChat OA), from
  which the sessions now waiting for a human reply are derived (hand-off or first customer
  message → agent reply, close ends the wait);
- the VIP customer keys the interval run copied into the alert store.

Rules: queue above N per platform; a session unanswered for 3 minutes; a VIP waiting
beyond 30 s. Platforms that cannot be real time (Taobao is D+1; Douyin and Pinduoduo are
read hourly from their consoles; Zendesk is e-mail) are said to be so: the run returns and
records a note for each, it does not skip them silently.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

import pandas as pd
import requests

from alerting.engine import Alert
from alerting.hints import NAMES
from alerting.rules import Rules

log = logging.getLogger("alerting.realtime")

LIVE_PLATFORMS = ("wecom", "wechat_oa", "meiqia", "sobot", "jd")
SESSION_STREAMS = {"wecom": "messages", "wechat_oa": "messages"}
NOT_REAL_TIME = {
    "taobao": "Taobao serves chat data D+1 (nothing for today): queue and waiting rules cannot run; "
    "it is covered by the interval rules the next day",
    "douyin": "Douyin has no chat API: its console export is read hourly, so no real-time rules",
    "pinduoduo": "Pinduoduo has no chat API: its console export is read hourly, so no real-time rules",
    "zendesk": "Zendesk is e-mail (SLA in hours): covered by the interval rules, not the minute rules",
}


def hash_customer(platform: str, raw_id: str) -> str:
    """The marts' `customer_key`: sha256 of `<salt>|<platform>|<id>` (macro `hash_id`)."""
    salt = os.environ.get("CSW_HASH_SALT", "sandbox-salt-not-for-production")
    return hashlib.sha256(f"{salt}|{platform}|{raw_id}".encode()).hexdigest()


def label(customer_key: str) -> str:
    """A short, non-reversible label for a customer in messages (`c-1a2b3c4d`)."""
    return f"c-{customer_key[:8]}"


@dataclass
class Waiting:
    platform: str
    customer_key: str
    since: pd.Timestamp
    reason: str  # handoff | message | created


@dataclass
class RealtimeResult:
    now: pd.Timestamp
    alerts: list[Alert] = field(default_factory=list)
    live: dict[str, dict] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


# -- inputs -------------------------------------------------------------------------------


def live_url(platform: str) -> str | None:
    template = os.environ.get("CSW_LIVE_STATE_URL")
    if template:
        return template.format(platform=platform)
    base = os.environ.get("CSW_SANDBOX_URL")
    return f"{base.rstrip('/')}/_sandbox/live/{platform}" if base else None


def fetch_live(platform: str, timeout_s: float = 5.0) -> dict:
    url = live_url(platform)
    if not url:
        raise RuntimeError("no live-state endpoint configured (CSW_LIVE_STATE_URL or CSW_SANDBOX_URL)")
    resp = requests.get(url, timeout=timeout_s)
    resp.raise_for_status()
    body = resp.json()
    return {"waiting": int(body["waiting"]), "agents_online": int(body.get("agents_online", 0))}


def sandbox_now() -> pd.Timestamp | None:
    """The sandbox's clock, when alerts watch the sandbox (its live mode runs faster than wall time)."""
    base = os.environ.get("CSW_SANDBOX_URL")
    if not base:
        return None
    resp = requests.get(f"{base.rstrip('/')}/_sandbox/clock", timeout=5)
    resp.raise_for_status()
    return pd.Timestamp(resp.json()["as_of"]).tz_convert("UTC")


def recent_records(
    platform: str, stream: str, now: pd.Timestamp, lookback: pd.Timedelta, time_key
) -> list[dict]:
    """Records of the newest landed batches (newest first until older than the look-back)."""
    from connectors.core.landing import manifests, read_records

    out: list[dict] = []
    for directory, manifest in reversed(manifests(platform, stream)):
        try:
            records = read_records(directory, manifest)
        except (OSError, ValueError) as exc:
            log.warning("landed batch %s unreadable: %s", manifest.batch_id, exc)
            continue
        times = [time_key(r) for r in records]
        out.extend(
            r for r, t in zip(records, times, strict=True) if t is not None and now - lookback <= t <= now
        )
        if times and max((t for t in times if t is not None), default=now) < now - lookback:
            break
    return out


def _unix(value) -> pd.Timestamp | None:
    try:
        return pd.Timestamp(int(value), unit="s", tz="UTC")
    except (TypeError, ValueError):
        return None


def wecom_waiting(records: list[dict]) -> dict[str, tuple[pd.Timestamp, str]]:
    """Customers waiting for a human now: since the hand-off (or their unanswered message
    once a human has the session); an agent message or a close ends the wait."""
    rows = sorted(records, key=lambda r: (int(r.get("send_time", 0)), str(r.get("msgid", ""))))
    human: set[str] = set()
    waiting: dict[str, tuple[pd.Timestamp, str]] = {}
    for r in rows:
        t = _unix(r.get("send_time"))
        origin = r.get("origin")
        if origin == 4:
            ev = r.get("event") or {}
            who = ev.get("external_userid")
            change = ev.get("change_type")
            if not who:
                continue
            if change == 0:
                human.add(who)
                waiting.setdefault(who, (t, "handoff"))
            elif change in (1, 2, 4):
                human.add(who)
            elif change == 3:
                human.discard(who)
                waiting.pop(who, None)
        elif origin == 5:
            waiting.pop(r.get("external_userid"), None)
        elif origin == 3:
            who = r.get("external_userid")
            if who in human:
                waiting.setdefault(who, (t, "message"))
    return waiting


def wechat_waiting(records: list[dict]) -> dict[str, tuple[pd.Timestamp, str]]:
    """WeChat OA has no bot: a customer waits from the first unanswered message (or the
    session's creation) until an agent reply (2002) or a close (1004)."""
    rows = sorted(records, key=lambda r: (int(r.get("time", 0)), int(r.get("msgid", 0) or 0)))
    waiting: dict[str, tuple[pd.Timestamp, str]] = {}
    for r in rows:
        who, code, t = r.get("openid"), r.get("opercode"), _unix(r.get("time"))
        if not who:
            continue
        if code == 2003:
            waiting.setdefault(who, (t, "message"))
        elif code == 1000:
            waiting.setdefault(who, (t, "created"))
        elif code in (2002, 1004):
            waiting.pop(who, None)
    return waiting


WAITING_FROM = {"wecom": (wecom_waiting, "send_time"), "wechat_oa": (wechat_waiting, "time")}


def _fmt_wait(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# -- evaluation ---------------------------------------------------------------------------


def evaluate_realtime(
    rules: Rules,
    now,
    *,
    platforms: list[str] | None = None,
    vip_keys: set[tuple[str, str]] | None = None,
) -> RealtimeResult:
    """Evaluate the real-time rules at `now` (UTC)."""
    from connectors.platforms import available

    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    cfg = rules.realtime
    result = RealtimeResult(now=now)
    chosen = [p for p in (platforms or available()) if p != "crm"]
    lookback = pd.Timedelta(minutes=cfg["lookback_min"])
    vip_keys = vip_keys or set()

    for platform in chosen:
        if platform in NOT_REAL_TIME:
            result.notes[platform] = NOT_REAL_TIME[platform]
            continue
        name = NAMES.get(platform, platform)
        if platform in LIVE_PLATFORMS and cfg["queue_length"]["enabled"]:
            try:
                live = fetch_live(platform)
            except Exception as exc:  # a live endpoint down is a note, not a crash
                result.notes[platform] = f"live state unavailable: {type(exc).__name__}: {exc}"[:300]
                live = None
            if live is not None:
                result.live[platform] = live
                n = cfg["queue_length"]["threshold"]
                if live["waiting"] > n:
                    result.alerts.append(
                        Alert(
                            rule="queue_length",
                            key=f"queue_length:{platform}",
                            severity=cfg["queue_length"]["severity"],
                            title=f"{name} queue {live['waiting']} > {n}",
                            message=f"{name}: {live['waiting']} customers waiting for a human, "
                            f"{live['agents_online']} agents online (threshold {n}).",
                            channel=platform,
                            details=live,
                        )
                    )
        if platform not in WAITING_FROM:
            result.notes.setdefault(
                platform,
                "queue from the live-state endpoint only; per-session waiting needs its message stream",
            )
            continue
        derive, time_field = WAITING_FROM[platform]
        records = recent_records(
            platform, SESSION_STREAMS[platform], now, lookback, lambda r, f=time_field: _unix(r.get(f))
        )
        for who, (since, reason) in derive(records).items():
            key = hash_customer(platform, who)
            result.waiting.append(Waiting(platform, key, since, reason))
            waited = (now - since).total_seconds()
            is_vip = (platform, key) in vip_keys
            local = since.tz_convert("Asia/Shanghai")
            if cfg["unanswered_session"]["enabled"] and waited >= cfg["unanswered_session"]["threshold_s"]:
                result.alerts.append(
                    Alert(
                        rule="unanswered_session",
                        key=f"unanswered_session:{platform}:{key[:16]}:{since.value // 10**9}",
                        severity=cfg["unanswered_session"]["severity"],
                        title=f"{name} session {label(key)} unanswered {_fmt_wait(waited)}",
                        message=f"{name}: customer {label(key)}{' (VIP)' if is_vip else ''} has waited "
                        f"{_fmt_wait(waited)} for a human reply (since {local:%H:%M:%S}, after {reason}).",
                        channel=platform,
                        details={
                            "customer": label(key),
                            "since": since.isoformat(),
                            "waited_s": round(waited),
                        },
                    )
                )
            if is_vip and cfg["vip_waiting"]["enabled"] and waited >= cfg["vip_waiting"]["threshold_s"]:
                result.alerts.append(
                    Alert(
                        rule="vip_waiting",
                        key=f"vip_waiting:{platform}:{key[:16]}:{since.value // 10**9}",
                        severity=cfg["vip_waiting"]["severity"],
                        title=f"VIP waiting {_fmt_wait(waited)} on {name}",
                        message=f"{name}: VIP customer {label(key)} has waited {_fmt_wait(waited)} "
                        f"(target {int(cfg['vip_waiting']['threshold_s'])} s), since {local:%H:%M:%S}.",
                        channel=platform,
                        details={
                            "customer": label(key),
                            "since": since.isoformat(),
                            "waited_s": round(waited),
                        },
                    )
                )
    return result
