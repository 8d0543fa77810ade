"""Douyin Feige and Pinduoduo specifics (one console format, so one parametrised module),
over real HTTP against the sandbox console. The generic checks
(raw equals what the console shows, console faults, late rows, crash safety, no secrets in
logs) are in test_connectors.py; the scraper itself (CSV vs HTML, layout change, re-login)
in test_scrapers.py. Here: the streams key like the console shapes, every batch is
`source=scrape`, a re-read window lands only new or changed rows, a refused login names the
account and the setting to fix, and an Airflow connection (host / login / password) is
enough to configure the console."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from connectors.cli import run_ingest
from connectors.core import landing
from connectors.core.config import load_config, sandbox_overrides
from connectors.core.runner import record_key
from connectors.core.streams import Window
from connectors.platforms import douyin, pinduoduo
from sandbox.server.state import DEFAULT_CREDENTIALS
from sandbox.truth import visible_messages


@pytest.fixture(params=[douyin, pinduoduo], ids=["douyin", "pinduoduo"])
def mod(request):
    """The console-only platform's connector module under test."""
    return request.param


def sandbox_config(platform: str, url: str, **values):
    cfg = load_config(path=Path("/nonexistent/connectors.yaml"), overrides=sandbox_overrides(url))[platform]
    return type(cfg)(platform, {**cfg.values, **values}, cfg.source)


