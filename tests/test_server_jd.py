"""JD JOS gateway sandbox over real HTTP: signing, golden shapes, page/pageSize paging,
faults, every visible chat message exactly once, live mode."""

from __future__ import annotations

import json
import time
from collections import Counter

import pandas as pd
import pytest
import requests

try:  # tests/ on sys.path (rootdir-style) or tests as a package (tests/__init__.py)
    from golden_check import assert_golden_shape, load_golden
except ModuleNotFoundError:
    from tests.golden_check import assert_golden_shape, load_golden

from sandbox.server.platforms.jd import jd_sid, jos_sign
from sandbox.truth import visible_messages, visible_ratings

P = "jd"
WINDOW = {"startTime": "2026-11-05 00:00:00", "endTime": "2026-11-11 23:59:59"}


def _local(ts: pd.Timestamp) -> str:
    return ts.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")


def _params(sandbox, method: str, token: str | None = None, **biz) -> dict:
    c = sandbox.state.credentials[P]
    p = {
        "method": method,
        "app_key": c["app_key"],
        "access_token": token or c["access_token"],
        "timestamp": _local(sandbox.state.now()),
        "v": "2.0",
        "sign_method": "md5",
        "360buy_param_json": json.dumps(biz, ensure_ascii=False),
    }
    p["sign"] = jos_sign(p, c["app_secret"])
    return p


def _call(sandbox, method: str, token=None, headers=None, **biz) -> requests.Response:
    data = _params(sandbox, method, token, **biz)
    return requests.post(f"{sandbox.url}/{P}/routerjson", data=data, headers=headers, timeout=60)


def _ok(r: requests.Response) -> dict:
    body = r.json()
    assert r.status_code == 200 and "error_response" not in body and len(body) == 1, body
    ((key, inner),) = body.items()
    assert key.endswith("_responce") and inner["code"] == "0"
    return inner


def _read_pages(sandbox, method, page_key, list_key, page_size=100, check_shape=None, **biz):
    """Page a list method until a short page; returns (records, pages)."""
    records, page = [], 1
    while True:
        r = _call(sandbox, method, page=page, pageSize=page_size, **biz)
        if check_shape:
            # an open session has no endTime yet (JOS leaves null fields out)
            assert_golden_shape(r.json(), P, check_shape, optional=("endTime",))
        result = _ok(r)[page_key]
        records += result[list_key]
        if len(result[list_key]) < page_size:
            return records, page
        page += 1


def _sessions(sandbox, page_size=100, check_shape=False, **window):
    return _read_pages(
        sandbox,
        "jingdong.im.pop.sessionlist.get",
        "ChatSessionPage",
        "chatSessionList",
        page_size,
        "im_pop_sessionlist_get" if check_shape else None,
        **(window or WINDOW),
    )


def test_jos_sign_matches_the_golden_samples():
    for name in ("im_pop_chatlog_get", "im_pop_sessionlist_get"):
        request = dict(load_golden(P, name)["request_example"])
        assert jos_sign(request, "test_secret") == request["sign"]


def test_every_visible_session_and_message_once(sandbox, sim_data, as_of):
    sessions, pages = _sessions(sandbox, page_size=50, check_shape=True)
    conv = sim_data["conversations"].query("channel == @P and started_at <= @as_of")
    assert pages > 2 and len(sessions) == len(conv)
    assert sorted(s["sid"] for s in sessions) == sorted(jd_sid(conv["conversation_id"]).tolist())
    waiters = {
        w["waiter"]
        for g in _ok(_call(sandbox, "jingdong.im.pop.groupinfo.get"))["groupInfoList"]
        for w in g["waiterList"]
    }
    assert {s["waiter"] for s in sessions} <= waiters
    got = []
    for i, customer in enumerate(sorted({s["customer"] for s in sessions})):
        logs, _ = _read_pages(
            sandbox,
            "jingdong.im.pop.chatlog.get",
            "ChatLogPage",
            "chatLogList",
            100,
            "im_pop_chatlog_get" if i == 0 else None,
            customer=customer,
            **WINDOW,
        )
        got += logs
    assert len(got) > 3000
    m = visible_messages(sim_data, P, as_of)
    m = m[m["sender_type"] != "system"]
    expected = Counter(
        zip(
            jd_sid(m["conversation_id"]).tolist(),
            m["sent_at"].to_numpy("datetime64[ms]").astype("int64").tolist(),
            (m["sender_type"] != "customer").tolist(),
            m["content"].astype(str),
            strict=True,
        )
    )
    assert Counter((x["sid"], x["time"], x["waiterSend"], x["content"]) for x in got) == expected
    assert {x["waiter"] for x in got} <= waiters


