"""Sobot sandbox over real HTTP: get_token signing and 24 h tokens, golden shapes,
page_no/page_size paging, faults, every visible session and message exactly once, live mode."""

from __future__ import annotations

import copy
import time

import pandas as pd
import pytest
import requests

try:  # tests/ on sys.path (rootdir-style) or tests as a package (tests/__init__.py)
    from golden_check import assert_golden_shape, golden_response, load_golden, shape_errors
except ModuleNotFoundError:
    from tests.golden_check import assert_golden_shape, golden_response, load_golden, shape_errors

from sandbox.server.platforms.sobot import sobot_cid, sobot_sign
from sandbox.truth import visible_messages, visible_ratings

P = "sobot"
WINDOW = {"start_date": "2026-11-05 00:00:00", "end_date": "2026-11-11 23:59:59"}


def _local(ts: pd.Timestamp) -> str:
    return ts.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")


def _get_token(sandbox, sign: str | None = None) -> requests.Response:
    c = sandbox.state.credentials[P]
    create_time = str(int(sandbox.state.now().timestamp()))
    sign = sign or sobot_sign(c["appid"], create_time, c["app_key"])
    params = {"appid": c["appid"], "create_time": create_time, "sign": sign}
    return requests.get(f"{sandbox.url}/{P}/api/get_token", params=params)


def _token(sandbox) -> str:
    r = _get_token(sandbox)
    assert_golden_shape(r.json(), P, "get_token")
    return r.json()["item"]["token"]


def _get(sandbox, name: str, token: str, headers=None, **params) -> requests.Response:
    h = {"token": token, **(headers or {})}
    return requests.get(f"{sandbox.url}/{P}/api/online/5/{name}", params=params, headers=h, timeout=60)


def _ok(r: requests.Response) -> dict:
    body = r.json()
    assert r.status_code == 200 and body["ret_code"] == "000000", (r.status_code, body)
    return body


def _read(sandbox, name, token, page_size=100, **window):
    records, page = [], 1
    while True:
        item = _ok(_get(sandbox, name, token, page_no=page, page_size=page_size, **(window or WINDOW)))[
            "item"
        ]
        records += item["list"]
        if len(item["list"]) < page_size:
            return records, page
        page += 1


def test_sign_matches_the_golden_sample():
    request = load_golden(P, "get_token")["request_example"]
    assert sobot_sign(request["appid"], request["create_time"], "test_app_key") == request["sign"]


def test_every_visible_session_and_message_once(sandbox, sim_data, as_of):
    token = _token(sandbox)
    r = _get(sandbox, "get_chat_list", token, page_no=1, page_size=50, **WINDOW)
    assert_golden_shape(r.json(), P, "session_list")
    sessions, pages = _read(sandbox, "get_chat_list", token, page_size=50)
    conv = sim_data["conversations"].query("channel == @P and started_at <= @as_of")
    assert pages > 2 and len(sessions) == len(conv)
    assert sorted(s["cid"] for s in sessions) == sorted(sobot_cid(conv["conversation_id"]).tolist())
    assert {(s["end_time"] == 0, s["end_time_str"] == "") for s in sessions} <= {(True, True), (False, False)}
    msgs = []
    for i, s in enumerate(sessions):
        r = _get(sandbox, "get_chat_detail", token, cid=s["cid"])
        if i == 0:
            assert_golden_shape(r.json(), P, "chat_messages")
        msgs += _ok(r)["items"]
    truth = visible_messages(sim_data, P, as_of)
    ids = [int(m["msgid"][2:]) for m in msgs]
    assert len(ids) == len(set(ids)) == len(truth) and set(ids) == set(truth["message_id"])
    sender = truth.set_index("message_id").loc[ids, "sender_type"].astype(str).tolist()
    codes = {"customer": 0, "bot": 1, "agent": 2, "system": 3}
    assert [m["sender_type"] for m in msgs] == [codes[s] for s in sender]
    assert all(m["ts"] == _local(pd.Timestamp(m["t"], unit="ms", tz="UTC")) for m in msgs[:200])
    assert _ok(_get(sandbox, "get_chat_detail", token, cid="0" * 32))["items"] == []


def test_satisfaction_with_nps(sandbox, sim_data, as_of):
    token = _token(sandbox)
    r = _get(sandbox, "get_satisfaction", token, page_no=1, page_size=50, **WINDOW)
    golden = copy.deepcopy(golden_response(P, "satisfaction"))
    golden["item"]["list"][0]["nps"] = -1  # the sandbox's documented extension
    assert not shape_errors(golden, r.json())
    rows, _ = _read(sandbox, "get_satisfaction", token, page_size=50)
    truth = visible_ratings(sim_data, P, as_of)
    assert sorted((x["cid"], x["score"], x["nps"]) for x in rows) == sorted(
        zip(
            sobot_cid(truth["conversation_id"]).tolist(),
            truth["csat"].tolist(),
            truth["nps"].tolist(),
            strict=True,
        )
    )
    assert -1 in {x["nps"] for x in rows} or min(x["nps"] for x in rows) >= 0


