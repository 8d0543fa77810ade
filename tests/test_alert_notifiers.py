"""Rule file validation, notifiers against real local receivers, and one incident = one
message (de-duplication, cool-down, resolution), with every attempt recorded."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import socketserver
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from alerting.engine import Alert, process
from alerting.notifiers import DingTalkRobot, Message, SmtpMailer, WeComRobot, build_notifiers, dingtalk_sign
from alerting.rules import DEFAULT_RULES_PATH, RulesError, load_rules, parse_rules
from alerting.store import AlertStore

SECRET = "SECtest-dingtalk-secret"


# -- local receivers --------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        server.posts.append({"path": self.path, "body": json.loads(body), "headers": dict(self.headers)})
        if server.fail_next > 0:
            server.fail_next -= 1
            self.send_response(500)
            self.end_headers()
            return
        answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    server.posts, server.fail_next = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


class _Smtp(socketserver.StreamRequestHandler):
    """The few SMTP commands smtplib sends: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 localhost test SMTP")
        envelope = {"from": None, "to": []}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode(errors="replace").strip()
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                envelope = {"from": cmd[10:], "to": []}
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(cmd[8:])
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    line = self.rfile.readline()
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.server.mails.append({**envelope, "data": b"".join(lines)})
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 not implemented")


@pytest.fixture()
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.mails = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# -- rules --------------------------------------------------------------------------------------


def test_default_rule_file_is_valid():
    rules = load_rules(DEFAULT_RULES_PATH)
    assert rules.realtime["queue_length"]["threshold"] == 10
    assert rules.realtime["unanswered_session"]["threshold_s"] == 180
    assert rules.realtime["vip_waiting"]["threshold_s"] == 30
    assert rules.interval["channel_frt"]["threshold_s"] == 60
    assert rules.interval["topic_share"]["jump_pct"] == 300


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"interval": {"volume": {"above_ratio": "lots"}}}, "interval.volume.above_ratio: expected a number"),
        ({"realtime": {"queue_lenght": {}}}, "realtime.queue_lenght: unknown key"),
        (
            {"realtime": {"vip_waiting": {"severity": "urgent"}}},
            "realtime.vip_waiting.severity: severity must be one of",
        ),
        ({"notifiers": [{"type": "slack"}]}, "notifiers[0].type: must be one of wecom, dingtalk, smtp"),
        ({"notifiers": [{"type": "dingtalk"}]}, "notifiers[0]: a dingtalk notifier needs `url_env`"),
        (
            {"notifiers": [{"type": "smtp", "host": "h", "sender": "a@b"}]},
            "notifiers[0].recipients: required",
        ),
        ({"interval": {"sla_attainment": {"target": 80}}}, "interval.sla_attainment.target: a share"),
    ],
)
def test_bad_rules_fail_with_the_path(doc, message):
    with pytest.raises(RulesError, match=message.replace("[", r"\[").replace("]", r"\]").replace("`", ".")):
        parse_rules(doc, "test.yaml")


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("realtime: [unclosed")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(path)


# -- notifiers ------------------------------------------------------------------------------------


def test_wecom_robot_posts_markdown(webhook):
    ok = WeComRobot({"name": "wecom", "url": f"{webhook.url}/cgi-bin/webhook/send?key=k"}).deliver(
        Message("Douyin FRT 132 s > 60 s", "> detail", "warning")
    )
    assert ok
    (post,) = webhook.posts
    assert post["body"]["msgtype"] == "markdown"
    assert "Douyin FRT 132 s" in post["body"]["markdown"]["content"]


def test_dingtalk_robot_signs(webhook, monkeypatch):
    monkeypatch.setenv("DT_URL", f"{webhook.url}/robot/send?access_token=t")
    monkeypatch.setenv("DT_SECRET", SECRET)
    ok = DingTalkRobot({"name": "dt", "url_env": "DT_URL", "secret_env": "DT_SECRET"}).deliver(
        Message("SLA 70 % < 80 %", "> detail", "critical")
    )
    assert ok
    (post,) = webhook.posts
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(post["path"]).query)
    assert query["access_token"] == ["t"]
    ts = query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"][0] == expected  # parse_qs url-decodes once: the raw base64
    assert dingtalk_sign(SECRET, int(ts)) == urllib.parse.quote_plus(expected)
    assert post["body"]["msgtype"] == "markdown"
    assert post["body"]["markdown"]["title"] == "SLA 70 % < 80 %"