def test_evaluations_status_and_live(sandbox, sim_data, as_of):
    evals, _ = _read_pages(
        sandbox, "jingdong.im.pop.evaluationlist.get", "EvaluationPage", "evaluationList", 50, **WINDOW
    )
    truth = visible_ratings(sim_data, P, as_of)
    assert sorted((e["sid"], e["score"]) for e in evals) == sorted(
        zip(jd_sid(truth["conversation_id"]).tolist(), truth["csat"].astype(int).tolist(), strict=True)
    )
    status, _ = _read_pages(
        sandbox, "jingdong.im.pop.waiterstatus.get", "WaiterStatusPage", "waiterStatusList", **WINDOW
    )
    assert status and {s["status"] for s in status} <= {0, 1, 2, 3}
    live = _ok(_call(sandbox, "jingdong.im.pop.realtime.get"))["RealtimeInfo"]
    state = sandbox.state.live_state(P)
    assert (live["waitingNum"], live["onlineWaiterNum"]) == (state["waiting"], state["agents_online"])


def test_arguments_are_checked(sandbox):
    r = _call(sandbox, "jingdong.im.pop.chatlog.get", **WINDOW)
    assert r.json()["error_response"]["code"] == "17"
    r = _call(
        sandbox,
        "jingdong.im.pop.sessionlist.get",
        startTime="2026-11-01 00:00:00",
        endTime="2026-11-11 00:00:00",
    )
    assert r.json()["error_response"]["code"] == "18"
    r = _call(sandbox, "jingdong.im.pop.sessionlist.get", pageSize=101, **WINDOW)
    assert r.json()["error_response"]["code"] == "18"


def test_auth_is_refused_the_jos_way(sandbox):
    method = "jingdong.im.pop.sessionlist.get"
    p = _params(sandbox, method, **WINDOW)
    p["sign"] = "0" * 32
    assert requests.post(f"{sandbox.url}/{P}/routerjson", data=p).json()["error_response"]["code"] == "12"
    r = _call(sandbox, method, token="not-a-token", **WINDOW)
    assert_golden_shape(r.json(), P, "error_response")
    assert r.json()["error_response"]["code"] == "19"
    p = _params(sandbox, method, **WINDOW)
    p["timestamp"] = _local(sandbox.state.now() + pd.Timedelta(minutes=7))
    p["sign"] = jos_sign(p, sandbox.state.credentials[P]["app_secret"])
    assert requests.post(f"{sandbox.url}/{P}/routerjson", data=p).json()["error_response"]["code"] == "8"
    assert _call(sandbox, "jingdong.nope.get").json()["error_response"]["code"] == "15"
    r = requests.get(f"{sandbox.url}/{P}/routerjson", params=_params(sandbox, method, **WINDOW))
    assert _ok(r)["ChatSessionPage"]["totalRecord"] > 0  # GET works as well


def _set_faults(sandbox, **values):
    r = requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values)
    assert r.status_code == 200, r.text


def _one_page(sandbox, token=None, headers=None, page=1, pageSize=20) -> requests.Response:
    return _call(
        sandbox, "jingdong.im.pop.sessionlist.get", token, headers, page=page, pageSize=pageSize, **WINDOW
    )


