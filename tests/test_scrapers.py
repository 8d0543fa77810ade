"""The console scrapers over real HTTP against the sandbox: Douyin and Pinduoduo ingest end to
end, CSV export and HTML paging agree, an expired session re-logs in once, a renamed header is
a clear error that lands nothing, WeCom's console records key like its API's, the backfill and
the API fallback land `source=scrape`, and no secret reaches a log line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import requests

from connectors.cli import run_ingest
from connectors.core import landing
from connectors.core.config import load_config, sandbox_overrides
from connectors.core.http import ApiUnavailable
from connectors.core.loader import Loader
from connectors.core.runner import extract
from connectors.core.streams import Window
from connectors.platforms import all_streams, douyin, pinduoduo, wecom
from connectors.scrapers import (
    COLUMN_MAPS,
    ScraperAuthError,
    ScraperError,
    ScraperLayoutError,
    backfill,
    console_scraper_for,
)
from sandbox.server.console import REPORT_COLUMNS
from sandbox.truth import visible_messages, visible_ratings

PASSWORDS = ("sandbox-console-pass", "sandbox-douyin-pass", "sandbox-pdd-pass")
HISTORY = pd.Timedelta(days=7)  # the runner's first-run history (initial_history)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    for name in ("CSW_WAREHOUSE", "CSW_CONNECTORS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_CSW_")]:
        monkeypatch.delenv(name)
    return tmp_path


def configs(url: str):
    return load_config(path=Path("/nonexistent/connectors.yaml"), overrides=sandbox_overrides(url))


def settings(url: str, **values) -> None:
    requests.post(f"{url}/console/_settings", json=values, timeout=10).raise_for_status()


def rows(db: str, sql: str) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def iso(ts: pd.Series) -> set[str]:
    return set(ts.dt.floor("s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_column_maps_match_the_documented_console_columns():
    for platform, reports in REPORT_COLUMNS.items():
        assert set(COLUMN_MAPS[platform]) == set(reports), platform
        for report, headers in reports.items():
            assert list(COLUMN_MAPS[platform][report]) == headers, (platform, report)


@pytest.mark.parametrize("module", [douyin, pinduoduo], ids=["douyin", "pinduoduo"])
def test_console_only_platforms_ingest_what_the_console_shows(module, console, data_dir, sim_data, as_of):
    platform = module.PLATFORM
    summary = run_ingest([platform], None, None, until=as_of, sandbox_url=console.url, show_progress=False)
    assert summary["failures"] == []
    assert {r["stream"] for r in summary["extracted"]} == set(module.STREAMS)
    db = summary["warehouse"]
    since = as_of - HISTORY

    msgs = visible_messages(sim_data, platform, as_of)
    msgs = msgs[msgs["sent_at"] >= since]
    got = rows(db, f"select payload->>'message_id', payload->>'sent_at' from raw.{platform}__messages")
    assert len(got) == len(msgs) > 0
    assert {m for m, _ in got} == set(msgs["message_id"].astype(str))
    assert {t for _, t in got} == iso(msgs["sent_at"])
    senders = {r[0] for r in rows(db, f"select distinct payload->>'sender' from raw.{platform}__messages")}
    assert senders <= {"customer", "agent", "bot", "system"}

    rat = visible_ratings(sim_data, platform, as_of)
    got = rows(db, f"select payload->>'rating_id', (payload->>'rating')::int from raw.{platform}__ratings")
    assert sorted(got) == sorted(zip(rat["rating_id"].astype(str), rat["csat"].astype(int), strict=True))

    conv = sim_data["conversations"]
    conv = conv[(conv["channel"] == platform) & (conv["started_at"] <= as_of) & (conv["started_at"] >= since)]
    got = rows(db, f"select payload->>'session_id' from raw.{platform}__sessions")
    assert sorted(g for (g,) in got) == sorted(conv["conversation_id"].astype(str))

    accounts = sim_data["agent_accounts"]
    accounts = accounts[accounts["channel"] == platform].set_index("agent_id")["account_id"]
    status = sim_data["agent_status"]
    status = status[(status["channel"] == platform) & (status["started_at"] <= as_of)]
    got = rows(
        db, f"select payload->>'agent_account', payload->>'started_at' from raw.{platform}__agent_status"
    )
    expected = zip(
        status["agent_id"].map(accounts), status["started_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), strict=True
    )
    assert sorted(got) == sorted(expected)
    got = rows(db, f"select payload->>'agent_account' from raw.{platform}__agents")
    assert sorted(g for (g,) in got) == sorted(accounts)

    quarantined = rows(db, f"select count(*) from raw._quarantine where platform = '{platform}'")
    assert quarantined == [(0,)]


def test_console_only_batches_are_marked_scrape(console, data_dir, as_of):
    run_ingest(["douyin"], "messages", as_of - pd.Timedelta(hours=2), as_of, console.url, show_progress=False)
    assert {m.source for _, m in landing.manifests("douyin", "messages")} == {"scrape"}


def test_csv_export_and_html_paging_give_the_same_records(console, as_of):
    scraper = console_scraper_for("douyin", configs(console.url)["douyin"])
    window = Window(as_of - pd.Timedelta(hours=10), as_of)
    for name in ("messages", "sessions", "agent_status"):
        stream = douyin.STREAMS[name]
        pages_before = scraper.stats["pages"]
        via_csv = [r for recs in scraper.records(stream, window, "csv") for r in recs]
        assert scraper.stats["pages"] == pages_before + 1
        via_html = [r for recs in scraper.records(stream, window, "html") for r in recs]
        assert via_csv == via_html, name
    html_pages = scraper.stats["pages"]
    messages = [r for recs in scraper.records(douyin.STREAMS["messages"], window, "html") for r in recs]
    assert len(messages) > 200 and scraper.stats["pages"] - html_pages == -(-len(messages) // 100)
    assert scraper.stats["logins"] == 1


def test_an_expired_session_logs_in_again_once(console, as_of):
    settings(console.url, session_ttl_s=60)
    scraper = console_scraper_for("pinduoduo", configs(console.url)["pinduoduo"])
    window = Window(as_of - pd.Timedelta(hours=2), as_of)
    first = [r for p in scraper.fetch(pinduoduo.STREAMS["messages"], window) for r in p.records]
    requests.post(f"{console.url}/_sandbox/clock", json={"advance_s": 120}, timeout=10).raise_for_status()
    again = [r for p in scraper.fetch(pinduoduo.STREAMS["messages"], window) for r in p.records]
    assert first == again and len(first) > 0
    assert scraper.stats["logins"] == 2
    # a session that dies at once: re-login once, then a clear error
    settings(console.url, session_ttl_s=0.001, session_clock="wall")
    with pytest.raises(ScraperAuthError, match="login page right after logging in again"):
        list(scraper.fetch(pinduoduo.STREAMS["messages"], window))
    assert scraper.stats["logins"] == 3


def test_a_renamed_header_is_a_layout_error_and_nothing_lands(console, data_dir, as_of):
    url = console.url
    scraper = console_scraper_for("douyin", configs(url)["douyin"])
    window = Window(as_of - pd.Timedelta(hours=10), as_of)
    stream = douyin.STREAMS["messages"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scraper, "mode", "html")
        pages = scraper.fetch(stream, window)
        first = next(pages)  # pages 1-2 read before the layout changes
        assert len(first.records) == 100 and first.source == "scrape"
        settings(url, layout_change={"douyin": True})
        with pytest.raises(ScraperLayoutError) as info:
            next(pages)  # page 3 has the new header: an error, not rows
    err = info.value
    assert (err.platform, err.report) == ("douyin", "messages")
    assert err.expected == REPORT_COLUMNS["douyin"]["messages"] and "接待客服" in err.found
    assert "客服" in str(err) and "接待客服" in str(err) and "COLUMN_MAPS['douyin']['messages']" in str(err)
    with pytest.raises(ScraperLayoutError, match="CSV export"):
        list(scraper.fetch(stream, window))

    summary = run_ingest(["douyin"], None, None, until=as_of, sandbox_url=url, show_progress=False)
    failed = {f["stream"]: f["error"] for f in summary["failures"]}
    assert set(failed) == {"sessions", "messages", "ratings", "agent_status"}  # agents has no 客服 column
    assert all("header row does not match" in e for e in failed.values())
    assert landing.manifests("douyin", "messages") == []
    # every declared stream has its (empty) raw table; nothing from the bad pages landed
    assert rows(summary["warehouse"], "select count(*) from raw.douyin__messages") == [(0,)]
    assert rows(summary["warehouse"], "select count(*) from raw.douyin__agents")[0][0] > 0


def test_secrets_never_reach_the_logs(console, as_of, caplog):
    caplog.set_level(logging.DEBUG)
    settings(console.url, session_ttl_s=60)
    cfg = configs(console.url)["douyin"]
    scraper = console_scraper_for("douyin", cfg)
    window = Window(as_of - pd.Timedelta(hours=1), as_of)
    list(scraper.fetch(douyin.STREAMS["ratings"], window))
    requests.post(f"{console.url}/_sandbox/clock", json={"advance_s": 120}, timeout=10).raise_for_status()
    list(scraper.fetch(douyin.STREAMS["ratings"], window))  # re-login
    assert scraper.stats["logins"] == 2
    cookies = [c.value for c in scraper.http.session.cookies]
    assert cookies
    bad = console_scraper_for(
        "douyin", type(cfg)("douyin", {**cfg.values, "console_password": "wrong-pass-1234"})
    )
    with pytest.raises(ScraperAuthError, match="login as 'admin' refused") as info:
        list(bad.fetch(douyin.STREAMS["ratings"], window))
    assert "wrong-pass-1234" not in str(info.value)
    assert "session expired" in caplog.text and "logged in as admin" in caplog.text
    for secret in (*PASSWORDS, "wrong-pass-1234", *cookies):
        assert secret not in caplog.text
        assert secret not in repr(scraper)


def test_wecom_console_records_key_like_the_api(console, as_of):
    cfg = configs(console.url)["wecom"]
    scraper = console_scraper_for("wecom", cfg)
    window = Window(as_of - pd.Timedelta(hours=3), as_of)
    scraped = {r["msgid"]: r for recs in scraper.records(wecom.STREAMS["messages"], window) for r in recs}
    api = wecom.Connector(cfg)
    from_api = [r for p in api.fetch(wecom.STREAMS["messages"], None, window) for r in p.records]
    since, until = window.since.timestamp(), window.until.timestamp()
    in_window = {r["msgid"]: r for r in from_api if since <= r["send_time"] < until}
    assert set(scraped) == set(in_window)
    assert len(scraped) > 100 and {r["origin"] for r in scraped.values()} == {3, 4, 5}
    for msgid, rec in in_window.items():
        mine = scraped[msgid]
        for key in ("send_time", "origin", "msgtype", "external_userid", "servicer_userid", "text"):
            assert mine.get(key) == rec.get(key), (msgid, key)
        if rec["origin"] == 4:
            assert mine["event"]["change_type"] == rec["event"]["change_type"]
    servicers = [r for recs in scraper.records(wecom.STREAMS["servicers"], window) for r in recs]
    polled = [r for p in api.fetch(wecom.STREAMS["servicers"], None, window) for r in p.records]
    assert sorted(servicers, key=lambda r: r["userid"]) == sorted(polled, key=lambda r: r["userid"])


def test_wecom_backfill_lands_history_older_than_the_api_keeps(console, data_dir, sim_data, as_of):
    cfg = configs(console.url)["wecom"]
    landing.write_batch("wecom", "messages", [], cursor_after="CURSOR-FROM-THE-API")  # an earlier API sync
    since, until = as_of - pd.Timedelta(days=6), as_of - pd.Timedelta(days=3)
    result = backfill("wecom", "messages", since, until, config=cfg)
    assert result.source == "scrape" and result.batches == 3
    newest = landing.latest_manifest("wecom", "messages")
    assert newest.source == "scrape" and newest.cursor_after == "CURSOR-FROM-THE-API"
    m = sim_data["messages"]
    m = m[
        (m["channel"] == "wecom")
        & (m["sender_type"] != "bot")
        & (m["sent_at"] >= since)
        & (m["sent_at"] < until)
    ]
    assert result.rows == len(m) > 0
    db = str(data_dir / "w.duckdb")
    with Loader(db, all_streams()) as loader:
        loader.load_pending()
    got = rows(db, "select payload->>'msgid', _source from raw.wecom__messages")
    assert {g for g, _ in got} == {f"from_msgid_{i}" for i in m["message_id"]}
    assert {s for _, s in got} == {"scrape"}
    assert rows(db, "select count(*) from ops.events where kind = 'console_backfill'") == [(1,)]


def test_api_fallback_lands_scrape_batches_with_an_event(console, data_dir, as_of):
    class WecomWithScraper(wecom.Connector):  # what the lead wires in wecom.py
        def scraper(self):
            return console_scraper_for("wecom", self.config)

    url = console.url
    requests.post(f"{url}/_sandbox/faults/wecom", json={"api_off": True}, timeout=10).raise_for_status()
    connector = WecomWithScraper(configs(url)["wecom"])
    result = extract(connector, wecom.STREAMS["messages"], until=as_of, initial_history=pd.Timedelta(hours=6))
    assert result.source == "scrape" and result.rows > 0
    assert [e["kind"] for e in result.events] == ["fallback_used"]
    db = str(data_dir / "w.duckdb")
    with Loader(db, all_streams()) as loader:
        loader.load_pending()
    assert rows(db, "select distinct source from raw._batches") == [("scrape",)]
    assert rows(db, "select kind, severity from ops.events") == [("fallback_used", "warning")]


def test_console_faults_are_retried_and_refusals_are_clear(console, as_of):
    url = console.url
    fault = {"server_errors": 1, "rate_limit": 1, "error_codes": 1, "retry_after_s": 0}
    requests.post(f"{url}/_sandbox/faults/douyin", json=fault, timeout=10).raise_for_status()
    scraper = console_scraper_for("douyin", configs(url)["douyin"])
    window = Window(as_of - pd.Timedelta(hours=2), as_of)
    records = [r for p in scraper.fetch(douyin.STREAMS["ratings"], window) for r in p.records]
    assert records and scraper.http.stats["retries"] == 3
    requests.post(f"{url}/_sandbox/faults/console_douyin", json={"permission_denied": True}, timeout=10)
    with pytest.raises(ScraperError, match="HTTP 403") as info:
        list(scraper.fetch(douyin.STREAMS["ratings"], window))
    assert not isinstance(info.value, ApiUnavailable)  # the console is the fallback: nothing behind it
