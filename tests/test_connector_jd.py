"""JD 京东咚咚 connector, platform-specific behaviour against the sandbox over real HTTP: JOS
signing, the access_token's expiry and renewal, windows and paging limits, the `_responce`
envelope, session-driven message reads, and the 京麦 console fallback."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest
import requests
from connector_cases.jd import record_keys, visible_chat
from golden_check import load_golden

from connectors.cli import run_ingest
from connectors.core.auth import JosSigner, top_sign
from connectors.core.config import PlatformConfig
from connectors.core.http import CredentialsExpired, FatalApiError
from connectors.core.streams import Window
from connectors.platforms import jd
from sandbox.server.platforms.jd import jd_sid, jos_sign

P = "jd"


def config(sandbox, **values) -> PlatformConfig:
    creds = sandbox.state.credentials[P]
    base = {
        "base_url": f"{sandbox.url}/{P}",
        "app_key": creds["app_key"],
        "app_secret": creds["app_secret"],
        "access_token": creds["access_token"],
        "console_url": f"{sandbox.url}/console/{P}",
        "console_username": sandbox.state.console_credentials["username"],
        "console_password": sandbox.state.console_credentials["password"],
        "retry_attempts": 3,
    }
    return PlatformConfig(P, {**base, **values})


def connector(sandbox, **values) -> jd.Connector:
    return jd.Connector(config(sandbox, **values))


def records(c: jd.Connector, stream: str, window: Window) -> list[dict]:
    return [r for p in c.fetch(jd.STREAMS[stream], None, window) for r in p.records]


# -- signing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["im_pop_chatlog_get", "im_pop_sessionlist_get"])
def test_jos_sign_matches_the_golden_md5(name):
    request = load_golden(P, name)["request_example"]
    assert top_sign(request, "test_secret") == request["sign"]


def test_signer_and_server_agree():
    signer = JosSigner("KEY", "s3cret", "token", clock=lambda: dt.datetime(2026, 11, 11, tzinfo=dt.UTC))
    data = {"method": "jingdong.im.pop.chatlog.get", "360buy_param_json": '{"customer":"c"}', "empty": ""}
    _, _, kwargs = signer.prepare("POST", "http://x/routerjson", {"data": data})
    params = kwargs["data"]
    assert params["timestamp"] == "2026-11-11 08:00:00" and params["v"] == "2.0"
    assert params["sign"] == jos_sign(params, "s3cret")


def test_a_wrong_secret_is_refused_with_what_to_check(sandbox):
    with pytest.raises(FatalApiError, match=r"code 12 .*app_secret"):
        connector(sandbox, app_secret="wrong").call("jingdong.im.pop.groupinfo.get")


def test_timestamps_come_from_the_real_clock(sandbox):
    creds = sandbox.state.credentials[P]
    stale = JosSigner(
        creds["app_key"],
        creds["app_secret"],
        creds["access_token"],
        clock=lambda: dt.datetime(2001, 1, 1, tzinfo=dt.UTC),
    )
    _, _, kwargs = stale.prepare("POST", "", {"data": {"method": "jingdong.im.pop.groupinfo.get"}})
    body = requests.post(f"{sandbox.url}/{P}/routerjson", data=kwargs["data"], timeout=10).json()
    assert body["error_response"]["code"] == "8"
    assert connector(sandbox).call("jingdong.im.pop.groupinfo.get")["groupInfoList"]  # real time passes


# -- the access_token ---------------------------------------------------------------------------
def test_an_expired_token_without_refresh_token_names_the_account_and_the_renewal(sandbox):
    sandbox.state.faults.set(P, expire_tokens_after=1)
    with pytest.raises(CredentialsExpired) as err:
        connector(sandbox).call("jingdong.im.pop.groupinfo.get")
    message = str(err.value)
    assert "app_key JDSANDBOXKEY" in message
    assert "oauth2/refresh_token" in message and "platforms.jd.access_token" in message
    assert sandbox.state.credentials[P]["access_token"] not in message


def test_an_expired_token_is_renewed_once_with_the_refresh_token(sandbox, as_of):
    sandbox.state.faults.set(P, expire_tokens_after=2)
    c = connector(sandbox, refresh_token=sandbox.state.credentials[P]["refresh_token"])
    got = records(c, "sessions", Window(as_of - pd.Timedelta(days=3), as_of))
    assert got and c.http.stats["token_refreshes"] == 1


def test_a_refused_refresh_token_is_credentials_expired(sandbox):
    sandbox.state.faults.set(P, expire_tokens_after=1)
    with pytest.raises(CredentialsExpired, match="refresh token was refused"):
        connector(sandbox, refresh_token="nope").call("jingdong.im.pop.groupinfo.get")


# -- windows, paging, envelope --------------------------------------------------------------------
def test_windows_are_inclusive_seconds_and_at_most_seven_days():
    ts = pd.Timestamp
    assert jd.jos_window(ts("2026-11-10 16:00:00.5", tz="UTC"), ts("2026-11-11 16:00", tz="UTC")) == (
        "2026-11-11 00:00:00",
        "2026-11-11 23:59:59",
    )
    parts = list(jd.chunks(ts("2026-10-01", tz="UTC"), ts("2026-10-20", tz="UTC")))
    assert [(b - a).days for a, b in parts] == [7, 7, 5]


def test_page_size_is_capped_at_100_and_every_page_is_read(sandbox, as_of, monkeypatch):
    c = connector(sandbox, page_size=500)
    sizes: list[int] = []
    call = c.call

    def spy(method, **biz):
        sizes.append(biz.get("pageSize"))
        return call(method, **biz)

    monkeypatch.setattr(c, "call", spy)
    got = records(c, "sessions", Window(as_of - pd.Timedelta(days=2), as_of))
    assert set(sizes) == {100} and len(sizes) >= 2
    assert len({r["sid"] for r in got}) == len(got)


def test_the_response_envelope_is_read_in_either_spelling(sandbox, monkeypatch):
    c = connector(sandbox)
    monkeypatch.setattr(
        c.http, "json", lambda *a, **k: {"jingdong_im_pop_groupinfo_get_response": {"code": "0", "x": 1}}
    )
    assert c.call("jingdong.im.pop.groupinfo.get") == {"code": "0", "x": 1}
    monkeypatch.setattr(
        c.http, "json", lambda *a, **k: {"jingdong_im_pop_groupinfo_get_responce": {"code": "5", "x": 1}}
    )
    with pytest.raises(FatalApiError, match="code 5"):
        c.call("jingdong.im.pop.groupinfo.get")


def test_the_message_key_is_unique_and_seconds_based(sim_data):
    keys = record_keys(sim_data)
    assert keys["record_key"].is_unique
    assert jd.message_key("ab", 1717120803999, True, "x") == jd.message_key(
        "ab", "1717120803000", "true", "x"
    )
    assert jd.message_key(None, 1, True, "x") is None


def test_a_window_gets_the_messages_of_sessions_that_started_before_it(sandbox, sim_data, as_of):
    """A reopened session: its later messages come in a window that starts after the session."""
    m = sim_data["messages"]
    reopen = m[
        (m["channel"] == P) & (m["event"] == "reopen") & (m["sent_at"] < as_of - pd.Timedelta(hours=2))
    ].iloc[-1]
    conv = int(reopen["conversation_id"])
    window = Window(reopen["sent_at"] - pd.Timedelta(minutes=1), reopen["sent_at"] + pd.Timedelta(hours=1))
    got = records(connector(sandbox), "messages", window)
    sid = jd_sid([conv])[0]
    expected = m[(m["conversation_id"] == conv) & (m["sender_type"] != "system")]
    expected = expected[(expected["sent_at"] >= window.since) & (expected["sent_at"] < window.until)]
    assert len(expected) > 0
    assert sum(r["sid"] == sid for r in got) == len(expected)


def test_a_session_end_that_comes_later_is_picked_up_by_the_look_back(workdir, sandbox, sim_data, as_of):
    conv = sim_data["conversations"]
    conv = conv[
        (conv["channel"] == P)
        & (conv["closed_at"] > as_of)
        & (conv["closed_at"] < as_of + pd.Timedelta(hours=6))
    ]
    conv = conv[conv["started_at"] < as_of - pd.Timedelta(minutes=5)]
    assert len(conv)
    run_ingest([P], "sessions", None, as_of, sandbox.url, show_progress=False)
    later = as_of + pd.Timedelta(hours=6)
    sandbox.state.clock.set(later)
    run_ingest([P], "sessions", None, later, sandbox.url, show_progress=False)
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    ends = con.execute(
        "select payload->>'sid', max(cast(payload->>'endTime' as bigint)) from raw.jd__sessions group by 1"
    ).fetchall()
    con.close()
    ended = {sid: end for sid, end in ends}
    for sid in jd_sid(conv["conversation_id"].to_numpy()):
        assert ended[sid] is not None


def test_raw_messages_equal_the_visible_chat(workdir, sandbox, sim_data, as_of):
    assert not run_ingest([P], "messages", None, as_of, sandbox.url, show_progress=False)["failures"]
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    con.register("id_lookup", record_keys(sim_data))
    got = con.execute(
        "select (select l.message_id from id_lookup l where l.record_key = _record_key) as id, "
        "cast(payload->>'time' as bigint) as ms from raw.jd__messages"
    ).df()
    con.close()
    truth = visible_chat(sim_data, as_of)
    truth = truth[truth["sent_at"] >= as_of - pd.Timedelta(days=7)].set_index("message_id")
    assert set(got["id"]) == set(truth.index) and got["id"].is_unique
    ms = truth.loc[got["id"], "sent_at"].to_numpy("datetime64[ms]").astype("int64")
    assert (got["ms"].to_numpy() == ms).all()  # epoch ms, exact


# -- the console fallback -----------------------------------------------------------------------
def test_a_switched_off_api_falls_back_to_the_console_with_the_same_keys(workdir, sandbox, as_of):
    since = as_of - pd.Timedelta(days=1)
    api = connector(sandbox)
    want = {name: records(api, name, Window(since, as_of)) for name in ("messages", "sessions", "ratings")}
    sandbox.state.faults.set(P, api_off=True)
    summary = run_ingest([P], None, since, as_of, sandbox.url, show_progress=False)
    by_stream = {r["stream"]: r for r in summary["extracted"]}
    for name in ("messages", "sessions", "ratings"):
        assert by_stream[name]["source"] == "scrape"
        assert any(e["kind"] == "fallback_used" for e in by_stream[name]["events"])
    assert {f["stream"] for f in summary["failures"]} == {"agents", "agent_status", "queue"}
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    got = {
        name: {
            k: json.loads(p)
            for k, p, s in con.execute(f"select _record_key, payload, _source from raw.jd__{name}").fetchall()
            if s == "scrape"
        }
        for name in ("messages", "sessions", "ratings")
    }
    con.close()
    api_msgs = {r["msg_key"]: r for r in want["messages"]}
    assert set(got["messages"]) == set(api_msgs), "the console keys messages like the API"
    for key, record in got["messages"].items():
        for field in ("sid", "customer", "content", "waiterSend"):
            assert record[field] == api_msgs[key][field], (field, record, api_msgs[key])
        assert record["time"] == api_msgs[key]["time"] // 1000 * 1000  # the console shows seconds
        if record["waiterSend"] and record["waiter"]:
            assert record["waiter"] == api_msgs[key]["waiter"]
    api_sessions = {r["sid"]: r for r in want["sessions"]}
    assert set(got["sessions"]) == set(api_sessions)
    for sid, record in got["sessions"].items():
        assert record["customer"] == api_sessions[sid]["customer"]
        assert record["startTime"] == api_sessions[sid]["startTime"] // 1000 * 1000
    api_ratings = {r["sid"]: r for r in want["ratings"]}
    assert set(got["ratings"]) == set(api_ratings)
    assert all(r["score"] == api_ratings[s]["score"] for s, r in got["ratings"].items())
