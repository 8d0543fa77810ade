"""Meiqia connector specifics against the sandbox (the generic checks are in
tests/test_connectors.py): the token (refused credentials, a refused workbench token is a
`CredentialsExpired`, one refresh on expiry), window parameters, the per-conversation path,
the ratings mapping in staging, and the console fallback giving the API's rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from connectors.cli import run_ingest
from connectors.core.config import ConfigError, load_config, sandbox_overrides
from connectors.core.http import ConnectorError, CredentialsExpired
from connectors.core.runner import extract
from connectors.core.streams import Window
from connectors.platforms.meiqia import STREAMS, Connector, window_params
from csw.transform import run_dbt
from sandbox.server.platforms.meiqia import CONV_BASE, MSG_BASE
from sandbox.truth import conversations_at, visible_messages

P = "meiqia"


def connector(sandbox, **settings) -> Connector:
    config = load_config(overrides=sandbox_overrides(sandbox.url))[P]
    config.values.update(settings)
    return Connector(config)


def ingest(sandbox, workdir, until, stream=None, **settings) -> dict:
    if settings:
        lines = "".join(f"    {k}: {v}\n" for k, v in settings.items())
        (workdir / "connectors.yaml").write_text(f"platforms:\n  {P}:\n{lines}")
    summary = run_ingest([P], stream, None, until, sandbox.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    return summary


def query(workdir, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def records(pages) -> list[dict]:
    return [r for p in pages for r in p.records]


# -- auth ------------------------------------------------------------------------------------
def test_refused_credentials_name_the_app_and_what_to_check(workdir, sandbox, as_of):
    c = connector(sandbox, secret="wrong-secret")
    window = Window(as_of - pd.Timedelta(hours=1), as_of)
    with pytest.raises(ConnectorError, match="mq-sandbox-app") as info:
        records(c.fetch(STREAMS["agents"], None, window))
    assert "app_id and secret" in str(info.value) and "wrong-secret" not in str(info.value)


def test_a_refused_workbench_token_is_credentials_expired_with_the_renewal_step(workdir, sandbox, as_of):
    """A token issued by hand in the workbench (`access_token`) cannot be refreshed by the
    connector: Meiqia refusing it is a clear error naming the account and the renewal step."""
    c = connector(sandbox, access_token="a-revoked-workbench-token")
    with pytest.raises(CredentialsExpired) as info:
        records(c.fetch(STREAMS["agents"], None, Window(as_of - pd.Timedelta(hours=1), as_of)))
    message = str(info.value)
    assert "meiqia" in message and sandbox.url in message
    assert "设置 > 开发者 > APIs" in message and "platforms.meiqia.access_token" in message
    assert "a-revoked-workbench-token" not in message


def test_an_expired_token_is_refreshed_once(workdir, sandbox, as_of):
    c = connector(sandbox, page_size=50)
    window = Window(as_of - pd.Timedelta(hours=6), as_of)
    sandbox.state.faults.set(P, expire_tokens_after=2)
    got = records(c.fetch(STREAMS["messages"], None, window))
    assert got and c.http.stats["token_refreshes"] == 1
    assert sandbox.state.faults.snapshot()["fired"][P]["expire_tokens"] == 1


def test_unknown_messages_mode_is_a_config_error(sandbox):
    with pytest.raises(ConfigError, match="per_conversation"):
        connector(sandbox, messages_mode="webhook")


# -- windows ---------------------------------------------------------------------------------
def test_window_parameters_are_local_half_open_seconds():
    window = Window(pd.Timestamp("2026-11-11 07:59:59.400Z"), pd.Timestamp("2026-11-11 08:00:00.000Z"))
    assert window_params(window) == {"start_time": "2026-11-11 15:59:59", "end_time": "2026-11-11 16:00:01"}
    for stream in STREAMS.values():  # Meiqia takes windows of at most 31 days
        assert stream.max_window <= pd.Timedelta(days=31)


def test_windows_are_asked_as_the_api_allows(workdir, sandbox, as_of):
    """Every request the runner makes for a 3-day history stays within the API's limits."""
    c = connector(sandbox, page_size=300)
    asked = []
    original = c.http.json

    def spy(method, url, **kwargs):
        asked.append(kwargs.get("params") or {})
        return original(method, url, **kwargs)

    c.http.json = spy
    extract(c, STREAMS["messages"], until=as_of, initial_history=pd.Timedelta(days=3))
    windows = {(p["start_time"], p["end_time"]) for p in asked if "start_time" in p}
    assert len(windows) == 3
    for start, end in windows:
        span = pd.Timestamp(end) - pd.Timestamp(start)
        assert pd.Timedelta(0) < span <= pd.Timedelta(days=1, seconds=1)
    assert all(1 <= p["per_page"] <= 1000 and p["page"] >= 1 for p in asked)


# -- the per-conversation path ------------------------------------------------------------------
def test_per_conversation_mode_lands_the_messages_of_ended_conversations(workdir, sandbox, sim_data, as_of):
    """Meiqia writes a conversation record when the conversation ends, so this path lands the
    messages of every conversation the API lists as ended (`state.conversations` status
    closed; see the note in docs/connectors/meiqia.md on conversations whose reopen is still
    to come), each exactly once."""
    ingest(sandbox, workdir, as_of, stream="messages", messages_mode="per_conversation")
    sql = f"select cast(payload->>'id' as bigint) - {MSG_BASE} as id from raw.{P}__messages"
    got = query(workdir, sql)["id"]
    c = sandbox.state.conversations(P)
    ended = set(c.loc[c["status"] == "closed", "conversation_id"])
    m = visible_messages(sim_data, P, as_of)
    expected = set(m.loc[m["conversation_id"].isin(ended), "message_id"].astype(int))
    assert not got.duplicated().any()
    assert set(got) == expected and len(expected) > 1000


