"""Sobot connector specifics against the sandbox (the generic checks are in
tests/test_connectors.py): get_token's signature (a refused appid/sign is clear), ONE token per
run shared by every stream (a new token revokes the old), one refresh on expiry, the
rate-limit wait from the message, windows as the API allows, messages read per session,
ratings and NPS in staging, and the console fallback giving the API's rows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from connectors.cli import run_ingest
from connectors.core.config import load_config, sandbox_overrides
from connectors.core.http import ConnectorError, Verdict
from connectors.core.runner import extract
from connectors.core.streams import Window
from connectors.platforms import sobot
from connectors.platforms.sobot import STREAMS, Connector, classify, window_params
from csw.transform import run_dbt
from sandbox.server.platforms.sobot import sobot_cid, sobot_sign
from sandbox.truth import visible_messages, visible_ratings

P = "sobot"


def connector(sandbox, **settings) -> Connector:
    config = load_config(overrides=sandbox_overrides(sandbox.url))[P]
    config.values.update(settings)
    return Connector(config)


def ingest(sandbox, workdir, until, stream=None) -> dict:
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


class _Response:
    def __init__(self, body: dict, status: int = 200):
        import orjson

        self.status_code, self.content, self.headers, self.text = status, orjson.dumps(body), {}, ""


# -- auth ------------------------------------------------------------------------------------
def test_the_signature_is_md5_of_appid_create_time_app_key():
    assert sobot.sign("appid1", "1569397773", "key") == sobot_sign("appid1", "1569397773", "key")
    import hashlib

    assert sobot.sign("a", "1", "k") == hashlib.md5(b"a1k").hexdigest()  # lower-case hex


def test_a_refused_signature_names_the_appid_and_what_to_check(workdir, sandbox, as_of):
    c = connector(sandbox, app_key="not-the-key")
    with pytest.raises(ConnectorError, match="sobotsandboxappid") as info:
        records(c.fetch(STREAMS["agents"], None, Window(as_of - pd.Timedelta(hours=1), as_of)))
    assert "900003" in str(info.value) and "app_key" in str(info.value)
    assert "not-the-key" not in str(info.value)


def test_one_token_per_run_is_shared_by_every_stream(workdir, sandbox, as_of, monkeypatch):
    """A new token revokes the old one: a run must fetch it once, not per stream."""
    signed = []
    real_sign = sobot.sign
    monkeypatch.setattr(sobot, "sign", lambda *a: signed.append(a) or real_sign(*a))
    summary = run_ingest([P], None, as_of - pd.Timedelta(hours=6), as_of, sandbox.url, show_progress=False)
    assert not summary["failures"]
    assert {r["stream"] for r in summary["extracted"]} == set(STREAMS)
    assert len(signed) == 1


def test_an_expired_token_is_refreshed_once(workdir, sandbox, as_of):
    c = connector(sandbox, page_size=20)
    sandbox.state.faults.set(P, expire_tokens_after=2)
    got = records(c.fetch(STREAMS["messages"], None, Window(as_of - pd.Timedelta(hours=3), as_of)))
    assert got and c.http.stats["token_refreshes"] == 1


def test_errors_are_classified_the_sobot_way():
    wait = classify(_Response({"ret_code": "900004", "ret_msg": "请求过于频繁，请7秒后重试"}))
    assert (wait.verdict, wait.retry_after_s) == (Verdict.RETRY, 7.0)
    assert classify(_Response({"ret_code": "900005", "ret_msg": "系统繁忙"})).verdict is Verdict.RETRY
    assert classify(_Response({"ret_code": "999999"}, 500)).verdict is Verdict.RETRY
    assert classify(_Response({"ret_code": "900002"})).verdict is Verdict.TOKEN_EXPIRED
    assert classify(_Response({"ret_code": "900006"})).verdict is Verdict.UNAVAILABLE
    assert classify(_Response({"ret_code": "900007"})).verdict is Verdict.UNAVAILABLE
    fatal = classify(_Response({"ret_code": "900001", "ret_msg": "参数错误"}))
    assert fatal.verdict is Verdict.FATAL and "connector bug" in fatal.reason
    assert classify(_Response({"ret_code": "000000", "item": {}})).verdict is Verdict.OK


# -- windows ---------------------------------------------------------------------------------
def test_window_parameters_are_local_and_inclusive_to_the_second():
    params = window_params(pd.Timestamp("2026-11-11 07:59:59.400Z"), pd.Timestamp("2026-11-11 09:00:00Z"))
    assert params == {"start_date": "2026-11-11 15:59:59", "end_date": "2026-11-11 17:00:00"}


def test_windows_are_asked_as_the_api_allows(workdir, sandbox, as_of):
    c = connector(sandbox)
    asked = []
    original = c.http.json

    def spy(method, url, **kwargs):
        asked.append(kwargs.get("params") or {})
        return original(method, url, **kwargs)

    c.http.json = spy
    for name in ("messages", "sessions", "ratings", "agent_status"):
        extract(c, STREAMS[name], until=as_of, initial_history=pd.Timedelta(days=3))
    spans = [pd.Timestamp(p["end_date"]) - pd.Timestamp(p["start_date"]) for p in asked if "start_date" in p]
    assert spans and max(spans) <= pd.Timedelta(days=31)
    assert all(1 <= p["page_size"] <= 100 for p in asked if "page_size" in p)


def test_messages_are_read_per_session_and_cut_to_the_window(workdir, sandbox, sim_data, as_of):
    """No bulk export: sessions active in the window are read whole, and only the messages
    sent in the window are kept - including those of sessions that started the day before."""
    window = Window(as_of - pd.Timedelta(hours=3), as_of - pd.Timedelta(hours=1))
    got = records(connector(sandbox).fetch(STREAMS["messages"], None, window))
    m = visible_messages(sim_data, P, as_of)
    m = m[(m["sent_at"] >= window.since) & (m["sent_at"] <= window.until)]
    assert sorted(int(r["msgid"][2:]) for r in got) == sorted(m["message_id"].astype(int))
    # milliseconds are kept: the raw time equals the send time to the ms
    sent = m.set_index("message_id")["sent_at"]
    assert all(r["t"] == int(sent.loc[int(r["msgid"][2:])].value // 10**6) for r in got)


def test_only_sessions_active_in_the_window_are_read(workdir, sandbox, as_of):
    """Scripted session list: a session closed before the window is not read; one closed in
    it, one still open and one reopened (end_time 0 again) are; one starting after is not."""
    c = connector(sandbox)
    window = Window(as_of - pd.Timedelta(hours=1), as_of)
    since, until = int(window.since.value // 10**6), int(window.until.value // 10**6)
    hour = 3600 * 1000
    sessions = [
        {"cid": "closed-before", "start_time": since - 5 * hour, "end_time": since - hour},
        {"cid": "closed-in", "start_time": since - hour, "end_time": since + 60_000},
        {"cid": "open", "start_time": since + 1000, "end_time": 0},
        {"cid": "reopened", "start_time": since - 30 * hour, "end_time": 0},
        {"cid": "later", "start_time": until + 1000, "end_time": 0},
    ]
    read = []

    def fake_json(method, url, params=None, **_):
        if url.endswith("get_chat_list"):
            return {"ret_code": "000000", "item": {"total_count": len(sessions), "list": sessions}}
        read.append(params["cid"])
        t = [since - 1, since, until, until + 1]
        return {"ret_code": "000000", "items": [{"msgid": f"{params['cid']}-{x}", "t": x} for x in t]}

    c.http.json = fake_json
    got = records(c.fetch(STREAMS["messages"], None, window))
    assert read == ["closed-in", "open", "reopened"]
    assert {r["t"] for r in got} == {since, until}  # both ends inclusive, nothing outside


# -- staging: scores, NPS, event types ------------------------------------------------------------
def test_ratings_keep_the_score_and_nps_and_events_are_typed(workdir, sandbox, sim_data, as_of):
    ingest(sandbox, workdir, as_of)
    proc = run_dbt(["build", "--select", "stg_sobot__ratings", "stg_sobot__messages"], as_of=as_of)
    assert proc.returncode == 0, proc.stdout[-3000:]
    got = query(
        workdir, "select conversation_id, rating_raw, nps, rating_scale from staging.stg_sobot__ratings"
    )
    truth = visible_ratings(sim_data, P, as_of)
    cid = "sobot:" + pd.Series(sobot_cid(truth["conversation_id"]), index=truth.index)
    nps = truth["nps"].where(truth["nps"] >= 0)
    assert sorted(
        zip(got["conversation_id"], got["rating_raw"], got["nps"].fillna(-1), strict=True)
    ) == sorted(zip(cid, truth["csat"].astype(str), nps.fillna(-1), strict=True))
    assert set(got["rating_scale"]) == {"five_point"} and got["nps"].notna().any()
    msgs = query(
        workdir,
        "select sender_type, event_type, customer_key, agent_account from staging.stg_sobot__messages",
    )
    truth_m = visible_messages(sim_data, P, as_of)
    events = truth_m["event"].astype(str)
    assert msgs["event_type"].value_counts().to_dict() == events[events != ""].value_counts().to_dict()
    assert msgs["customer_key"].notna().all()
    assert msgs.loc[msgs["sender_type"] == "agent", "agent_account"].notna().all()


# -- the console fallback ---------------------------------------------------------------------------
EVENT_PATTERNS = (("接入会话", "assign"), ("会话转接给客服", "transfer"))


def _event(text: str) -> str:
    """Staging's event mapping (the agent's name inside the text does not matter)."""
    return next((e for p, e in EVENT_PATTERNS if p in text), text)


def _same(mine: dict, theirs: dict, skip=()) -> None:
    for key, value in mine.items():
        if key in skip:
            continue
        if key in ("t", "start_time", "end_time") and isinstance(value, int):  # the console shows seconds
            assert value == theirs[key] // 1000 * 1000, key
        else:
            assert value == theirs[key], (key, value, theirs[key])


def test_the_console_gives_the_apis_rows_for_its_columns(workdir, console, as_of):
    c = connector(console)
    scraper = c.scraper()
    window = Window(as_of - pd.Timedelta(hours=10), as_of)
    for name, key in (("messages", ("msgid",)), ("sessions", ("cid",)), ("ratings", ("cid", "type"))):
        api = {tuple(r[k] for k in key): r for r in records(c.fetch(STREAMS[name], None, window))}
        scraped = {tuple(r[k] for k in key): r for r in records(scraper.fetch(STREAMS[name], window))}
        assert set(api) == set(scraped) and len(api) > 10, name
        for k, mine in scraped.items():
            theirs = api[k]
            if name == "messages" and mine["sender_type"] == 2:  # the console shows no agent names
                _same(mine, theirs, skip=("sender_name",))
            elif name == "messages" and mine["sender_type"] == 3:  # ... nor the name in event texts
                _same(mine, theirs, skip=("msg",))
                assert _event(mine["msg"]) == _event(theirs["msg"])
            else:
                _same(mine, theirs)
    wide = Window(as_of - pd.Timedelta(days=3), as_of)
    for name, key in (("agents", "staff_id"), ("agent_status", "start_time")):
        api = {(r["staff_id"], r[key]): r for r in records(c.fetch(STREAMS[name], None, wide))}
        scraped = {(r["staff_id"], r[key]): r for r in records(scraper.fetch(STREAMS[name], wide))}
        assert set(api) == set(scraped) and api, name
        for k, mine in scraped.items():
            _same(mine, api[k])


def test_api_off_falls_back_to_the_console_and_marks_the_batches(workdir, console, sim_data, as_of):
    console.state.faults.set(P, api_off=True)
    summary = ingest(console, workdir, as_of)
    assert {r["source"] for r in summary["extracted"]} == {"scrape"}
    batches = query(workdir, f"select distinct source from raw._batches where platform = '{P}'")
    assert list(batches["source"]) == ["scrape"]
    events = query(workdir, f"select stream, kind from ops.events where platform = '{P}'")
    assert set(events["kind"]) == {"fallback_used"} and set(events["stream"]) == set(STREAMS)
    got = query(
        workdir, f"select cast(replace(payload->>'msgid', 'm_', '') as bigint) as id from raw.{P}__messages"
    )
    assert set(got["id"]) == set(visible_messages(sim_data, P, as_of)["message_id"].astype(int))
