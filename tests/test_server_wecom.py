"""WeCom 微信客服 sandbox over real HTTP: shapes, auth, cursor paging, faults, live mode."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import requests
from golden_check import assert_golden_shape, shape_errors

from sandbox.truth import visible_messages

P = "wecom"


def _token(sandbox) -> str:
    c = sandbox.state.credentials[P]
    r = requests.get(
        f"{sandbox.url}/{P}/cgi-bin/gettoken", params={"corpid": c["corpid"], "corpsecret": c["corpsecret"]}
    )
    assert r.status_code == 200
    body = r.json()
    assert_golden_shape(body, P, "gettoken")
    return body["access_token"]


def _sync(sandbox, token, cursor=None, limit=1000, headers=None) -> requests.Response:
    body = {"limit": limit, "open_kfid": sandbox.state.credentials[P]["open_kfid"]}
    if cursor:
        body["cursor"] = cursor
    return requests.post(
        f"{sandbox.url}/{P}/cgi-bin/kf/sync_msg",
        params={"access_token": token},
        json=body,
        headers=headers,
        timeout=60,
    )


def _read_all(sandbox, token, cursor=None, limit=1000, check_shape=False):
    """Page sync_msg until has_more is 0; returns (records, last cursor, pages)."""
    records, pages = [], 0
    while True:
        r = _sync(sandbox, token, cursor, limit)
        body = r.json()
        assert r.status_code == 200 and body["errcode"] == 0, body
        if check_shape:
            # msg_code comes only with change_type 1, 3 and 4 (doc 94670), so not on every event
            assert_golden_shape(body, P, "kf_sync_msg", optional=("msg_code",))
        assert len(body["msg_list"]) <= limit
        records += body["msg_list"]
        cursor, pages = body["next_cursor"], pages + 1
        if not body["has_more"]:
            return records, cursor, pages


def _ids(records) -> list[int]:
    return [int(m["msgid"].rsplit("_", 1)[1]) for m in records]


def test_sync_msg_returns_every_visible_message_once(sandbox, sim_data, as_of):
    token = _token(sandbox)
    records, _, pages = _read_all(sandbox, token, limit=400, check_shape=True)
    truth = visible_messages(sim_data, P, as_of)
    ids = _ids(records)
    assert pages > 1
    assert len(ids) == len(set(ids)) == len(truth)
    assert set(ids) == set(truth["message_id"])
    # order: by time then id; only the last 3 days; no bot, no conversation id
    keys = [(m["send_time"], i) for m, i in zip(records, ids, strict=True)]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    assert min(k[0] for k in keys) >= (as_of - pd.Timedelta(days=3)).timestamp() - 1
    assert not any("conversation" in key for m in records for key in m)
    by_id = truth.set_index("message_id")
    sender = by_id.loc[ids, "sender_type"].astype(str).to_numpy()
    origins = [m["origin"] for m in records]
    assert {o for o, s in zip(origins, sender, strict=True) if s == "customer"} == {3}
    assert {o for o, s in zip(origins, sender, strict=True) if s == "agent"} == {5}
    assert {o for o, s in zip(origins, sender, strict=True) if s == "system"} == {4}
    events = [m["event"] for m in records if m["origin"] == 4]
    handoffs = int((truth["event"] == "handoff").sum())
    assert handoffs > 0 and sum(e["change_type"] == 0 for e in events) == handoffs
    assert all("new_servicer_userid" in e for e in events if e["change_type"] == 1)
    accounts = set(sandbox.state.channel_accounts(P)["account_id"])
    assert {m["servicer_userid"] for m in records if m["origin"] == 5} <= accounts
    users = set(sim_data["conversations"].query("channel == @P")["platform_user_id"])
    assert {m["external_userid"] for m in records if m["origin"] != 4} <= users


def test_other_endpoints_have_golden_shapes(sandbox):
    token = _token(sandbox)
    kfid = sandbox.state.credentials[P]["open_kfid"]
    base = f"{sandbox.url}/{P}/cgi-bin/kf"
    r = requests.get(f"{base}/servicer/list", params={"access_token": token, "open_kfid": kfid})
    assert_golden_shape(r.json(), P, "kf_servicer_list")
    assert {s["status"] for s in r.json()["servicer_list"]} <= {0, 1}
    r = requests.post(
        f"{base}/account/list", params={"access_token": token}, json={"offset": 0, "limit": 100}
    )
    assert_golden_shape(r.json(), P, "kf_account_list")
    assert r.json()["account_list"][0]["open_kfid"] == kfid
    live = requests.get(
        f"{base}/sandbox/live_state", params={"access_token": token, "open_kfid": kfid}
    ).json()
    assert live["errcode"] == 0
    state = sandbox.state.live_state(P)
    assert (live["waiting_cnt"], live["servicer_online_cnt"]) == (state["waiting"], state["agents_online"])


def test_auth_is_refused_the_wecom_way(sandbox):
    c = sandbox.state.credentials[P]
    url = f"{sandbox.url}/{P}/cgi-bin/gettoken"
    assert requests.get(url, params={"corpid": c["corpid"], "corpsecret": "wrong"}).json()["errcode"] == 40001
    assert (
        requests.get(url, params={"corpid": "nope", "corpsecret": c["corpsecret"]}).json()["errcode"] == 40013
    )
    assert _sync(sandbox, "not-a-token").json()["errcode"] == 40014
    assert _sync(sandbox, "").json()["errcode"] == 41001
    token = _token(sandbox)
    assert _sync(sandbox, token).json()["errcode"] == 0
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 7201})
    r = _sync(sandbox, token)
    assert r.status_code == 200
    assert_golden_shape(r.json(), P, "error_42001")
    assert r.json()["errcode"] == 42001
    bad = _sync(sandbox, _token(sandbox), cursor="%%%not-base64")
    assert bad.json()["errcode"] == 40058


def _set_faults(sandbox, **values):
    r = requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("fault", "errcode"),
    [
        ({"rate_limit": 1}, 45009),
        ({"error_codes": 1}, 45033),
        ({"api_off": True}, 48002),
        ({"permission_denied": True}, 60011),
        ({"expire_tokens_after": 1}, 42001),
    ],
)
def test_faults_answer_with_wecom_error_codes(sandbox, fault, errcode):
    token = _token(sandbox)
    _set_faults(sandbox, **fault)
    r = _sync(sandbox, token)
    assert r.status_code == 200
    assert r.json()["errcode"] == errcode
    if errcode == 45009:
        assert_golden_shape(r.json(), P, "error_45009")
    if "api_off" in fault or "permission_denied" in fault:
        requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    # counted faults clear themselves; an expired token is replaced by a new one
    assert _sync(sandbox, _token(sandbox)).json()["errcode"] == 0


def test_server_errors_hang_and_slow(sandbox):
    token = _token(sandbox)
    _set_faults(sandbox, server_errors=1)
    assert _sync(sandbox, token).status_code == 502
    _set_faults(sandbox, hang=1, hang_s=0.3)
    t0 = time.monotonic()
    assert _sync(sandbox, token).status_code == 502
    assert time.monotonic() - t0 >= 0.3
    _set_faults(sandbox, slow_s=0.2)
    t0 = time.monotonic()
    assert _sync(sandbox, token, limit=1).json()["errcode"] == 0
    assert time.monotonic() - t0 >= 0.2


def test_duplicate_rows_repeat_the_previous_page(sandbox, sim_data, as_of):
    token = _token(sandbox)
    _set_faults(sandbox, duplicate_rows=5)
    records, _, pages = _read_all(sandbox, token, limit=500)
    ids = _ids(records)
    assert pages > 2 and len(ids) == len(set(ids)) + 5 * (pages - 1)
    assert set(ids) == set(visible_messages(sim_data, P, as_of)["message_id"])


def test_late_messages_arrive_after_the_cursor(sandbox, sim_data, as_of):
    token = _token(sandbox)
    _set_faults(sandbox, late_updates=True, late_by_s=1800)
    first, cursor, _ = _read_all(sandbox, token)
    missing = set(visible_messages(sim_data, P, as_of)["message_id"]) - set(_ids(first))
    assert missing, "some recent messages should be late"
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 1801})
    later, _, _ = _read_all(sandbox, _token(sandbox), cursor)
    assert missing <= set(_ids(later))
    assert not set(_ids(first)) & set(_ids(later))


@pytest.mark.parametrize("kind", ["new_field", "missing_field", "changed_type"])
def test_schema_drift_via_header(sandbox, kind):
    token = _token(sandbox)
    r = _sync(sandbox, token, headers={"X-Sandbox-Fault": f"schema_drift={kind},drift_share=0.1"})
    body = r.json()
    assert body["errcode"] == 0
    errors = shape_errors({"msg_list": [{"msgid": "x", "send_time": 1}]}, {"msg_list": body["msg_list"]})
    if kind == "new_field":
        assert all(m["sandbox_new_field"] for m in body["msg_list"])
    elif kind == "missing_field":
        assert any("msgid" not in m for m in body["msg_list"])
    else:
        assert any(isinstance(m["send_time"], str) for m in body["msg_list"])
    assert errors  # a strict client sees the drift


def test_live_mode_cursor_returns_only_new_messages(sandbox, sim_data, as_of):
    token = _token(sandbox)
    _, cursor, _ = _read_all(sandbox, token)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    new, _, _ = _read_all(sandbox, token, cursor)
    later = as_of + pd.Timedelta(seconds=3600)
    expected = visible_messages(sim_data, P, later)
    expected = set(expected.loc[expected["sent_at"] > as_of, "message_id"])
    assert expected and set(_ids(new)) == expected
    # nothing more until the clock moves again
    again = _sync(sandbox, token, _read_all(sandbox, token, cursor)[1]).json()
    assert again["msg_list"] == [] and again["has_more"] == 0
