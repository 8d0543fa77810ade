"""Taobao TOP gateway sandbox over real HTTP: signing, golden shapes, D+1 windows, faults,
every visible chat message exactly once, live mode across midnight."""

from __future__ import annotations

import copy
import time
from collections import Counter

import pandas as pd
import pytest
import requests

try:  # tests/ on sys.path (rootdir-style) or tests as a package (tests/__init__.py)
    from golden_check import assert_golden_shape, golden_response, load_golden, shape_errors
except ModuleNotFoundError:
    from tests.golden_check import assert_golden_shape, golden_response, load_golden, shape_errors

from sandbox.server.platforms.taobao import top_sign
from sandbox.truth import visible_messages, visible_ratings

P = "taobao"
EXT = "session_id"  # the sandbox's documented extension on chat messages and evaluations
WINDOW = {"start_date": "2026-11-05", "end_date": "2026-11-10"}  # as_of is 2026-11-11 16:00


def _local(ts: pd.Timestamp) -> str:
    return ts.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M:%S")


def _params(sandbox, method: str, sign_method: str = "md5", session: str | None = None, **biz) -> dict:
    c = sandbox.state.credentials[P]
    p = {
        "method": method,
        "app_key": c["app_key"],
        "session": session or c["session"],
        "timestamp": _local(sandbox.state.now()),
        "format": "json",
        "v": "2.0",
        "sign_method": sign_method,
        **biz,
    }
    p["sign"] = top_sign(p, c["app_secret"], sign_method)
    return p


def _call(sandbox, method: str, headers=None, **kw) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/{P}/router/rest", data=_params(sandbox, method, **kw), headers=headers, timeout=60
    )


def _ok(r: requests.Response, *_ignored) -> dict:
    """The inside of a successful answer (`<method>_response`)."""
    body = r.json()
    assert r.status_code == 200 and "error_response" not in body and len(body) == 1, body
    ((key, inner),) = body.items()
    assert key.endswith("_response")
    return inner


def _with_ext(name: str, path: tuple[str, ...]) -> dict:
    """The golden response with the sandbox's `session_id` added to the records at `path`."""
    golden = copy.deepcopy(golden_response(P, name))
    node = golden
    for key in path:
        node = node[key]
    for record in node:
        record[EXT] = 1
    return golden


def _accounts(sandbox) -> list[str]:
    body = _ok(_call(sandbox, "taobao.sellercenter.subusers.get", nick="cs_shop"))
    subs = body["subusers"]["sub_user_info"]
    assert {s["status"] for s in subs} == {1}
    return ["cntaobao" + subs[0]["seller_nick"]] + ["cntaobao" + s["nick"] for s in subs]


def test_top_sign_matches_the_golden_samples():
    for name in ("wangwang_eservice_chatlog_get", "wangwang_eservice_evals_get", "error_params_today"):
        request = dict(load_golden(P, name)["request_example"])
        assert top_sign(request, "test_secret") == request["sign"]


def _expected_chat(sim_data, as_of) -> Counter:
    m = visible_messages(sim_data, P, as_of)
    m = m[m["sender_type"] != "system"]
    return Counter(
        zip(
            m["conversation_id"].astype(int),
            m["sent_at"].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M:%S"),
            (m["sender_type"] == "customer").astype(int),
            m["content"].astype(str),
            strict=True,
        )
    )


def _read_chat(sandbox, accounts, window, check_shape=False) -> list[dict]:
    """chatpeers for every account, then chatlog for every (account, buyer) pair."""
    out = []
    for account in accounts:
        r = _call(sandbox, "taobao.wangwang.eservice.chatpeers.get", chat_id=account, **window)
        peers = _ok(r)
        if check_shape and peers["count"]:
            assert_golden_shape(r.json(), P, "wangwang_eservice_chatpeers_get")
        for uid in sorted({p["uid"] for p in peers.get("chatpeers", {}).get("chatpeer", [])}):
            r = _call(sandbox, "taobao.wangwang.eservice.chatlog.get", from_id=account, to_id=uid, **window)
            if check_shape:
                errors = shape_errors(
                    _with_ext(
                        "wangwang_eservice_chatlog_get",
                        ("wangwang_eservice_chatlog_get_response", "msgs", "msg"),
                    ),
                    r.json(),
                )
                assert not errors, errors
                check_shape = False
            log = _ok(r)
            assert log["count"] == len(log["msgs"]["msg"]) > 0
            out += log["msgs"]["msg"]
    return out


def test_every_visible_chat_message_once(sandbox, sim_data, as_of):
    msgs = _read_chat(sandbox, _accounts(sandbox), WINDOW, check_shape=True)
    got = Counter((m["session_id"], m["time"], m["direction"], m["content"]) for m in msgs)
    assert got == _expected_chat(sim_data, as_of)
    # D+1: nothing from today (as_of is 2026-11-11 16:00 in Shanghai)
    assert max(m["time"] for m in msgs) < "2026-11-11"


