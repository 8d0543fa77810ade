"""Taobao / Tmall Qianniu connector, platform-specific behaviour against the sandbox over real
HTTP: TOP signing, the session key's expiry and renewal, D+1 whole-day windows, the main
account read with the sub-accounts, and the Qianniu console fallback."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest
import requests
from connector_cases.taobao import record_keys, visible_chat
from golden_check import load_golden

from connectors.cli import run_ingest
from connectors.core.auth import TopSigner, top_sign
from connectors.core.config import PlatformConfig
from connectors.core.http import CredentialsExpired, FatalApiError
from connectors.core.runner import extract
from connectors.core.streams import Window
from connectors.platforms import taobao
from sandbox.server.platforms.taobao import top_sign as server_sign
from sandbox.truth import visible_ratings

P = "taobao"


def config(sandbox, **values) -> PlatformConfig:
    creds = sandbox.state.credentials[P]
    base = {
        "base_url": f"{sandbox.url}/{P}",
        "app_key": creds["app_key"],
        "app_secret": creds["app_secret"],
        "session": creds["session"],
        "console_url": f"{sandbox.url}/console/{P}",
        "console_username": sandbox.state.console_credentials["username"],
        "console_password": sandbox.state.console_credentials["password"],
        "retry_attempts": 3,
    }
    return PlatformConfig(P, {**base, **values})


def connector(sandbox, **values) -> taobao.Connector:
    return taobao.Connector(config(sandbox, **values))


def local_day(ts: pd.Timestamp) -> dt.date:
    return ts.tz_convert("Asia/Shanghai").date()


def ingest(sandbox, until, stream=None, since=None) -> dict:
    return run_ingest([P], stream, since, until, sandbox.url, show_progress=False)


def raw(workdir, sim_data, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    con.register("id_lookup", record_keys(sim_data))
    try:
        return con.execute(sql).df()
    finally:
        con.close()


# -- signing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["wangwang_eservice_chatlog_get", "wangwang_eservice_evals_get"])
def test_top_sign_matches_the_golden_md5(name):
    request = load_golden(P, name)["request_example"]
    assert top_sign(request, "test_secret") == request["sign"]


def test_signer_and_server_agree_also_on_empty_params():
    signer = TopSigner(
        "12345678", "s3cret", "session-key", clock=lambda: dt.datetime(2026, 11, 11, tzinfo=dt.UTC)
    )
    _, _, kwargs = signer.prepare("POST", "http://x/router/rest", {"data": {"method": "m", "charset": ""}})
    params = kwargs["data"]
    assert params["timestamp"] == "2026-11-11 08:00:00"  # GMT+8
    assert params["sign"] == server_sign(params, "s3cret")


def test_a_wrong_secret_is_refused_with_what_to_check(sandbox):
    with pytest.raises(FatalApiError, match=r"code 25 .*app_secret"):
        connector(sandbox, app_secret="wrong-secret").accounts()


def test_timestamps_come_from_the_real_clock(sandbox):
    """The sandbox's clock says 2026; TOP checks the real clock, and so does the sandbox."""
    c = connector(sandbox)
    assert c.accounts()[0] == "cntaobaocs_shop"
    creds = sandbox.state.credentials[P]
    stale = TopSigner(
        creds["app_key"],
        creds["app_secret"],
        creds["session"],
        clock=lambda: dt.datetime(2001, 1, 1, tzinfo=dt.UTC),
    )
    _, _, kwargs = stale.prepare("POST", "", {"data": {"method": "taobao.user.seller.get", "fields": "nick"}})
    body = requests.post(f"{sandbox.url}/{P}/router/rest", data=kwargs["data"], timeout=10).json()
    assert body["error_response"]["code"] == 31


# -- the session key ----------------------------------------------------------------------------
def test_an_expired_session_without_refresh_token_names_the_account_and_the_renewal(sandbox):
    sandbox.state.faults.set(P, expire_tokens_after=1)
    c = connector(sandbox)
    with pytest.raises(CredentialsExpired) as err:
        c.accounts()
    message = str(err.value)
    assert "app_key 12345678" in message
    assert "authorise the app again" in message and "platforms.taobao.session" in message
    assert sandbox.state.credentials[P]["session"] not in message


def test_an_expired_session_is_renewed_once_with_the_refresh_token(sandbox):
    sandbox.state.faults.set(P, expire_tokens_after=2)
    c = connector(sandbox, refresh_token=sandbox.state.credentials[P]["refresh_token"])
    assert len(c.accounts()) >= 2
    days = list(c.fetch(taobao.STREAMS["ratings"], None, Window(*_day(sandbox, 2))))
    assert sum(len(p.records) for p in days) > 0
    assert c.http.stats["token_refreshes"] == 1
    assert sandbox.state.faults.snapshot()["fired"][P]["expire_tokens"] == 1


