"""Notifiers: WeCom group robot, DingTalk group robot (signed), SMTP e-mail.

Every delivery is retried (`retries`, capped backoff), every attempt is recorded in
`alerting.deliveries`, and a failure is logged and returned, never raised: a failing
notifier never breaks the pipeline. Webhook URLs and secrets come from environment
variables named in the rule file (`url_env`, `secret_env`); they are never logged.

Formats (public robot documentation):
- WeCom 群机器人: POST `{"msgtype": "markdown", "markdown": {"content": ...}}` to the
  webhook URL (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`); answer
  `{"errcode": 0, "errmsg": "ok"}`.
- DingTalk 自定义机器人 with 加签: `timestamp` (ms) and
  `sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))` added to
  the webhook URL; body `{"msgtype": "markdown", "markdown": {"title", "text"}}`; answer
  `{"errcode": 0, ...}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import smtplib
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage

import requests

log = logging.getLogger("alerting.notifiers")

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SEVERITY_LABEL = {"info": "INFO", "warning": "WARNING", "critical": "CRITICAL"}


class DeliveryError(RuntimeError):
    """One delivery attempt failed; the message says how (never the URL or secret)."""


@dataclass
class Message:
    """What a notifier sends: a title, a markdown body and a severity."""

    title: str
    markdown: str
    severity: str = "warning"
    html: str | None = None
    attachments: list[tuple[str, bytes, str]] | None = None  # (filename, bytes, mime subtype)


def _env(name: str | None, literal: str | None, what: str) -> str:
    if literal:
        return literal
    value = os.environ.get(name or "")
    if not value:
        raise DeliveryError(f"{what}: environment variable {name} is not set")
    return value


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature, URL-encoded, for `&timestamp=...&sign=...`."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


class Notifier:
    kind = "base"

    def __init__(self, config: dict):
        self.config = config
        self.name = config.get("name", self.kind)
        self.retries = int(config.get("retries", 3))
        self.timeout_s = float(config.get("timeout_s", 10))
        self.min_severity = config.get("min_severity", "info")
        self.backoff_s = float(config.get("backoff_s", 0.5))

    def wants(self, severity: str) -> bool:
        return SEVERITY_RANK.get(severity, 1) >= SEVERITY_RANK.get(self.min_severity, 0)

    def send_once(self, message: Message) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def deliver(self, message: Message, record=None) -> bool:
        """Send with retries; `record(attempt, ok, error)` is called for every attempt."""
        for attempt in range(1, self.retries + 1):
            try:
                self.send_once(message)
            except Exception as exc:  # any failure is recorded, logged, retried, never raised
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("notifier %s attempt %s/%s failed: %s", self.name, attempt, self.retries, error)
                if record:
                    record(attempt, False, error)
                if attempt < self.retries:
                    time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 10))
                continue
            if record:
                record(attempt, True, None)
            return True
        log.error("notifier %s gave up after %s attempts: %r", self.name, self.retries, message.title)
        return False


def _check_robot_answer(resp: requests.Response, what: str) -> None:
    if resp.status_code != 200:
        raise DeliveryError(f"{what} answered HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        raise DeliveryError(f"{what} answered non-JSON: {resp.text[:200]!r}") from None
    if body.get("errcode", 0) != 0:
        raise DeliveryError(
            f"{what} refused the message: errcode {body.get('errcode')} {body.get('errmsg')!r}"
        )


class WeComRobot(Notifier):
    kind = "wecom"

    def send_once(self, message: Message) -> None:
        url = _env(self.config.get("url_env"), self.config.get("url"), "wecom robot")
        # WeCom markdown: up to 4096 bytes
        content = f"**{message.title}**\n{message.markdown}".encode()[:4000].decode(errors="ignore")
        resp = requests.post(
            url, json={"msgtype": "markdown", "markdown": {"content": content}}, timeout=self.timeout_s
        )
        _check_robot_answer(resp, "WeCom robot")


class DingTalkRobot(Notifier):
    kind = "dingtalk"

    def send_once(self, message: Message) -> None:
        url = _env(self.config.get("url_env"), self.config.get("url"), "dingtalk robot")
        secret = None
        if self.config.get("secret") or self.config.get("secret_env"):
            secret = _env(self.config.get("secret_env"), self.config.get("secret"), "dingtalk secret")
        if secret:
            ts = int(time.time() * 1000)
            url = f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={dingtalk_sign(secret, ts)}"
        body = {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": f"### {message.title}\n{message.markdown}"},
        }
        resp = requests.post(url, json=body, timeout=self.timeout_s)
        _check_robot_answer(resp, "DingTalk robot")


class SmtpMailer(Notifier):
    kind = "smtp"

    def send_once(self, message: Message) -> None:
        cfg = self.config
        mail = EmailMessage()
        mail["Subject"] = f"[{SEVERITY_LABEL.get(message.severity, '')}] {message.title}".strip()
        mail["From"] = cfg["sender"]
        mail["To"] = ", ".join(cfg["recipients"])
        mail.set_content(message.markdown)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        for filename, payload, subtype in message.attachments or []:
            maintype, _, sub = subtype.partition("/")
            mail.add_attachment(
                payload, maintype=maintype or "application", subtype=sub or "octet-stream", filename=filename
            )
        host, port = cfg["host"], int(cfg.get("port", 465 if cfg.get("ssl") else 25))
        if cfg.get("ssl"):
            server = smtplib.SMTP_SSL(
                host, port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(host, port, timeout=self.timeout_s)
        with server:
            if cfg.get("starttls"):
                server.starttls(context=ssl.create_default_context())
            if cfg.get("user_env"):
                server.login(
                    _env(cfg["user_env"], None, "smtp user"),
                    _env(cfg.get("password_env"), None, "smtp password"),
                )
            server.send_message(mail)


KINDS = {"wecom": WeComRobot, "dingtalk": DingTalkRobot, "smtp": SmtpMailer}


def build_notifiers(configs: list[dict]) -> list[Notifier]:
    return [KINDS[c["type"]](c) for c in configs if c.get("enabled", True)]