def test_stats_evals_and_agents(sandbox, sim_data, as_of):
    accounts = _accounts(sandbox)
    staff = ",".join(accounts)
    window = {"start_date": "2026-11-08 00:00:00", "end_date": "2026-11-10 00:00:00"}
    r = _call(sandbox, "taobao.wangwang.eservice.evals.get", service_staff_id=staff, **window)
    path = ("wangwang_eservice_evals_get_response", "staff_eval_details", "eval_detail")
    assert not shape_errors(_with_ext("wangwang_eservice_evals_get", path), r.json())
    evals = r.json()[path[0]]["staff_eval_details"]["eval_detail"]
    truth = visible_ratings(sim_data, P, as_of)
    day = truth["rated_at"].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d")
    truth = truth[(day >= "2026-11-08") & (day <= "2026-11-10")]
    assert sorted((e["session_id"], e["eval_code"]) for e in evals) == sorted(
        zip(truth["conversation_id"], 5 - truth["csat"].astype(int), strict=True)
    )
    assert {e["eval_code"] for e in evals} <= {0, 1, 2, 3, 4}
    for method, name in (
        ("receivenum", "wangwang_eservice_receivenum_get"),
        ("avgwaittime", "wangwang_eservice_avgwaittime_get"),
    ):
        r = _call(sandbox, f"taobao.wangwang.eservice.{method}.get", service_staff_id=staff, **window)
        assert_golden_shape(r.json(), P, name)
    days = r.json()["wangwang_eservice_avgwaittime_get_response"]["waiting_time_list_on_days"][
        "waiting_times_on_day"
    ]
    assert [d["waiting_date"][:10] for d in days] == ["2026-11-08", "2026-11-09", "2026-11-10"]
    logs = _ok(
        _call(sandbox, "taobao.wangwang.eservice.loginlogs.get", service_staff_id=accounts[1], **WINDOW)
    )
    assert logs["user_id"] == accounts[1] and logs["count"] == len(logs["loginlogs"]["login_log"]) > 0
    assert {x["type"] for x in logs["loginlogs"]["login_log"]} == {"0", "1"}


def test_windows_today_and_span_are_refused(sandbox):
    method = "taobao.wangwang.eservice.receivenum.get"
    r = _call(
        sandbox,
        method,
        service_staff_id="cntaobaocs_shop:agent0001",
        start_date="2026-11-11 00:00:00",
        end_date="2026-11-11 00:00:00",
    )
    assert_golden_shape(r.json(), P, "error_params_today")
    assert r.json()["error_response"]["sub_msg"] == "不能查询当天的记录"
    r = _call(
        sandbox,
        method,
        service_staff_id="cntaobaocs_shop:agent0001",
        start_date="2026-11-01",
        end_date="2026-11-08",
    )
    assert r.json()["error_response"]["sub_code"] == "isv.invalid-parameter"
    r = _call(sandbox, "taobao.wangwang.eservice.evals.get", **WINDOW)
    assert r.json()["error_response"]["code"] == 40


def test_auth_is_refused_the_top_way(sandbox):
    method = "taobao.wangwang.eservice.evals.get"
    args = {"service_staff_id": "cntaobaocs_shop:agent0001", **WINDOW}
    p = _params(sandbox, method, **args)
    p["sign"] = "0" * 32
    r = requests.post(f"{sandbox.url}/{P}/router/rest", data=p)
    assert_golden_shape(r.json(), P, "error_invalid_signature")
    assert r.json()["error_response"]["code"] == 25
    r = _call(sandbox, method, session="not-a-session", **args)
    assert_golden_shape(r.json(), P, "error_session_expired")
    assert r.json()["error_response"]["code"] == 27
    for sign_method in ("hmac", "hmac-sha256"):  # GET works as well as POST
        r = requests.get(
            f"{sandbox.url}/{P}/router/rest", params=_params(sandbox, method, sign_method, **args)
        )
        assert "wangwang_eservice_evals_get_response" in r.json()
    p = _params(sandbox, method, **args)
    p["timestamp"] = _local(sandbox.state.now() - pd.Timedelta(minutes=11))
    p["sign"] = top_sign(p, sandbox.state.credentials[P]["app_secret"])
    assert requests.post(f"{sandbox.url}/{P}/router/rest", data=p).json()["error_response"]["code"] == 31
    p = _params(sandbox, method, **args)
    p["app_key"] = "nope"
    assert requests.post(f"{sandbox.url}/{P}/router/rest", data=p).json()["error_response"]["code"] == 29
    assert _call(sandbox, "taobao.nope.get").json()["error_response"]["code"] == 22


def _set_faults(sandbox, **values):
    r = requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values)
    assert r.status_code == 200, r.text


def _evals(sandbox, session=None, headers=None) -> requests.Response:
    return _call(
        sandbox,
        "taobao.wangwang.eservice.evals.get",
        session=session,
        headers=headers,
        service_staff_id="cntaobaocs_shop:agent0001",
        **WINDOW,
    )


def _refresh(sandbox) -> str:
    c = sandbox.state.credentials[P]
    body = requests.post(
        f"{sandbox.url}/{P}/token",
        data={
            "grant_type": "refresh_token",
            "client_id": c["app_key"],
            "client_secret": c["app_secret"],
            "refresh_token": c["refresh_token"],
        },
    ).json()
    assert body["expires_in"] == 86400
    return body["access_token"]