def test_a_refused_refresh_token_is_credentials_expired(sandbox):
    sandbox.state.faults.set(P, expire_tokens_after=1)
    c = connector(sandbox, refresh_token="not-the-refresh-token")
    with pytest.raises(CredentialsExpired, match="refresh token was refused"):
        c.accounts()


def test_an_ingest_with_a_dead_session_is_a_failure_naming_the_account(workdir, sandbox, as_of):
    # no refresh token configured: only a person can renew the seller's session
    (workdir / "connectors.yaml").write_text("platforms:\n  taobao:\n    refresh_token: ''\n")
    sandbox.state.faults.set(P, expire_tokens_after=1)
    summary = ingest(sandbox, as_of, stream="agents")
    assert summary["failures"] and "app_key 12345678" in summary["failures"][0]["error"]


# -- windows ------------------------------------------------------------------------------------
def _day(sandbox, days_back: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    today = sandbox.state.now().tz_convert("Asia/Shanghai").normalize()
    start = today - pd.Timedelta(days=days_back)
    return start.tz_convert("UTC"), (start + pd.Timedelta(days=1)).tz_convert("UTC")


def test_windows_are_whole_days_and_never_today():
    ts = pd.Timestamp
    w = Window(ts("2026-11-09 14:00", tz="Asia/Shanghai"), ts("2026-11-11 16:00", tz="Asia/Shanghai"))
    assert taobao.local_days(w) == (dt.date(2026, 11, 9), dt.date(2026, 11, 10))
    inside_today = Window(
        ts("2026-11-11 01:00", tz="Asia/Shanghai"), ts("2026-11-11 16:00", tz="Asia/Shanghai")
    )
    assert taobao.local_days(inside_today) is None
    # consecutive windows tile the days: no gap, no overlap
    edges = pd.date_range("2026-11-01 07:30", periods=9, freq="1D", tz="Asia/Shanghai")
    covered = [taobao.local_days(Window(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    days = [d for first, last in covered for d in pd.date_range(first, last).date]
    assert days == list(pd.date_range("2026-11-01", "2026-11-08").date)
    assert list(taobao.day_chunks(dt.date(2026, 11, 1), dt.date(2026, 11, 10))) == [
        ("2026-11-01", "2026-11-07"),
        ("2026-11-08", "2026-11-10"),
    ]


def test_the_connector_never_asks_for_today(sandbox, as_of, monkeypatch):
    asked: list[tuple[str, str]] = []
    c = connector(sandbox)
    call = c.call

    def spy(method, **params):
        if "end_date" in params:
            asked.append((params["start_date"], params["end_date"]))
        return call(method, **params)

    monkeypatch.setattr(c, "call", spy)
    today = local_day(as_of)
    window = Window(as_of - pd.Timedelta(hours=50), as_of)  # the day before yesterday 14:00 .. today 16:00
    records = [r for p in c.fetch(taobao.STREAMS["messages"], None, window) for r in p.records]
    assert records and asked
    assert all(dt.date.fromisoformat(end) < today for _, end in asked)
    assert set(asked) == {(str(today - dt.timedelta(days=2)), str(today - dt.timedelta(days=1)))}
    assert (
        list(c.fetch(taobao.STREAMS["messages"], None, Window(as_of - pd.Timedelta(hours=2), as_of)))[
            0
        ].records
        == []
    )


def test_the_main_account_is_read_with_every_sub_account(sandbox, sim_data, as_of):
    c = connector(sandbox)
    accounts = c.accounts()
    assert accounts[0] == "cntaobaocs_shop" and all(a.startswith("cntaobaocs_shop:") for a in accounts[1:])
    records = [
        r for p in c.fetch(taobao.STREAMS["messages"], None, Window(*_day(sandbox, 1))) for r in p.records
    ]
    from_main = [r for r in records if r["from_id"] == "cntaobaocs_shop"]
    assert {r["direction"] for r in from_main} == {0, 1}  # the bot's replies and buyers before assignment
    bot_texts = set(sim_data["messages"].query("channel == 'taobao' and sender_type == 'bot'")["content"])
    assert {r["content"] for r in from_main if r["direction"] == 0} <= bot_texts


def test_the_message_key_is_unique_per_message(sim_data):
    keys = record_keys(sim_data)
    assert keys["record_key"].is_unique


def test_the_next_day_brings_yesterday_and_nothing_twice(workdir, sandbox, sim_data, as_of):
    """The D+1 form of the incremental test: a day later, the new day arrives once."""
    ingest(sandbox, as_of)
    later = as_of + pd.Timedelta(days=1)
    sandbox.state.clock.set(later)
    summary = ingest(sandbox, later, stream="messages")
    assert not summary["failures"]
    ids = raw(
        workdir,
        sim_data,
        "select (select l.message_id from id_lookup l where l.record_key = _record_key) as id from raw.taobao__messages",
    )["id"]
    expected = set(visible_chat(sim_data, later)["message_id"])
    assert not ids.duplicated().any() and set(ids) == expected
    new = expected - set(visible_chat(sim_data, as_of)["message_id"])
    landed = sum(r["rows"] for r in summary["extracted"])
    assert 0 < len(new) < landed <= 2.2 * len(new) + 5  # the new day plus the one-day look-back


def test_ratings_map_back_to_the_true_csat(workdir, sandbox, sim_data, as_of):
    assert not ingest(sandbox, as_of, stream="ratings")["failures"]
    got = raw(
        workdir,
        sim_data,
        "select payload->>'session_id' as conv, payload->>'eval_code' as code from raw.taobao__ratings",
    )
    truth = visible_ratings(sim_data, P, as_of).set_index("conversation_id")["csat"]
    assert len(got) == len(truth)
    assert (5 - got["code"].astype(int).to_numpy() == truth.loc[got["conv"].astype(int)].to_numpy()).all()


# -- the console fallback -----------------------------------------------------------------------
def test_a_switched_off_api_falls_back_to_the_console_with_the_same_rows(workdir, sandbox, sim_data, as_of):
    since = as_of - pd.Timedelta(days=2)
    api = connector(sandbox)
    api_rows = {
        name: [r for p in api.fetch(taobao.STREAMS[name], None, Window(since, as_of)) for r in p.records]
        for name in ("messages", "ratings")
    }
    sandbox.state.faults.set(P, api_off=True)
    summary = run_ingest([P], None, since, as_of, sandbox.url, show_progress=False)
    by_stream = {r["stream"]: r for r in summary["extracted"]}
    for name in ("messages", "ratings"):
        assert by_stream[name]["source"] == "scrape"
        assert any(e["kind"] == "fallback_used" for e in by_stream[name]["events"])
    # streams the console has no report of fail clearly instead
    assert {f["stream"] for f in summary["failures"]} == {"agents", "agent_status"}
    assert all("console has no report" in f["error"] for f in summary["failures"])

    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    scraped = con.execute("select _record_key, payload, _source from raw.taobao__messages").df()
    ratings = con.execute("select _record_key, payload, _source from raw.taobao__ratings").df()
    con.close()
    assert set(scraped["_source"]) == {"scrape"} == set(ratings["_source"])
    stream = taobao.STREAMS["messages"]
    api_msgs = {"|".join(str(r[k]) for k in stream.primary_key): r for r in api_rows["messages"]}
    got = {k: json.loads(p) for k, p in zip(scraped["_record_key"], scraped["payload"], strict=True)}
    assert set(got) == set(api_msgs), "the console keys messages like the API"
    for key, record in got.items():
        want = api_msgs[key]
        for field in ("direction", "time", "content", "to_id", "session_id"):
            assert record[field] == want[field], (field, record, want)
        if want["direction"] == 0:  # who sent it: the bot's main account or the agent's sub-account
            assert record["from_id"] == want["from_id"]
    api_rat = {f"{r['eval_recer']}|{r['eval_time']}": r for r in api_rows["ratings"]}
    got_rat = {k: json.loads(p) for k, p in zip(ratings["_record_key"], ratings["payload"], strict=True)}
    assert set(got_rat) == set(api_rat)
    for key, record in got_rat.items():
        for field in ("eval_code", "eval_sender", "eval_recer", "eval_time", "session_id"):
            assert record[field] == api_rat[key][field], (field, record, api_rat[key])


def test_extract_records_a_fallback_event_for_each_day(workdir, sandbox, as_of):
    sandbox.state.faults.set(P, permission_denied=True)
    result = extract(
        connector(sandbox), taobao.STREAMS["ratings"], until=as_of, since=as_of - pd.Timedelta(days=2)
    )
    assert result.source == "scrape" and result.rows > 0
    assert [e["kind"] for e in result.events] == ["fallback_used"] * result.batches
