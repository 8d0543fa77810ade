"""Meiqia sandbox over real HTTP: bearer token with expiry, golden shapes, page/per_page paging,
faults, every visible message and conversation record exactly once, live mode."""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import pytest
import requests

try:  # tests/ on sys.path (rootdir-style) or tests as a package (tests/__init__.py)
    from golden_check import assert_golden_shape, golden_response, shape_errors
except ModuleNotFoundError:
    from tests.golden_check import assert_golden_shape, golden_response, shape_errors

from sandbox.server.platforms.meiqia import CONV_BASE, MSG_BASE
from sandbox.truth import visible_messages, visible_ratings

P = "meiqia"
WINDOW = {"start_time": "2026-11-05 00:00:00", "end_time": "2026-11-12 00:00:00"}


def _local(ts: pd.Timestamp) -> str:
    return ts.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")


def _token(sandbox) -> str:
    c = sandbox.state.credentials[P]
    body = requests.post(
        f"{sandbox.url}/{P}/token", json={"app_id": c["app_id"], "secret": c["secret"]}
    ).json()
    assert body["code"] == 0 and body["data"]["expires_in"] == 7200
    return body["data"]["access_token"]


def _get(sandbox, path: str, token: str, headers=None, **params) -> requests.Response:
    h = {"Authorization": f"Bearer {token}", **(headers or {})}
    return requests.get(f"{sandbox.url}/{P}{path}", params=params, headers=h, timeout=60)


def _ok(r: requests.Response):
    body = r.json()
    assert r.status_code == 200 and body["code"] == 0, (r.status_code, body)
    return body["data"]


def _read(sandbox, path, key, token, per_page=500, **window):
    """Page a list endpoint until a short page; returns (records, pages)."""
    records, page = [], 1
    while True:
        data = _ok(_get(sandbox, path, token, page=page, per_page=per_page, **(window or WINDOW)))
        records += data[key]
        if len(data[key]) < per_page:
            return records, page
        page += 1


def _conversation_golden() -> dict:
    """The golden record list plus one record with the fields the sandbox documents as nullable
    (no agent took the conversation / no agent replied)."""
    golden = copy.deepcopy(golden_response(P, "conversations"))
    items = golden["data"]["conversations"]
    nulls = ("agent_id", "agent_nickname", "agent_group_id", "conv_first_resp_wait_in_secs")
    items.append({**items[0], **dict.fromkeys(nulls)})
    return golden


def test_bulk_messages_every_visible_message_once(sandbox, sim_data, as_of):
    token = _token(sandbox)
    records, pages = _read(sandbox, "/v1/messages", "messages", token, per_page=700)
    truth = visible_messages(sim_data, P, as_of)
    ids = [m["id"] - MSG_BASE for m in records]
    assert pages > 2
    assert len(ids) == len(set(ids)) == len(truth)
    assert set(ids) == set(truth["message_id"])
    assert [m["created_on"] for m in records] == sorted(m["created_on"] for m in records)
    sender = truth.set_index("message_id").loc[ids, "sender_type"].astype(str).tolist()
    kinds = {"customer": "client", "agent": "agent", "bot": "robot", "system": "system"}
    assert [m["from"] for m in records] == [kinds[s] for s in sender]
    assert {m["type"] for m in records if m["from"] == "system"} == {"event"}
    assert all(m["agent_id"] is not None for m in records if m["from"] == "agent")


def test_conversation_records_and_messages(sandbox, sim_data, as_of):
    token = _token(sandbox)
    r = _get(sandbox, "/v1/conversations", token, page=1, per_page=100, **WINDOW)
    errors = shape_errors(_conversation_golden(), r.json())
    assert not errors, errors
    convs, _ = _read(sandbox, "/v1/conversations", "conversations", token, per_page=100)
    c = sandbox.state.conversations(P)
    closed = c[c["status"] == "closed"].set_index("conversation_id")
    ids = [x["conv_id"] - CONV_BASE for x in convs]
    assert len(ids) == len(set(ids)) == len(closed) and set(ids) == set(closed.index)
    frt = closed.loc[ids, "frt_s"].where(closed.loc[ids, "first_response_at"].notna())
    assert [x["conv_first_resp_wait_in_secs"] for x in convs] == [
        None if np.isnan(v) else round(v) for v in frt
    ]
    ratings = visible_ratings(sim_data, P, as_of).set_index("conversation_id")["csat"]
    level = {x["conv_id"] - CONV_BASE: x["comment_level"] for x in convs}
    assert len(ratings) > 0
    for cid, csat in ratings.items():
        assert level[cid] == (2 if csat >= 4 else 1 if csat == 3 else 0)
    assert sum(v is not None for v in level.values()) == len(ratings)
    # the messages of one conversation
    one = convs[0]["conv_id"]
    r = _get(sandbox, f"/v1/conversations/{one}/messages", token)
    assert_golden_shape(r.json(), P, "conversation_messages")
    msgs = r.json()["data"]["messages"]
    assert {m["conv_id"] for m in msgs} == {one} and len(msgs) == convs[0]["msg_count"] + sum(
        m["type"] == "event" for m in msgs
    )
    assert _get(sandbox, "/v1/conversations/1/messages", token).status_code == 404