@pytest.mark.parametrize(
    ("fault", "code", "sub_code"),
    [
        ({"rate_limit": 1, "retry_after_s": 3}, 7, "accesscontrol.limited-by-app-access-count"),
        ({"error_codes": 1}, 15, "isp.top-remote-connection-timeout"),
        ({"api_off": True}, 22, "isv.method-not-permit"),
        ({"permission_denied": True}, 11, "isv.permission-api-package-limit"),
        ({"expire_tokens_after": 1}, 27, "invalid-sessionkey"),
    ],
)
def test_faults_answer_with_top_error_codes(sandbox, fault, code, sub_code):
    _set_faults(sandbox, **fault)
    r = _evals(sandbox)
    assert r.status_code == 200
    err = r.json()["error_response"]
    assert (err["code"], err["sub_code"]) == (code, sub_code)
    if code == 7:
        assert_golden_shape(r.json(), P, "error_app_call_limited")
        assert "3 more seconds" in err["sub_msg"]
    if code == 27:
        assert "error_response" in _evals(sandbox).json()  # the test session stays dead
        assert "wangwang_eservice_evals_get_response" in _evals(sandbox, session=_refresh(sandbox)).json()
        return
    if "api_off" in fault or "permission_denied" in fault:
        requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    assert "wangwang_eservice_evals_get_response" in _evals(sandbox).json()


def test_server_errors_hang_and_slow(sandbox):
    _set_faults(sandbox, server_errors=1)
    assert _evals(sandbox).status_code == 502
    _set_faults(sandbox, hang=1, hang_s=0.3)
    t0 = time.monotonic()
    assert _evals(sandbox).status_code == 502
    assert time.monotonic() - t0 >= 0.3
    _set_faults(sandbox, slow_s=0.2)
    t0 = time.monotonic()
    assert "wangwang_eservice_evals_get_response" in _evals(sandbox).json()
    assert time.monotonic() - t0 >= 0.2


def test_duplicate_rows_and_schema_drift(sandbox):
    clean = _ok(_evals(sandbox))["staff_eval_details"]["eval_detail"]
    _set_faults(sandbox, duplicate_rows=3)
    dup = _ok(_evals(sandbox))["staff_eval_details"]["eval_detail"]
    assert dup == clean + clean[-3:]
    requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    drifted = _ok(_evals(sandbox, headers={"X-Sandbox-Fault": "schema_drift=changed_type,drift_share=0.1"}))
    assert any(isinstance(e["eval_code"], str) for e in drifted["staff_eval_details"]["eval_detail"])
    _set_faults(sandbox, schema_drift="missing_field")
    assert any("eval_time" not in e for e in _ok(_evals(sandbox))["staff_eval_details"]["eval_detail"])


def test_late_messages_show_up_on_a_reread(sandbox, sim_data):
    # just after midnight yesterday is complete; some messages of its last hours come late
    sandbox.state.clock.set(pd.Timestamp("2026-11-11 00:10", tz="Asia/Shanghai"))
    accounts = _accounts(sandbox)
    day = {"start_date": "2026-11-10", "end_date": "2026-11-10"}
    _set_faults(sandbox, late_updates=True, late_by_s=4 * 3600)
    first = Counter((m["session_id"], m["time"], m["content"]) for m in _read_chat(sandbox, accounts, day))
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 4 * 3600 + 1})
    second = Counter((m["session_id"], m["time"], m["content"]) for m in _read_chat(sandbox, accounts, day))
    late = second - first
    assert late and not first - second
    assert all(t >= "2026-11-10 20:10:00" for _, t, _ in late)


def test_live_mode_next_day_brings_only_new_records(sandbox, sim_data):
    sandbox.state.clock.set(pd.Timestamp("2026-11-10 23:30", tz="Asia/Shanghai"))
    staff = ",".join(_accounts(sandbox))
    cursor_day = "2026-11-09"  # the last complete day at 23:30
    old = _ok(
        _call(
            sandbox,
            "taobao.wangwang.eservice.evals.get",
            service_staff_id=staff,
            start_date=cursor_day,
            end_date=cursor_day,
        )
    )
    refused = _call(
        sandbox,
        "taobao.wangwang.eservice.evals.get",
        service_staff_id=staff,
        start_date="2026-11-10",
        end_date="2026-11-10",
    ).json()
    assert refused["error_response"]["sub_msg"] == "不能查询当天的记录"
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    new = _ok(
        _call(
            sandbox,
            "taobao.wangwang.eservice.evals.get",
            service_staff_id=staff,
            start_date="2026-11-10",
            end_date="2026-11-10",
        )
    )
    later = pd.Timestamp("2026-11-11 00:30", tz="Asia/Shanghai")
    truth = visible_ratings(sim_data, P, later)
    truth = truth[truth["rated_at"].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m-%d") == "2026-11-10"]
    got = {e["session_id"] for e in new["staff_eval_details"]["eval_detail"]}
    assert got == set(truth["conversation_id"]) and len(got) > 0
    assert not got & {e["session_id"] for e in old["staff_eval_details"]["eval_detail"]}
