"""The manager reports render as self-contained HTML with their charts, open in headless
Chromium without errors, carry no customer identifier, and can be mailed."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re
import shutil
import subprocess

import pandas as pd
import pytest

from alerting.reports import build_report
from connectors.cli import run_ingest
from csw.transform import transform
from sandbox.config import SimConfig
from sandbox.server.app import RunningServer
from sandbox.server.state import SandboxState
from sandbox.simulation import simulate

TZ = "Asia/Shanghai"
CFG = SimConfig(
    seed=9, start=dt.date(2026, 11, 2), days=9, conversations_per_day=600, channels=("jd", "wechat_oa")
)
AS_OF = pd.Timestamp("2026-11-10 08:00", tz=TZ).tz_convert("UTC")
CHROMIUM_APT = "apt-get install -y chromium"


ACTION = "Tue 2026-11-10 10:00-12:00 JD: volume +50 % vs usual, add 2 agents"


def _fake_forecast(path) -> None:
    """A small `forecast` schema in the shape `forecasting.publish` writes (Prophet takes
    minutes; the report only reads these tables)."""
    import duckdb

    slots = pd.date_range(
        AS_OF - pd.Timedelta(days=1), AS_OF + pd.Timedelta(days=1), freq="30min", inclusive="left"
    )
    volume = pd.DataFrame(
        [{"channel": ch, "interval_start": t, "yhat": 3.0} for ch in ("jd", "wechat_oa") for t in slots]
    )
    recs = volume.rename(columns={"yhat": "volume"}).assign(required_headcount=3, scheduled_agents=2, gap=1)
    actions = pd.DataFrame([{"rank": 1, "channel": "jd", "sentence": ACTION}])
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists forecast")
        for name, frame in (
            ("forecast_volume", volume),
            ("staffing_recommendations", recs),
            ("staffing_actions", actions),
        ):
            con.register("f", frame)
            con.execute(f"create or replace table forecast.{name} as select * from f")
            con.unregister("f")
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    work = tmp_path_factory.mktemp("report")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    mp.setenv("CSW_ALERT_STORE", str(work / "alerts.sqlite"))
    data = simulate(CFG)
    server = RunningServer(SandboxState(data, as_of=AS_OF)).start()
    try:
        start = pd.Timestamp(CFG.start).tz_localize(TZ).tz_convert("UTC")
        summary = run_ingest(["jd", "wechat_oa", "crm"], None, start, AS_OF, server.url, show_progress=False)
        assert not summary["failures"]
        transform(AS_OF)
        _fake_forecast(work / "warehouse" / "warehouse.duckdb")
    finally:
        server.stop()
    yield {"work": work, "data": data}
    mp.undo()


@pytest.fixture(scope="module")
def daily(warehouse):
    return build_report("daily", AS_OF, out_dir=warehouse["work"] / "reports")


def test_daily_report_is_self_contained_with_charts(daily, warehouse):
    assert daily.path.exists() and daily.path.parent.name == "reports"
    text = daily.html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    for caption in ("FRT and SLA by channel", "Volume vs forecast", "CSAT by FRT band", "Staffing gap"):
        assert caption in text
    assert "What to do" in text and ACTION in text
    assert "gap vs roster" in text
    assert not re.search(r'(src|href)="https?://', text)  # nothing loaded from elsewhere
    ids = set(warehouse["data"]["conversations"]["platform_user_id"].astype(str))
    ids |= (
        set(warehouse["data"]["customers"]["customer_id"].astype(str))
        if "customer_id" in warehouse["data"]["customers"]
        else set()
    )
    tokens = set(re.findall(r"[A-Za-z0-9_\-]{6,}", re.sub(r"base64,[A-Za-z0-9+/=]+", "", text)))
    assert not tokens & ids


def test_weekly_report_renders(warehouse):
    report = build_report("weekly", AS_OF, out_dir=warehouse["work"] / "reports")
    assert report.charts == 4 and "weekly" in report.path.name


def test_report_mail(daily, monkeypatch):
    import socketserver
    import threading

    from test_alert_notifiers import _Smtp  # the tiny stdlib SMTP receiver

    from alerting.reports import mail_report
    from alerting.rules import parse_rules

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.mails = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rules = parse_rules(
            {
                "notifiers": [
                    {
                        "type": "smtp",
                        "host": "127.0.0.1",
                        "port": server.server_address[1],
                        "sender": "cs@example.com",
                        "recipients": ["m@example.com"],
                    }
                ]
            }
        )
        assert mail_report(daily, rules) == 1
    finally:
        server.shutdown()
        server.server_close()
    msg = email.message_from_bytes(server.mails[0]["data"], policy=email.policy.default)
    htmls = [p for p in msg.walk() if p.get_content_type() == "text/html"]
    assert htmls and b"data:image/png;base64," in htmls[0].get_payload(decode=True)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e)));
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const d = document.createElement('div'); d.id = 'check';
  d.dataset.imgs = imgs.length;
  d.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 100).length;
  d.dataset.errors = window.__errors.length;
  document.body.appendChild(d);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason=f"headless Chromium is not installed: {CHROMIUM_APT}")
def test_report_opens_in_headless_chromium(daily, tmp_path):
    browser = _chromium()
    page = tmp_path / "report.html"
    page.write_text(daily.html.replace("<head>", "<head>" + CHECK, 1), encoding="utf-8")
    shot = tmp_path / "shot.png"
    common = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1000,2400",
        "--enable-logging=stderr",
        "--v=0",
    ]
    run = subprocess.run(
        [*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    check = re.search(
        r'<div id="check" data-imgs="(\d+)" data-loaded="(\d+)" data-errors="(\d+)"', dom.stdout
    )
    assert check, dom.stdout[-1000:]
    imgs, loaded, errors = map(int, check.groups())
    assert imgs == 4 and loaded == 4 and errors == 0
    assert "Uncaught" not in run.stderr + dom.stderr