def test_agents_status_logs_and_realtime(sandbox):
    token = _token(sandbox)
    agents = _ok(_get(sandbox, "/v1/agents", token))["agents"]
    accounts = sandbox.state.channel_accounts(P)
    assert sorted(a["agent_id"] for a in agents) == sorted(accounts["account_id"].astype(int))
    logs, _ = _read(sandbox, "/v1/agents/status_logs", "status_logs", token)
    assert logs and {x["agent_id"] for x in logs} <= {a["agent_id"] for a in agents}
    assert logs[-1]["end_tm"] is None  # still online at as_of
    live = _ok(_get(sandbox, "/v1/realtime", token))
    state = sandbox.state.live_state(P)
    assert (live["queue_count"], live["online_agent_count"]) == (state["waiting"], state["agents_online"])


def test_auth_is_refused_the_meiqia_way(sandbox):
    c = sandbox.state.credentials[P]
    r = requests.post(f"{sandbox.url}/{P}/token", data={"app_id": c["app_id"], "secret": "wrong"})
    assert (r.status_code, r.json()["code"]) == (401, 40001)
    r = requests.get(f"{sandbox.url}/{P}/v1/realtime")
    assert (r.status_code, r.json()["code"]) == (401, 40100)
    r = _get(sandbox, "/v1/realtime", "not-a-token")
    assert (r.status_code, r.json()["code"]) == (401, 40101)
    token = _token(sandbox)
    _ok(_get(sandbox, "/v1/realtime", token))
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 7201})
    r = _get(sandbox, "/v1/realtime", token)
    assert (r.status_code, r.json()["code"]) == (401, 40101)
    r = _get(sandbox, "/v1/messages", _token(sandbox), start_time="2026-11-01", end_time="2026-12-15")
    assert (r.status_code, r.json()["code"]) == (400, 40000)


def _set_faults(sandbox, **values):
    r = requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values)
    assert r.status_code == 200, r.text


def _page(sandbox, token, headers=None, **kw) -> requests.Response:
    return _get(sandbox, "/v1/messages", token, headers=headers, **{"per_page": 50, **WINDOW, **kw})


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"rate_limit": 1, "retry_after_s": 2}, 429, 42900),
        ({"error_codes": 1}, 200, 50010),
        ({"server_errors": 1}, 500, 50000),
        ({"api_off": True}, 403, 40310),
        ({"permission_denied": True}, 403, 40300),
        ({"expire_tokens_after": 1}, 401, 40101),
    ],
)
def test_faults_answer_the_meiqia_way(sandbox, fault, status, code):
    token = _token(sandbox)
    _set_faults(sandbox, **fault)
    r = _page(sandbox, token)
    assert (r.status_code, r.json()["code"]) == (status, code)
    if status == 429:
        assert r.headers["Retry-After"] == "2"
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
    clean, _ = _read(sandbox, "/v1/messages", "messages", token)
    _set_faults(sandbox, duplicate_rows=7)
    dup, pages = _read(sandbox, "/v1/messages", "messages", token)
    assert pages > 2 and len(dup) == len(clean) + 7 * (pages - 1)
    assert {m["id"] for m in dup} == {m["id"] for m in clean}


def test_late_records_and_schema_drift(sandbox, sim_data, as_of):
    token = _token(sandbox)
    _set_faults(sandbox, late_updates=True, late_by_s=3 * 3600)
    first = {m["id"] for m in _read(sandbox, "/v1/messages", "messages", token)[0]}
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3 * 3600 + 1})
    token = _token(sandbox)  # the first one has expired (7200 s)
    second = {m["id"] for m in _read(sandbox, "/v1/messages", "messages", token)[0]}
    truth = visible_messages(sim_data, P, as_of)
    missing = set(MSG_BASE + truth["message_id"]) - first
    assert missing and missing <= second
    requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    r = _page(sandbox, token, headers={"X-Sandbox-Fault": "schema_drift=missing_field,drift_share=0.1"})
    assert any("created_on" not in m for m in _ok(r)["messages"])
    _set_faults(sandbox, schema_drift="changed_type", drift_share=0.2)
    convs = _ok(_get(sandbox, "/v1/conversations", token, **WINDOW))["conversations"]
    assert any(isinstance(x["conv_first_resp_wait_in_secs"], str) for x in convs)


def test_live_mode_window_from_the_cursor_returns_only_new_messages(sandbox, sim_data, as_of):
    token = _token(sandbox)
    cursor = _local(as_of)
    old = {m["id"] for m in _read(sandbox, "/v1/messages", "messages", token)[0]}
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    later = sandbox.state.now()
    end = _local(later + pd.Timedelta(seconds=1))
    new = _read(sandbox, "/v1/messages", "messages", _token(sandbox), start_time=cursor, end_time=end)[0]
    truth = visible_messages(sim_data, P, later)
    expected = set(MSG_BASE + truth.loc[truth["sent_at"] > as_of, "message_id"])
    assert expected and {m["id"] for m in new} == expected
    assert not expected & old
    # a running clock (live mode) keeps serving, each poll at its own "now"
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"speed": 600})
    token = _token(sandbox)
    first = _ok(_page(sandbox, token, start_time=cursor, end_time="2026-11-13 00:00:00"))["total"]
    time.sleep(1.0)
    assert _ok(_page(sandbox, token, start_time=cursor, end_time="2026-11-13 00:00:00"))["total"] >= first
