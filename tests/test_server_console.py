"""The admin consoles over real HTTP: login with CSRF, session expiry, paged reports that
match the CSV export and the simulation, layout change, console faults."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from bs4 import BeautifulSoup

from sandbox.server.console import CONSOLE_ONLY, LAYOUT_RENAMES, PAGE_SIZE, REPORT_COLUMNS
from sandbox.truth import visible_cutoff

PASSWORD = "sandbox-console-pass"
DOC = Path(__file__).resolve().parents[1] / "docs" / "sandbox" / "console.md"
LOCAL = "Asia/Shanghai"


def csrf_of(html: str) -> str:
    return BeautifulSoup(html, "lxml").find("input", {"name": "csrf_token"})["value"]


def login(url: str, platform: str, password: str = PASSWORD) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{url}/console/{platform}/login", timeout=10)
    page.raise_for_status()
    r = s.post(
        f"{url}/console/{platform}/login",
        data={"username": "admin", "password": password, "csrf_token": csrf_of(page.text)},
        timeout=10,
    )
    r.raise_for_status()
    assert BeautifulSoup(r.text, "lxml").find(id="login-form") is None, "login failed"
    return s


def parse_report(html: str) -> tuple[list[str], list[list[str]], dict]:
    soup = BeautifulSoup(html, "lxml")
    table = soup.find("table", class_="report")
    assert table is not None, "no report table (a login page?)"
    headers = [th.get_text() for th in table.thead.find_all("th")]
    rows = [[td.get_text() for td in tr.find_all("td")] for tr in table.tbody.find_all("tr")]
    info = soup.find(class_="page-info")
    nxt = soup.find("a", rel="next")
    pager = {
        "page": int(info["data-page"]),
        "pages": int(info["data-pages"]),
        "total": int(info["data-total"]),
        "next": nxt["href"] if nxt else None,
    }
    return headers, rows, pager


def read_all_pages(s: requests.Session, url: str, params: dict) -> tuple[list[str], list[list[str]], int]:
    """Follow the pager's next links from page 1; returns headers, rows, page count."""
    r = s.get(url, params=params, timeout=10)
    r.raise_for_status()
    headers, rows, pager = parse_report(r.text)
    pages = 1
    assert pager["page"] == 1
    while pager["next"]:
        r = s.get(requests.compat.urljoin(r.url, pager["next"]), timeout=10)
        r.raise_for_status()
        h, more, pager = parse_report(r.text)
        assert h == headers and len(more) <= PAGE_SIZE
        rows += more
        pages += 1
    assert pages == pager["pages"] and len(rows) == pager["total"]
    return headers, rows, pages


def read_csv(r: requests.Response) -> tuple[list[str], list[list[str]]]:
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.content.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 BOM"
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    return table[0], table[1:]


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=LOCAL).tz_convert("UTC")


# -- login --------------------------------------------------------------------------------
def test_login_with_csrf_sets_an_httponly_session_and_redirects(console):
    s = requests.Session()
    page = s.get(f"{console.url}/console/douyin/login", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    form = BeautifulSoup(page.text, "lxml").find("form", id="login-form")
    assert form["method"] == "post" and form.find("input", {"name": "csrf_token", "type": "hidden"})
    r = s.post(
        f"{console.url}/console/douyin/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": ""},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/douyin/"
    cookie = r.headers["set-cookie"]
    assert "console_sid=" in cookie and "HttpOnly" in cookie and "Path=/console/douyin" in cookie
    home = s.get(f"{console.url}/console/douyin/", timeout=10)
    assert home.status_code == 200 and "reports/sessions" in home.text
    # the platform's own test credentials work on the console-only platforms too
    login(console.url, "pinduoduo", password="sandbox-pdd-pass")


def test_wrong_password_or_csrf_is_refused(console):
    url = f"{console.url}/console/jd/login"
    s = requests.Session()
    token = csrf_of(s.get(url, timeout=10).text)
    bad = s.post(url, data={"username": "admin", "password": "nope", "csrf_token": token}, timeout=10)
    assert bad.status_code == 200 and "console_sid" not in bad.headers.get("set-cookie", "")
    soup = BeautifulSoup(bad.text, "lxml")
    assert soup.find(id="login-form") and soup.find(class_="error").get_text() == "账号或密码错误"
    # the token was used up by the failed attempt: reusing it is refused
    reused = s.post(url, data={"username": "admin", "password": PASSWORD, "csrf_token": token}, timeout=10)
    assert reused.status_code == 403 and BeautifulSoup(reused.text, "lxml").find(id="login-form")
    missing = s.post(url, data={"username": "admin", "password": PASSWORD}, timeout=10)
    assert missing.status_code == 403
    other = csrf_of(s.get(f"{console.url}/console/taobao/login", timeout=10).text)
    cross = s.post(url, data={"username": "admin", "password": PASSWORD, "csrf_token": other}, timeout=10)
    assert cross.status_code == 403
    assert "console_sid" not in s.cookies
    # a fresh token from the refused page works
    ok = s.post(
        url, data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(cross.text)}, timeout=10
    )
    assert ok.status_code == 200 and BeautifulSoup(ok.text, "lxml").find(id="login-form") is None


