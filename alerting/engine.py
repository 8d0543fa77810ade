"""One incident, one message: de-duplication, cool-down, resolution and delivery.

`process(alerts, scope, now, ...)` takes the alerts one evaluation found and the rules it
evaluated (`scope`):

- a key with no open incident opens one and is notified (unless it resolved less than
  `cooldown_s` ago: then it reopens silently, recorded as `suppressed`);
- a key already open is only recorded as seen (a reminder every `repeat_after_s` when set);
- an open incident of a rule in `scope` that did not fire this time is resolved, and the
  resolution is notified once.

Every outcome is an `alerting.alert_events` row; every delivery attempt a
`alerting.deliveries` row. Notifiers never raise into the caller.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alerting.notifiers import Message, Notifier
from alerting.store import AlertStore, _iso

log = logging.getLogger("alerting.engine")

ICON = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


@dataclass
class Alert:
    """One firing condition. `key` identifies the incident (rule + subject); texts carry
    no raw customer identifier."""

    rule: str
    key: str
    severity: str
    title: str
    message: str
    channel: str | None = None
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _ts(value) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def render(alert: Alert, now) -> Message:
    local = _ts(now).tz_convert("Asia/Shanghai")
    lines = [f"> {alert.message}"]
    if alert.hint:
        lines.append(f"> Likely cause: {alert.hint}")
    lines.append(f"> rule `{alert.rule}` · {local:%Y-%m-%d %H:%M} (Asia/Shanghai)")
    return Message(
        title=f"{ICON.get(alert.severity, '')} {alert.title}".strip(),
        markdown="\n".join(lines),
        severity=alert.severity,
    )


def render_resolved(incident: dict, now) -> Message:
    local = _ts(now).tz_convert("Asia/Shanghai")
    opened = _ts(incident["opened_at"])
    minutes = max(0, round((_ts(now) - opened).total_seconds() / 60))
    return Message(
        title=f"✅ Resolved: {incident['subject']}",
        markdown=f"> {incident['message']}\n> cleared at {local:%Y-%m-%d %H:%M} after {minutes} min (rule `{incident['rule']}`)",
        severity=incident["severity"],
    )


def notify(store: AlertStore, notifiers: list[Notifier], event_id: str, message: Message) -> int:
    """Deliver to every notifier that wants this severity; returns how many succeeded."""
    delivered = 0
    for notifier in notifiers:
        if not notifier.wants(message.severity):
            continue

        def record(attempt, ok, error, _n=notifier):
            store.record_delivery(event_id, _n.name, attempt, ok, error)

        if notifier.deliver(message, record):
            delivered += 1
    return delivered


def process(
    store: AlertStore,
    alerts: list[Alert],
    scope: list[str],
    now,
    notifiers: list[Notifier],
    *,
    cooldown_s: float = 1800,
    repeat_after_s: float = 0,
) -> dict:
    """Apply de-duplication, cool-down and resolution; returns counts by outcome."""
    now_ts = _ts(now)
    counts = {"fired": 0, "seen": 0, "repeated": 0, "suppressed": 0, "resolved": 0, "delivered": 0}
    firing = {}
    for alert in alerts:
        firing.setdefault(alert.key, alert)  # one alert per key per evaluation
    for key, alert in firing.items():
        inc = store.incident(key)
        base = {
            "key": key,
            "rule": alert.rule,
            "severity": alert.severity,
            "status": "open",
            "subject": alert.title,
            "message": alert.message,
            "last_seen_at": _iso(now_ts),
            "resolved_at": None,
        }
        if inc and inc["status"] == "open":
            due = repeat_after_s and (now_ts - _ts(inc["last_notified_at"])).total_seconds() >= repeat_after_s
            if due:
                event_id = store.record_event(
                    now_ts,
                    alert.rule,
                    key,
                    alert.severity,
                    "repeated",
                    alert.message,
                    channel=alert.channel,
                    hint=alert.hint,
                    details=alert.details,
                    notified=True,
                )
                counts["delivered"] += notify(store, notifiers, event_id, render(alert, now_ts))
                counts["repeated"] += 1
                store.upsert_incident({**inc, **base, "last_notified_at": _iso(now_ts)})
            else:
                counts["seen"] += 1
                store.upsert_incident({**inc, **base})
            continue
        recently = (
            inc is not None
            and inc["resolved_at"]
            and (now_ts - _ts(inc["resolved_at"])).total_seconds() < cooldown_s
        )
        fire_count = (inc["fire_count"] if inc else 0) + 1
        if recently:
            store.record_event(
                now_ts,
                alert.rule,
                key,
                alert.severity,
                "suppressed",
                alert.message,
                channel=alert.channel,
                hint=alert.hint,
                details={**alert.details, "why": "cool-down"},
            )
            counts["suppressed"] += 1
            store.upsert_incident({**inc, **base, "fire_count": fire_count})
            continue
        event_id = store.record_event(
            now_ts,
            alert.rule,
            key,
            alert.severity,
            "fired",
            alert.message,
            channel=alert.channel,
            hint=alert.hint,
            details=alert.details,
            notified=True,
        )
        counts["fired"] += 1
        counts["delivered"] += notify(store, notifiers, event_id, render(alert, now_ts))
        store.upsert_incident(
            {**base, "opened_at": _iso(now_ts), "last_notified_at": _iso(now_ts), "fire_count": fire_count}
        )
    for inc in store.open_incidents(scope):
        if inc["key"] in firing:
            continue
        event_id = store.record_event(
            now_ts, inc["rule"], inc["key"], inc["severity"], "resolved", inc["message"], notified=True
        )
        counts["resolved"] += 1
        counts["delivered"] += notify(store, notifiers, event_id, render_resolved(inc, now_ts))
        store.upsert_incident({**inc, "status": "resolved", "resolved_at": _iso(now_ts)})
    log.info("alerts processed at %s: %s", now_ts, counts)
    return counts


def record_note(
    store: AlertStore, now, rule: str, key: str, message: str, details: dict | None = None
) -> None:
    """An informational note (not an incident), recorded once per key and day."""
    day = _ts(now).strftime("%Y-%m-%d")
    marker = f"note:{key}:{day}"
    if store.get_state(marker):
        return
    store.record_event(now, rule, key, "info", "note", message, details=details)
    store.set_state(marker, _iso(dt.datetime.now(dt.UTC)))