def test_smtp_delivers(smtp_server):
    port = smtp_server.server_address[1]
    mailer = SmtpMailer(
        {
            "name": "mail",
            "host": "127.0.0.1",
            "port": port,
            "sender": "cs@example.com",
            "recipients": ["boss@example.com"],
        }
    )
    assert mailer.deliver(Message("VIP waiting 45 s on WeCom", "> details", "critical"))
    (mail,) = smtp_server.mails
    msg = email.message_from_bytes(mail["data"])
    assert "VIP waiting 45 s" in msg["Subject"] and msg["To"] == "boss@example.com"


def test_failing_notifier_is_retried_logged_and_never_raises(webhook, tmp_path):
    webhook.fail_next = 2
    records = []
    robot = WeComRobot({"name": "wecom", "url": webhook.url, "retries": 3, "backoff_s": 0.01})
    assert robot.deliver(Message("t", "m"), lambda *a: records.append(a))
    assert [r[1] for r in records] == [False, False, True]
    dead = WeComRobot(
        {"name": "dead", "url": "http://127.0.0.1:9/nothing", "retries": 2, "backoff_s": 0.01, "timeout_s": 1}
    )
    assert dead.deliver(Message("t", "m")) is False  # no exception


# -- one incident, one message ----------------------------------------------------------------------


def test_cooldown_one_incident_one_message_one_resolution(webhook, smtp_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DT_SECRET", SECRET)
    rules = parse_rules(
        {
            "notifiers": [
                {"type": "wecom", "url": f"{webhook.url}/wecom"},
                {"type": "dingtalk", "url": f"{webhook.url}/dingtalk", "secret_env": "DT_SECRET"},
                {
                    "type": "smtp",
                    "host": "127.0.0.1",
                    "port": smtp_server.server_address[1],
                    "sender": "cs@example.com",
                    "recipients": ["m@example.com"],
                    "min_severity": "critical",
                },
            ]
        }
    )
    notifiers = build_notifiers(rules.notifiers)
    alert = Alert(
        "queue_length", "queue_length:wecom", "warning", "WeCom queue 14 > 10", "WeCom: 14 waiting.", "wecom"
    )
    t0 = pd.Timestamp("2026-11-11 08:00", tz="UTC")
    with AlertStore(tmp_path / "alerts.sqlite") as store:
        outcomes = []
        for minute in range(5):  # five evaluations while the queue stays long
            outcomes.append(
                process(store, [alert], ["queue_length"], t0 + pd.Timedelta(minutes=minute), notifiers)
            )
        outcomes.append(process(store, [], ["queue_length"], t0 + pd.Timedelta(minutes=5), notifiers))
        outcomes.append(process(store, [], ["queue_length"], t0 + pd.Timedelta(minutes=6), notifiers))
        # it comes back within the cool-down: recorded, not sent
        outcomes.append(process(store, [alert], ["queue_length"], t0 + pd.Timedelta(minutes=7), notifiers))
        events = store.events()
        deliveries = store.query("select * from alerting.deliveries")
    assert sum(o["fired"] for o in outcomes) == 1
    assert sum(o["resolved"] for o in outcomes) == 1
    assert sum(o["suppressed"] for o in outcomes) == 1
    wecom = [p for p in webhook.posts if p["path"].startswith("/wecom")]
    ding = [p for p in webhook.posts if p["path"].startswith("/dingtalk")]
    assert len(wecom) == 2 and len(ding) == 2  # one firing, one resolution each
    assert "Resolved" in wecom[1]["body"]["markdown"]["content"]
    assert smtp_server.mails == []  # the mail notifier only wants critical alerts
    assert [e["kind"] for e in events] == ["fired", "resolved", "suppressed"]
    assert len(deliveries) == 4 and all(d["ok"] for d in deliveries)


def test_failing_delivery_is_recorded(tmp_path):
    notifiers = build_notifiers(
        parse_rules({"notifiers": [{"type": "wecom", "url": "http://127.0.0.1:9/x", "retries": 2}]}).notifiers
    )
    notifiers[0].backoff_s = 0.01
    notifiers[0].timeout_s = 1
    alert = Alert("sla_attainment", "sla_attainment:jd", "critical", "JD SLA 60 %", "JD: 60 %.", "jd")
    with AlertStore(tmp_path / "alerts.sqlite") as store:
        out = process(store, [alert], ["sla_attainment"], pd.Timestamp("2026-11-11", tz="UTC"), notifiers)
        deliveries = store.query("select * from alerting.deliveries")
    assert out["fired"] == 1 and out["delivered"] == 0
    assert len(deliveries) == 2 and not any(d["ok"] for d in deliveries) and deliveries[0]["error"]