def test_per_conversation_and_bulk_records_agree(workdir, sandbox, as_of):
    window = Window(as_of - pd.Timedelta(hours=8), as_of - pd.Timedelta(hours=2))
    per_conv = {
        r["id"]: r
        for r in records(
            connector(sandbox, messages_mode="per_conversation").fetch(STREAMS["messages"], None, window)
        )
    }
    bulk = {r["id"]: r for r in records(connector(sandbox).fetch(STREAMS["messages"], None, window))}
    common = set(per_conv) & set(bulk)
    assert len(common) > 100
    assert all(per_conv[i] == bulk[i] for i in common)


# -- staging: comment_level -> three_level ---------------------------------------------------------
def test_ratings_are_three_level_and_messages_get_their_visitor(workdir, sandbox, sim_data, as_of):
    ingest(sandbox, workdir, as_of)
    proc = run_dbt(["build", "--select", "stg_meiqia__ratings", "stg_meiqia__messages"], as_of=as_of)
    assert proc.returncode == 0, proc.stdout[-3000:]
    got = query(
        workdir, "select conversation_id, rating_scale, rating_raw, nps from staging.stg_meiqia__ratings"
    )
    truth = conversations_at(sim_data, as_of)
    truth = truth[(truth["channel"] == P) & (truth["status"] == "closed") & truth["csat"].notna()]
    expected = np.select([truth["csat"] >= 4, truth["csat"] == 3], ["good", "medium"], "bad")
    want = dict(zip("meiqia:" + (truth["conversation_id"] + CONV_BASE).astype(str), expected, strict=True))
    assert dict(zip(got["conversation_id"], got["rating_raw"], strict=True)) == want
    assert set(got["rating_scale"]) == {"three_level"} and got["nps"].isna().all()
    msgs = query(workdir, "select customer_key, event_type, sender_type from staging.stg_meiqia__messages")
    assert msgs["customer_key"].notna().mean() > 0.95  # null only while a conversation is open
    assert (
        {"handoff", "assign", "close", "reopen"}
        <= set(msgs["event_type"].dropna())
        <= {"handoff", "assign", "transfer", "close", "reopen"}
    )


# -- the console fallback ---------------------------------------------------------------------------
EVENT_PATTERNS = (("访客请求转人工", "handoff"), ("接入对话", "assign"), ("对话转接给客服", "transfer"))


def _event(text: str) -> str:
    return next((e for p, e in EVENT_PATTERNS if p in text), text)


def test_the_console_gives_the_apis_rows_for_its_columns(workdir, console, as_of):
    c = connector(console)
    scraper = c.scraper()
    window = Window(as_of - pd.Timedelta(hours=10), as_of)

    api = {r["id"]: r for r in records(c.fetch(STREAMS["messages"], None, window))}
    scraped = {r["id"]: r for r in records(scraper.fetch(STREAMS["messages"], window))}
    assert set(api) == set(scraped) and len(api) > 200
    for i, mine in scraped.items():
        theirs = api[i]
        for key in ("conv_id", "from", "type", "content_type", "agent_id", "created_on"):
            assert mine[key] == theirs[key], (i, key)
        if mine["type"] == "event":  # the console shows the agent's account, not the nickname
            assert _event(mine["content"]) == _event(theirs["content"])
        else:
            assert mine["content"] == theirs["content"]

    api = {r["conv_id"]: r for r in records(c.fetch(STREAMS["conversations"], None, window))}
    scraped = {r["conv_id"]: r for r in records(scraper.fetch(STREAMS["conversations"], window))}
    assert set(api) == set(scraped) and len(api) > 20
    assert any(r["comment_level"] is not None for r in api.values())
    for conv_id, mine in scraped.items():
        assert {k: api[conv_id][k] for k in mine} == mine

    for name, key in (("agents", "agent_id"), ("agent_status", "start_tm")):
        wide = Window(as_of - pd.Timedelta(days=3), as_of)
        api = {(r["agent_id"], r[key]): r for r in records(c.fetch(STREAMS[name], None, wide))}
        scraped = {(r["agent_id"], r[key]): r for r in records(scraper.fetch(STREAMS[name], wide))}
        assert set(api) == set(scraped) and api
        for k, mine in scraped.items():
            assert {f: api[k][f] for f in mine} == mine, (name, k)


def test_api_off_falls_back_to_the_console_and_marks_the_batches(workdir, console, sim_data, as_of):
    console.state.faults.set(P, api_off=True)
    summary = ingest(console, workdir, as_of)
    assert {r["source"] for r in summary["extracted"]} == {"scrape"}
    batches = query(workdir, f"select distinct source from raw._batches where platform = '{P}'")
    assert list(batches["source"]) == ["scrape"]
    events = query(workdir, f"select stream, kind from ops.events where platform = '{P}'")
    assert set(events["kind"]) == {"fallback_used"} and set(events["stream"]) == set(STREAMS)
    got = query(workdir, f"select cast(payload->>'id' as bigint) - {MSG_BASE} as id from raw.{P}__messages")[
        "id"
    ]
    assert set(got) == set(visible_messages(sim_data, P, as_of)["message_id"].astype(int))