def test_report_and_export_without_session_redirect_to_login(console):
    s = requests.Session()
    for path in ("reports/sessions?start=2026-11-10%2000:00", "export/messages.csv", ""):
        r = s.get(f"{console.url}/console/jd/{path}", allow_redirects=False, timeout=10)
        assert r.status_code == 302, path
        assert r.headers["location"].startswith("/console/jd/login?next=%2Fconsole%2Fjd%2F")
    followed = s.get(f"{console.url}/console/jd/reports/sessions", timeout=10)
    assert followed.url.split("?")[0].endswith("/console/jd/login")
    assert BeautifulSoup(followed.text, "lxml").find(id="login-form")
    # a session of another platform does not open this console
    other = login(console.url, "taobao")
    r = other.get(f"{console.url}/console/jd/reports/sessions", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    # logging in from the redirect lands on the report that was asked for
    page = s.get(f"{console.url}/console/jd/reports/agents", timeout=10)
    nxt = BeautifulSoup(page.text, "lxml").find("input", {"name": "next"})["value"]
    r = s.post(
        f"{console.url}/console/jd/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": nxt},
        timeout=10,
    )
    assert r.url.endswith("/console/jd/reports/agents") and parse_report(r.text)[1]


def test_sessions_expire_on_the_simulated_and_the_wall_clock(console):
    url = f"{console.url}/console/meiqia/reports/agents"
    requests.post(
        f"{console.url}/console/_settings", json={"session_ttl_s": 60}, timeout=10
    ).raise_for_status()
    s = login(console.url, "meiqia")
    assert s.get(url, allow_redirects=False, timeout=10).status_code == 200
    requests.post(f"{console.url}/_sandbox/clock", json={"advance_s": 59}, timeout=10).raise_for_status()
    assert s.get(url, allow_redirects=False, timeout=10).status_code == 200
    requests.post(f"{console.url}/_sandbox/clock", json={"advance_s": 2}, timeout=10).raise_for_status()
    r = s.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "expired=1" in r.headers["location"]
    page = s.get(url, timeout=10)
    assert BeautifulSoup(page.text, "lxml").find(class_="error").get_text() == "登录已过期，请重新登录"

    settings = {"session_ttl_s": 0.5, "session_clock": "wall"}
    requests.post(f"{console.url}/console/_settings", json=settings, timeout=10).raise_for_status()
    s = login(console.url, "meiqia")
    assert s.get(url, allow_redirects=False, timeout=10).status_code == 200
    time.sleep(0.6)
    assert s.get(url, allow_redirects=False, timeout=10).status_code == 302
    bad = requests.post(f"{console.url}/console/_settings", json={"session_clock": "moon"}, timeout=10)
    assert bad.status_code == 400