def test_staff_status_and_online_stat(sandbox):
    token = _token(sandbox)
    staff = _ok(_get(sandbox, "get_staff_list", token))["item"]["list"]
    assert sorted(s["staff_id"] for s in staff) == sorted(sandbox.state.channel_accounts(P)["account_id"])
    logs, _ = _read(sandbox, "get_staff_status_log", token)
    assert logs and {x["staff_id"] for x in logs} <= {s["staff_id"] for s in staff}
    assert logs[-1]["end_time"] == 0  # still online at as_of
    live = _ok(_get(sandbox, "get_online_stat", token))["item"]
    state = sandbox.state.live_state(P)
    assert (live["queue_count"], live["online_staff_count"]) == (state["waiting"], state["agents_online"])


def test_tokens_the_sobot_way(sandbox):
    assert _get_token(sandbox, sign="0" * 32).json()["ret_code"] == "900003"
    first = _token(sandbox)
    _ok(_get(sandbox, "get_online_stat", first))
    second = _token(sandbox)  # a new token makes the old one fail
    assert _get(sandbox, "get_online_stat", first).json()["ret_code"] == "900002"
    _ok(_get(sandbox, "get_online_stat", second))
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 86401})
    assert _get(sandbox, "get_online_stat", second).json()["ret_code"] == "900002"
    assert _get(sandbox, "get_online_stat", "").json()["ret_code"] == "900002"
    r = _get(sandbox, "get_chat_list", _token(sandbox), start_date="2026-11-05")
    assert r.json()["ret_code"] == "900001"


def _set_faults(sandbox, **values):
    r = requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values)
    assert r.status_code == 200, r.text


def _page(sandbox, token, headers=None, **kw) -> requests.Response:
    return _get(sandbox, "get_chat_list", token, headers=headers, **{"page_size": 50, **WINDOW, **kw})


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"rate_limit": 1, "retry_after_s": 2}, 200, "900004"),
        ({"error_codes": 1}, 200, "900005"),
        ({"server_errors": 1}, 500, "999999"),
        ({"api_off": True}, 200, "900006"),
        ({"permission_denied": True}, 200, "900007"),
        ({"expire_tokens_after": 1}, 200, "900002"),
    ],
)
def test_faults_answer_with_sobot_ret_codes(sandbox, fault, status, code):
    token = _token(sandbox)
    _set_faults(sandbox, **fault)
    r = _page(sandbox, token)
    assert (r.status_code, r.json()["ret_code"]) == (status, code)
    if code == "900004":
        assert "2秒" in r.json()["ret_msg"]
    if "api_off" in fault or "permission_denied" in fault:
        requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    _ok(_page(sandbox, _token(sandbox)))


def test_hang_and_slow(sandbox):
    token = _token(sandbox)
    _set_faults(sandbox, hang=1, hang_s=0.3)
    t0 = time.monotonic()
    assert _page(sandbox, token).status_code == 500
    assert time.monotonic() - t0 >= 0.3
    _set_faults(sandbox, slow_s=0.2)
    t0 = time.monotonic()
    _ok(_page(sandbox, token))
    assert time.monotonic() - t0 >= 0.2


def test_duplicate_rows_repeat_the_previous_page(sandbox):
    token = _token(sandbox)
    clean, _ = _read(sandbox, "get_chat_list", token, page_size=40)
    _set_faults(sandbox, duplicate_rows=4)
    dup, pages = _read(sandbox, "get_chat_list", token, page_size=40)
    assert pages > 2 and len(dup) == len(clean) + 4 * (pages - 1)
    assert {s["cid"] for s in dup} == {s["cid"] for s in clean}
    detail = _ok(_get(sandbox, "get_chat_detail", token, cid=clean[0]["cid"]))["items"]
    assert detail[-4:] == detail[-8:-4]


def test_late_sessions_and_schema_drift(sandbox, sim_data, as_of):
    token = _token(sandbox)
    _set_faults(sandbox, late_updates=True, late_by_s=3 * 3600)
    first = {s["cid"] for s in _read(sandbox, "get_chat_list", token)[0]}
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3 * 3600 + 1})
    second = {s["cid"] for s in _read(sandbox, "get_chat_list", token)[0]}
    conv = sim_data["conversations"].query("channel == @P and started_at <= @as_of")
    missing = set(sobot_cid(conv["conversation_id"]).tolist()) - first
    assert missing and missing <= second
    requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    r = _page(sandbox, token, headers={"X-Sandbox-Fault": "schema_drift=changed_type,drift_share=0.1"})
    assert any(isinstance(s["start_time"], str) for s in _ok(r)["item"]["list"])
    _set_faults(sandbox, schema_drift="missing_field", drift_share=0.1)
    assert any("cid" not in s for s in _ok(_page(sandbox, token))["item"]["list"])


def test_live_mode_window_from_the_cursor_returns_only_new_sessions(sandbox, sim_data, as_of):
    token = _token(sandbox)
    old = {s["cid"] for s in _read(sandbox, "get_chat_list", token)[0]}
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    later = sandbox.state.now()
    new = _read(sandbox, "get_chat_list", token, start_date=_local(as_of), end_date=_local(later))[0]
    conv = sim_data["conversations"].query("channel == @P and started_at > @as_of and started_at <= @later")
    expected = set(sobot_cid(conv["conversation_id"]).tolist())
    assert expected and {s["cid"] for s in new} == expected
    assert not expected & old
