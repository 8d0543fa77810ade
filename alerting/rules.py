"""The rule file: YAML, validated on load with errors that name the offending path.

`load_rules(path)` reads `CSW_ALERT_RULES` or the packaged `alerting/rules.yaml`, merges it
over the defaults below and checks every key and type; `RulesError` says what is wrong and
where ("interval.volume.above_ratio: expected a number, got 'lots'").
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")
SEVERITIES = ("info", "warning", "critical")
NOTIFIER_TYPES = ("wecom", "dingtalk", "smtp")


class RulesError(ValueError):
    """The rule file is missing, unreadable or invalid; the message names the path."""


_NUM = (int, float)
_SEV = "severity"

# leaf = (type or tuple of types, default); a dict = a section
SCHEMA: dict[str, Any] = {
    "defaults": {"cooldown_s": (_NUM, 1800), "repeat_after_s": (_NUM, 0)},
    "realtime": {
        "queue_length": {"enabled": (bool, True), "threshold": (_NUM, 10), "severity": (_SEV, "warning")},
        "unanswered_session": {
            "enabled": (bool, True),
            "threshold_s": (_NUM, 180),
            "severity": (_SEV, "warning"),
        },
        "vip_waiting": {"enabled": (bool, True), "threshold_s": (_NUM, 30), "severity": (_SEV, "critical")},
        "lookback_min": (_NUM, 120),
    },
    "interval": {
        "window_min": (_NUM, 60),
        "channel_frt": {
            "enabled": (bool, True),
            "threshold_s": (_NUM, 60),
            "min_conversations": (_NUM, 5),
            "severity": (_SEV, "warning"),
        },
        "sla_attainment": {
            "enabled": (bool, True),
            "target": (_NUM, 0.8),
            "window_min": (_NUM, 120),
            "min_conversations": (_NUM, 10),
            "severity": (_SEV, "critical"),
        },
        "volume": {
            "enabled": (bool, True),
            "above_ratio": (_NUM, 1.5),
            "below_ratio": (_NUM, 0.3),
            "min_expected": (_NUM, 5),
            "baseline_weeks": (_NUM, 4),
            "severity": (_SEV, "warning"),
        },
        "topic_share": {
            "enabled": (bool, True),
            "jump_pct": (_NUM, 300),
            "min_conversations": (_NUM, 10),
            "baseline_days": (_NUM, 7),
            "severity": (_SEV, "warning"),
        },
    },
    "pipeline": {
        "freshness": {
            "enabled": (bool, True),
            "grace_min": (dict, {"real_time": 30, "hourly": 180, "d_plus_1": 2160}),
            "severity": (_SEV, "warning"),
        },
        "events": {
            "enabled": (bool, True),
            "window_min": (_NUM, 120),
            "kinds": (
                dict,
                {
                    "fallback_used": "warning",
                    "batch_quarantined": "critical",
                    "rows_quarantined": "warning",
                    "cursor_near_retention": "warning",
                    "cursor_beyond_retention": "critical",
                },
            ),
        },
        "dag_failures": {"enabled": (bool, True), "severity": (_SEV, "critical")},
    },
    "notifiers": (list, []),
}

NOTIFIER_KEYS = {
    "wecom": {"url", "url_env"},
    "dingtalk": {"url", "url_env", "secret", "secret_env"},
    "smtp": {
        "host",
        "port",
        "ssl",
        "starttls",
        "sender",
        "recipients",
        "user_env",
        "password_env",
        "timeout_s",
    },
}
COMMON_NOTIFIER_KEYS = {"type", "name", "min_severity", "retries", "timeout_s", "enabled"}


@dataclass
class Rules:
    """Validated rules (plain nested dicts) plus where they came from."""

    defaults: dict
    realtime: dict
    interval: dict
    pipeline: dict
    notifiers: list[dict] = field(default_factory=list)
    source: str = "<defaults>"


def _defaults(schema: dict) -> dict:
    out = {}
    for key, spec in schema.items():
        out[key] = _defaults(spec) if isinstance(spec, dict) else copy.deepcopy(spec[1])
    return out


def _check(value: Any, schema: dict, path: str) -> dict:
    if not isinstance(value, dict):
        raise RulesError(f"{path or 'the rule file'}: expected a mapping, got {type(value).__name__}")
    out = _defaults(schema)
    for key, val in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            raise RulesError(f"{where}: unknown key; allowed here: {', '.join(sorted(schema))}")
        spec = schema[key]
        if isinstance(spec, dict):
            out[key] = _check(val if val is not None else {}, spec, where)
            continue
        kind, _default = spec
        if kind == _SEV:
            if val not in SEVERITIES:
                raise RulesError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {val!r}")
        elif kind is bool:
            if not isinstance(val, bool):
                raise RulesError(f"{where}: expected true or false, got {val!r}")
        elif kind == _NUM:
            if isinstance(val, bool) or not isinstance(val, _NUM):
                raise RulesError(f"{where}: expected a number, got {val!r}")
            if val < 0:
                raise RulesError(f"{where}: must not be negative, got {val!r}")
        elif not isinstance(val, kind):
            raise RulesError(f"{where}: expected a {kind.__name__}, got {type(val).__name__} {val!r}")
        out[key] = {**_default, **val} if isinstance(val, dict) else val
    return out


def _check_notifier(item: Any, i: int) -> dict:
    where = f"notifiers[{i}]"
    if not isinstance(item, dict):
        raise RulesError(f"{where}: expected a mapping with a `type`, got {item!r}")
    kind = item.get("type")
    if kind not in NOTIFIER_TYPES:
        raise RulesError(f"{where}.type: must be one of {', '.join(NOTIFIER_TYPES)}, got {kind!r}")
    allowed = NOTIFIER_KEYS[kind] | COMMON_NOTIFIER_KEYS
    for key in item:
        if key not in allowed:
            raise RulesError(
                f"{where}.{key}: unknown key for a {kind} notifier; allowed: {', '.join(sorted(allowed))}"
            )
    if kind in ("wecom", "dingtalk") and not (item.get("url") or item.get("url_env")):
        raise RulesError(
            f"{where}: a {kind} notifier needs `url_env` (the variable holding the webhook URL) or `url`"
        )
    if kind == "smtp":
        for key in ("host", "sender", "recipients"):
            if not item.get(key):
                raise RulesError(f"{where}.{key}: required for an smtp notifier")
        if not isinstance(item["recipients"], list) or not all(
            isinstance(r, str) for r in item["recipients"]
        ):
            raise RulesError(f"{where}.recipients: expected a list of e-mail addresses")
    if item.get("min_severity", "info") not in SEVERITIES:
        raise RulesError(f"{where}.min_severity: must be one of {', '.join(SEVERITIES)}")
    return {
        "name": f"{kind}-{i}",
        "retries": 3,
        "timeout_s": 10,
        "enabled": True,
        "min_severity": "info",
        **item,
    }


def parse_rules(data: Any, source: str = "<string>") -> Rules:
    """Validate an already-parsed rule document (a dict)."""
    try:
        checked = _check(data if data is not None else {}, SCHEMA, "")
        pipeline_kinds = checked["pipeline"]["events"]["kinds"]
        for kind, sev in pipeline_kinds.items():
            if sev not in SEVERITIES:
                raise RulesError(
                    f"pipeline.events.kinds.{kind}: severity must be one of {', '.join(SEVERITIES)}"
                )
        if not 0 < checked["interval"]["sla_attainment"]["target"] <= 1:
            raise RulesError("interval.sla_attainment.target: a share between 0 and 1 (e.g. 0.8)")
        notifiers = [_check_notifier(item, i) for i, item in enumerate(checked["notifiers"] or [])]
    except RulesError as exc:
        raise RulesError(f"{source}: {exc}") from None
    return Rules(
        defaults=checked["defaults"],
        realtime=checked["realtime"],
        interval=checked["interval"],
        pipeline=checked["pipeline"],
        notifiers=notifiers,
        source=source,
    )


def load_rules(path: str | Path | None = None) -> Rules:
    """Load and validate the rule file (`path`, `CSW_ALERT_RULES`, or the packaged default)."""
    path = Path(path or os.environ.get("CSW_ALERT_RULES") or DEFAULT_RULES_PATH)
    if not path.exists():
        raise RulesError(f"{path}: rule file not found (set CSW_ALERT_RULES or pass --rules)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None
    return parse_rules(data, str(path))