# -- reports --------------------------------------------------------------------------------
def sim_ids(sim_data, platform: str, report: str, as_of, start=None, end=None) -> list[int]:
    """What the console must show: the channel's records up to the visibility cutoff (no
    retention), in [start, end), ordered by (time, id)."""
    _, upper = visible_cutoff(platform, as_of)
    table, tcol, idcol = {
        "messages": ("messages", "sent_at", "message_id"),
        "sessions": ("conversations", "started_at", "conversation_id"),
        "ratings": ("ratings", "rated_at", "rating_id"),
    }[report]
    f = sim_data[table]
    f = f[(f["channel"] == platform) & (f[tcol] <= upper)]
    if report == "messages" and platform == "wecom":
        f = f[f["sender_type"] != "bot"]
    if start is not None:
        f = f[f[tcol] >= start]
    if end is not None:
        f = f[f[tcol] < end]
    return f.sort_values([tcol, idcol])[idcol].tolist()


@pytest.mark.parametrize(
    "platform,report,id_col",
    [
        ("meiqia", "messages", "消息ID"),
        ("wecom", "messages", "消息ID"),  # the whole history, not only the API's 3 days
        ("taobao", "sessions", "会话ID"),  # D+1: nothing from today
        ("zendesk", "ratings", "Rating ID"),
    ],
)
def test_paging_returns_every_record_once_and_equals_the_csv(
    console, sim_data, as_of, platform, report, id_col
):
    s = login(console.url, platform)
    headers, rows, pages = read_all_pages(s, f"{console.url}/console/{platform}/reports/{report}", {})
    assert pages > 1 or report == "ratings"
    ids = [int(r[headers.index(id_col)]) for r in rows]
    assert len(ids) == len(set(ids))
    assert ids == sim_ids(sim_data, platform, report, as_of)
    csv_headers, csv_rows = read_csv(
        s.get(f"{console.url}/console/{platform}/export/{report}.csv", timeout=30)
    )
    assert csv_headers == headers == REPORT_COLUMNS[platform][report]
    assert csv_rows == rows
    if platform == "wecom":
        oldest = local(rows[0][headers.index("发送时间")])
        assert oldest < as_of - pd.Timedelta(days=3), "WeCom console must backfill beyond 3 days"
    if platform == "taobao":
        today = as_of.tz_convert(LOCAL).strftime("%Y-%m-%d")
        assert not [r for r in rows if r[headers.index("开始时间")].startswith(today)]


def test_csv_and_html_columns_equal_the_documented_columns(console):
    doc = DOC.read_text(encoding="utf-8")
    window = {"start": "2026-11-10 00:00", "end": "2026-11-10 12:00"}
    for platform, reports in REPORT_COLUMNS.items():
        s = login(console.url, platform)
        for report, columns in reports.items():
            assert f"| `{platform}` | `{report}` | {', '.join(columns)} |" in doc, (platform, report)
            r = s.get(f"{console.url}/console/{platform}/export/{report}.csv", params=window, timeout=10)
            assert read_csv(r)[0] == columns
            page = s.get(f"{console.url}/console/{platform}/reports/{report}", params=window, timeout=10)
            assert parse_report(page.text)[0] == columns
    assert "sessions" not in REPORT_COLUMNS["wecom"] and "sessions" not in REPORT_COLUMNS["wechat_oa"]
    s = login(console.url, "wecom")
    assert s.get(f"{console.url}/console/wecom/reports/sessions", timeout=10).status_code == 404


def test_layout_change_renames_the_agent_header(console):
    on = {"layout_change": {"douyin": True}}
    requests.post(f"{console.url}/console/_settings", json=on, timeout=10).raise_for_status()
    s = login(console.url, "douyin")
    headers = parse_report(s.get(f"{console.url}/console/douyin/reports/sessions", timeout=10).text)[0]
    expected = [LAYOUT_RENAMES.get(c, c) for c in REPORT_COLUMNS["douyin"]["sessions"]]
    assert headers == expected and "接待客服" in headers and "客服" not in headers
    csv_headers = read_csv(s.get(f"{console.url}/console/douyin/export/messages.csv", timeout=10))[0]
    assert "接待客服" in csv_headers and csv_headers != REPORT_COLUMNS["douyin"]["messages"]
    # other consoles keep their layout
    p = login(console.url, "pinduoduo")
    headers = parse_report(p.get(f"{console.url}/console/pinduoduo/reports/sessions", timeout=10).text)[0]
    assert headers == REPORT_COLUMNS["pinduoduo"]["sessions"]
    off = {"layout_change": {"douyin": False}}
    requests.post(f"{console.url}/console/_settings", json=off, timeout=10).raise_for_status()
    headers = parse_report(s.get(f"{console.url}/console/douyin/reports/sessions", timeout=10).text)[0]
    assert headers == REPORT_COLUMNS["douyin"]["sessions"]