def query(workdir: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_stream_reads_a_console_report_keyed_like_the_stream(mod, console):
    connector = mod.Connector(sandbox_config(mod.PLATFORM, console.url, console_read_timeout_s=45))
    scraper = connector.scraper()
    assert (
        set(connector.streams)
        == set(scraper.streams_map)
        == {
            "sessions",
            "messages",
            "ratings",
            "agents",
            "agent_status",
        }
    )
    for stream in connector.streams.values():
        shape = scraper.shape_for(stream)  # raises when key / time field / format differ
        assert shape.report == stream.name
        assert (stream.freshness, stream.retention, stream.time_format) == ("hourly", None, "iso")
    assert connector.streams["sessions"].lookback > connector.streams["messages"].lookback
    assert scraper.http.policy.read_timeout_s == 45  # an export may take longer than an API call


def test_batches_are_scrape_and_a_rerun_lands_only_new_or_changed_rows(
    mod, workdir, console, sim_data, as_of
):
    earlier = as_of - pd.Timedelta(hours=3)
    console.state.clock.set(earlier, speed=0)
    assert not run_ingest([mod.PLATFORM], None, None, earlier, console.url, show_progress=False)["failures"]
    first = {m.batch_id for _, m in landing.manifests(mod.PLATFORM)}
    console.state.clock.set(as_of, speed=0)
    summary = run_ingest([mod.PLATFORM], None, None, as_of, console.url, show_progress=False)
    assert not summary["failures"]
    assert {r["source"] for r in summary["extracted"]} == {"scrape"}
    assert {m.source for _, m in landing.manifests(mod.PLATFORM)} == {"scrape"}
    assert query(workdir, f"select distinct source from raw._batches where platform = '{mod.PLATFORM}'") == [
        ("scrape",)
    ]

    for name in ("messages", "sessions", "ratings", "agent_status"):
        stream = mod.STREAMS[name]
        landed: dict[str, dict] = {}  # key -> newest landed version, in landing order
        reread = 0
        for directory, manifest in landing.manifests(mod.PLATFORM, name):
            window = Window(pd.Timestamp(manifest.window["since"]), pd.Timestamp(manifest.window["until"]))
            for record in landing.read_records(directory, manifest):
                key = record_key(record, stream.primary_key)
                if manifest.batch_id not in first:
                    # the second run re-read the look-back, but lands a row only if it is new or changed
                    assert landed.get(key) != record, f"{name} {key} landed twice unchanged"
                    reread += key in landed
                landed[key] = record
            assert window.since < window.until
        if name == "sessions":
            assert reread > 0, "no session changed (closed, rated) between the runs"
    truth = visible_messages(sim_data, mod.PLATFORM, as_of)
    truth = truth[truth["sent_at"] >= as_of - pd.Timedelta(days=7) - pd.Timedelta(hours=3)]
    ids = [
        int(i) for (i,) in query(workdir, f"select payload->>'message_id' from raw.{mod.PLATFORM}__messages")
    ]
    assert sorted(ids) == sorted(truth["message_id"].astype(int))


def test_a_session_closed_after_the_first_read_gets_its_close_on_the_next(
    mod, workdir, console, sim_data, as_of
):
    earlier = as_of - pd.Timedelta(hours=3)
    conv = sim_data["conversations"]
    conv = conv[
        (conv["channel"] == mod.PLATFORM)
        & (conv["started_at"] <= earlier)
        & (conv["started_at"] > earlier - pd.Timedelta(hours=12))
        & (conv["first_closed_at"] > earlier)
        & (conv["first_closed_at"] <= as_of)
        & (conv["reopen_count"] == 0)  # the console's 结束时间 is then the one close
    ]
    assert len(conv) > 0
    console.state.clock.set(earlier, speed=0)
    run_ingest([mod.PLATFORM], "sessions", None, earlier, console.url, show_progress=False)
    console.state.clock.set(as_of, speed=0)
    run_ingest([mod.PLATFORM], "sessions", None, as_of, console.url, show_progress=False)
    rows = query(
        workdir,
        f"""
        select _record_key, count(*) as versions,
               arg_max(payload->>'closed_at', _extracted_at) as closed_at
        from raw.{mod.PLATFORM}__sessions group by _record_key
        """,
    )
    by_key = {k: (n, closed) for k, n, closed in rows}
    for cid, closed in zip(conv["conversation_id"].astype(str), conv["first_closed_at"], strict=True):
        versions, closed_at = by_key[cid]
        assert versions == 2
        assert closed_at == closed.floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_refused_console_login_names_the_account_and_not_the_password(mod, workdir, console, as_of):
    wrong = "not-the-console-pass-4711"
    (workdir / "connectors.yaml").write_text(
        yaml.safe_dump({"platforms": {mod.PLATFORM: {"console_password": wrong}}})
    )
    summary = run_ingest([mod.PLATFORM], "ratings", None, as_of, console.url, show_progress=False)
    [failure] = summary["failures"]
    assert failure["stream"] == "ratings"
    assert "login as 'admin' refused" in failure["error"]
    assert f"platforms.{mod.PLATFORM}.console_username / console_password" in failure["error"]
    assert wrong not in json.dumps(summary)
    assert landing.manifests(mod.PLATFORM) == []  # nothing landed


def test_an_airflow_connection_is_enough_to_configure_the_console(
    mod, workdir, console, sim_data, as_of, monkeypatch
):
    connection = {
        "conn_type": "http",
        "host": f"{console.url}/console/{mod.PLATFORM}",
        "login": "admin",
        "password": DEFAULT_CREDENTIALS[mod.PLATFORM]["password"],
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_CSW_{mod.PLATFORM.upper()}", json.dumps(connection))
    config = load_config(path=Path("/nonexistent/connectors.yaml"))[mod.PLATFORM]
    assert "console_url" not in config.values
    connector = mod.Connector(config)
    window = Window(as_of - pd.Timedelta(days=2), as_of)
    pages = list(connector.fetch(mod.STREAMS["ratings"], None, window))
    ratings = sim_data["ratings"]
    ratings = ratings[
        (ratings["channel"] == mod.PLATFORM)
        & (ratings["rated_at"] >= window.since)
        & (ratings["rated_at"] < as_of)
    ]
    assert {p.source for p in pages} == {"scrape"}
    assert sorted(r["rating_id"] for p in pages for r in p.records) == sorted(
        ratings["rating_id"].astype(str)
    )