def _refresh(sandbox) -> str:
    c = sandbox.state.credentials[P]
    params = {
        "app_key": c["app_key"],
        "app_secret": c["app_secret"],
        "grant_type": "refresh_token",
        "refresh_token": c["refresh_token"],
    }
    body = requests.get(f"{sandbox.url}/{P}/oauth2/refresh_token", params=params).json()
    assert body["code"] == 0 and body["expires_in"] == 86400
    return body["access_token"]


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"rate_limit": 1, "retry_after_s": 4}, "2"),
        ({"error_codes": 1}, "66"),
        ({"api_off": True}, "67"),
        ({"permission_denied": True}, "13"),
        ({"expire_tokens_after": 1}, "19"),
    ],
)
def test_faults_answer_with_jos_error_codes(sandbox, fault, code):
    _set_faults(sandbox, **fault)
    r = _one_page(sandbox)
    assert r.status_code == 200
    assert_golden_shape(r.json(), P, "error_response")
    assert r.json()["error_response"]["code"] == code
    if code == "2":
        assert "4秒" in r.json()["error_response"]["zh_desc"]
    if code == "19":
        assert "error_response" in _one_page(sandbox).json()
        _ok(_one_page(sandbox, token=_refresh(sandbox)))
        return
    if "api_off" in fault or "permission_denied" in fault:
        requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    _ok(_one_page(sandbox))


def test_server_errors_hang_and_slow(sandbox):
    _set_faults(sandbox, server_errors=1)
    assert _one_page(sandbox).status_code == 503
    _set_faults(sandbox, hang=1, hang_s=0.3)
    t0 = time.monotonic()
    assert _one_page(sandbox).status_code == 503
    assert time.monotonic() - t0 >= 0.3
    _set_faults(sandbox, slow_s=0.2)
    t0 = time.monotonic()
    _ok(_one_page(sandbox))
    assert time.monotonic() - t0 >= 0.2


def test_duplicate_rows_repeat_the_previous_page(sandbox):
    clean, _ = _sessions(sandbox, page_size=50)
    _set_faults(sandbox, duplicate_rows=5)
    dup, pages = _sessions(sandbox, page_size=50)
    assert pages > 2
    assert len(dup) == len(clean) + 5 * (pages - 1)
    assert {s["sid"] for s in dup} == {s["sid"] for s in clean}


def test_late_sessions_and_schema_drift(sandbox, sim_data, as_of):
    _set_faults(sandbox, late_updates=True, late_by_s=3 * 3600)
    first, _ = _sessions(sandbox)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3 * 3600 + 1})
    second, _ = _sessions(sandbox)
    late = {s["sid"] for s in second} - {s["sid"] for s in first}
    conv = sim_data["conversations"]
    recent = conv[(conv["channel"] == P) & (conv["started_at"] > as_of - pd.Timedelta(hours=3))]
    assert late and late <= set(jd_sid(recent["conversation_id"]).tolist())
    requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    r = _one_page(
        sandbox, headers={"X-Sandbox-Fault": "schema_drift=changed_type,drift_share=0.2"}, pageSize=50
    )
    assert any(isinstance(s["startTime"], str) for s in _ok(r)["ChatSessionPage"]["chatSessionList"])
    _set_faults(sandbox, schema_drift="new_field")
    assert all(
        "sandbox_new_field" in s for s in _ok(_one_page(sandbox))["ChatSessionPage"]["chatSessionList"]
    )


def test_live_mode_window_from_the_cursor_returns_only_new_records(sandbox, sim_data, as_of):
    cursor = _local(as_of)
    before, _ = _sessions(sandbox)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    later = sandbox.state.now()
    new, _ = _sessions(sandbox, startTime=cursor, endTime=_local(later))
    conv = sim_data["conversations"].query("channel == @P and started_at > @as_of and started_at <= @later")
    assert len(conv) > 0
    assert sorted(s["sid"] for s in new) == sorted(jd_sid(conv["conversation_id"]).tolist())
    assert not {s["sid"] for s in new} & {s["sid"] for s in before}
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"speed": 600})  # a running clock
    more, _ = _sessions(sandbox, startTime=cursor, endTime="2026-11-12 23:59:59")
    assert {s["sid"] for s in new} <= {s["sid"] for s in more}