@pytest.mark.parametrize("platform", CONSOLE_ONLY)
def test_console_only_platforms_show_the_simulation(console, sim_data, as_of, platform):
    start, end = "2026-11-10 00:00", "2026-11-11 12:00"
    lo, hi = local(start), local(end)
    s = login(console.url, platform)
    base = f"{console.url}/console/{platform}"
    conv = sim_data["conversations"].set_index("conversation_id")
    accounts = sim_data["agent_accounts"].set_index("agent_id")["account_id"]

    h, sessions = read_csv(
        s.get(f"{base}/export/sessions.csv", params={"start": start, "end": end}, timeout=10)
    )
    sessions = pd.DataFrame(sessions, columns=h)
    ids = sessions["会话ID"].astype(int)
    assert ids.tolist() == sim_ids(sim_data, platform, "sessions", as_of, lo, hi)
    truth = conv.loc[ids]
    cust_col = REPORT_COLUMNS[platform]["sessions"][1]
    assert (sessions[cust_col].to_numpy() == truth["platform_user_id"].to_numpy()).all()
    started = pd.to_datetime(sessions["开始时间"]).dt.tz_localize(LOCAL).dt.tz_convert("UTC")
    assert (started.to_numpy() - truth["started_at"].to_numpy() <= pd.Timedelta(0)).all()
    assert (truth["started_at"].to_numpy() - started.to_numpy() < pd.Timedelta(seconds=1)).all()
    answered = truth["first_response_at"].to_numpy() <= as_of
    frt = pd.to_numeric(sessions["首次响应时长(秒)"], errors="coerce").to_numpy()
    assert (abs(frt[answered] - truth["frt_s"].to_numpy()[answered]) <= 0.5).all()
    assert pd.isna(frt[~answered]).all()
    agent = truth["first_agent_id"].where(truth["assigned_at"].to_numpy() <= as_of).map(accounts).fillna("")
    assert (sessions["客服"].to_numpy() == agent.to_numpy()).all()

    h, messages = read_csv(
        s.get(f"{base}/export/messages.csv", params={"start": start, "end": end}, timeout=10)
    )
    messages = pd.DataFrame(messages, columns=h)
    assert messages["消息ID"].astype(int).tolist() == sim_ids(sim_data, platform, "messages", as_of, lo, hi)
    truth = sim_data["messages"].set_index("message_id").loc[messages["消息ID"].astype(int)]
    assert (messages["会话ID"].astype(int).to_numpy() == truth["conversation_id"].to_numpy()).all()
    roles = {"客户": "customer", "客服": "agent", "机器人": "bot", "系统": "system"}
    assert (messages["发送方"].map(roles).to_numpy() == truth["sender_type"].astype(str).to_numpy()).all()
    assert (messages["客服"].to_numpy() == truth["agent_id"].map(accounts).fillna("").to_numpy()).all()
    assert set(messages["事件"]) <= {"", "转人工", "接入", "转接", "结束会话", "重新打开"}

    h, ratings = read_csv(
        s.get(f"{base}/export/ratings.csv", params={"start": start, "end": end}, timeout=10)
    )
    rated = [int(r[0]) for r in ratings]
    assert rated == sim_ids(sim_data, platform, "ratings", as_of, lo, hi)
    _, agents, _ = parse_report(s.get(f"{base}/reports/agents", timeout=10).text)
    assert [a[0] for a in agents] == sorted(
        accounts[sim_data["agent_accounts"]["channel"].eq(platform).to_numpy()]
    )
    _, status, _ = parse_report(
        s.get(f"{base}/reports/agent_status", params={"start": start}, timeout=10).text
    )
    assert status and all(row[1] == "在线" for row in status)


def test_window_follows_the_clock_and_bad_parameters_are_400(console, sim_data, as_of):
    requests.post(f"{console.url}/console/_settings", json={"session_ttl_s": 86400}, timeout=10)
    s = login(console.url, "jd")
    url = f"{console.url}/console/jd/reports/messages"
    params = {"start": "2026-11-11 15:00"}
    before = parse_report(s.get(url, params=params, timeout=10).text)[2]["total"]
    requests.post(f"{console.url}/_sandbox/clock", json={"advance_s": 3600}, timeout=10).raise_for_status()
    after = parse_report(s.get(url, params=params, timeout=10).text)[2]["total"]
    expected = sim_ids(sim_data, "jd", "messages", as_of + pd.Timedelta(hours=1), local(params["start"]))
    assert after == len(expected) > before
    for bad in (
        {"start": "11/10/2026"},
        {"page": "x"},
        {"page": "0"},
        {"start": "2026-11-11", "end": "2026-11-10"},
    ):
        r = s.get(url, params=bad, timeout=10)
        assert r.status_code == 400 and BeautifulSoup(r.text, "lxml").find(class_="error"), bad
    assert s.get(f"{console.url}/console/jd/reports/nope", timeout=10).status_code == 404
    assert s.get(f"{console.url}/console/nowhere/login", timeout=10).status_code == 404
    beyond = parse_report(s.get(url, params={**params, "page": 999}, timeout=10).text)
    assert beyond[1] == [] and beyond[2]["next"] is None


# -- faults ----------------------------------------------------------------------------------
def test_api_off_does_not_touch_the_console_but_console_faults_do(console):
    faults = f"{console.url}/_sandbox/faults"
    url = f"{console.url}/console/taobao/reports/agents"
    s = login(console.url, "taobao")
    requests.post(f"{faults}/taobao", json={"api_off": True, "permission_denied": True}, timeout=10)
    assert s.get(url, timeout=10).status_code == 200

    requests.post(f"{faults}/console_taobao", json={"server_errors": 1}, timeout=10).raise_for_status()
    r = s.get(url, timeout=10)
    assert r.status_code == 502 and "text/html" in r.headers["content-type"]
    assert s.get(url, timeout=10).status_code == 200

    r = s.get(url, headers={"X-Sandbox-Fault": "rate_limit=1,retry_after_s=3"}, timeout=10)
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert s.get(url, timeout=10).status_code == 200

    # douyin has no API: its own fault key drives its console
    d = login(console.url, "douyin")
    requests.post(f"{faults}/douyin", json={"error_codes": 1, "api_off": True}, timeout=10).raise_for_status()
    assert d.get(f"{console.url}/console/douyin/reports/agents", timeout=10).status_code == 503
    assert d.get(f"{console.url}/console/douyin/reports/agents", timeout=10).status_code == 200

    # sessions die mid-scrape after N more report requests
    requests.post(f"{faults}/console_taobao", json={"expire_tokens_after": 2}, timeout=10).raise_for_status()
    assert s.get(url, allow_redirects=False, timeout=10).status_code == 200
    r = s.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "expired=1" in r.headers["location"]
    fired = requests.get(faults, timeout=10).json()["fired"]
    assert fired["console_taobao"]["server_errors"] == 1 and fired["console_taobao"]["expire_tokens"] == 1


def test_export_speed(console, sim_data):
    """One large export, timed (rows/s is printed for the report)."""
    s = login(console.url, "taobao")
    t0 = time.perf_counter()
    r = s.get(f"{console.url}/console/taobao/export/messages.csv", timeout=60)
    elapsed = time.perf_counter() - t0
    _, rows = read_csv(r)
    assert len(rows) > 5000
    rate = len(rows) / elapsed
    print(f"console CSV export: {len(rows)} rows in {elapsed:.3f} s = {rate:,.0f} rows/s")
    assert rate > 20_000
    assert re.fullmatch(
        r'attachment; filename="taobao_messages_begin_now\.csv"', r.headers["content-disposition"]
    )
