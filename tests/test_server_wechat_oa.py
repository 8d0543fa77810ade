"""WeChat Official Account customer-service sandbox over real HTTP: shapes, auth, msgid paging
inside 24-hour windows, faults, live mode."""

from __future__ import annotations

import time
from collections import Counter

import pandas as pd
import pytest
import requests
from golden_check import assert_golden_shape

from sandbox.truth import visible_messages

P = "wechat_oa"
DAY = 86400


def _token(sandbox) -> str:
    c = sandbox.state.credentials[P]
    params = {"grant_type": "client_credential", "appid": c["appid"], "secret": c["secret"]}
    body = requests.get(f"{sandbox.url}/{P}/cgi-bin/token", params=params).json()
    assert_golden_shape(body, P, "token")
    return body["access_token"]


def _get(sandbox, token, start, end, msgid=1, number=10000, headers=None) -> requests.Response:
    body = {"starttime": int(start), "endtime": int(end), "msgid": msgid, "number": number}
    return requests.post(
        f"{sandbox.url}/{P}/customservice/msgrecord/getmsglist",
        params={"access_token": token},
        json=body,
        headers=headers,
        timeout=60,
    )


def _read_window(sandbox, token, start, end, number=10000, msgid=1, check_shape=False):
    """Page one window by msgid while the returned number equals the requested one."""
    records, pages = [], 0
    while True:
        r = _get(sandbox, token, start, end, msgid, number)
        body = r.json()
        assert r.status_code == 200 and "errcode" not in body, body
        if check_shape and body["recordlist"]:
            assert_golden_shape(body, P, "getmsglist")
        assert body["number"] == len(body["recordlist"]) <= number
        records += body["recordlist"]
        msgid, pages = body["msgid"], pages + 1
        if body["number"] < number:
            return records, msgid, pages


def _expected(sim_data, as_of, start=None, end=None) -> Counter:
    """(openid, opercode, time) of the customer and agent messages the API shows (the truth
    hides WeChat's conversation id, so it is joined back here only to find the openid)."""
    m = visible_messages(sim_data, P, as_of)
    if start is not None:
        m = m[(m["sent_at"] >= start) & (m["sent_at"] <= end)]
    conv = sim_data["conversations"].set_index("conversation_id")["platform_user_id"]
    m = m.join(sim_data["messages"].set_index("message_id")["conversation_id"].rename("cid"), on="message_id")
    m = m[m["sender_type"].isin(["customer", "agent"])]
    code = m["sender_type"].astype(str).map({"customer": 2003, "agent": 2002})
    secs = m["sent_at"].to_numpy("datetime64[s]").astype("int64").tolist()
    return Counter(zip(m["cid"].map(conv), code, secs, strict=True))


def _windows(sim_data, as_of):
    start = int(sim_data["conversations"]["started_at"].min().timestamp()) // DAY * DAY
    end = int(as_of.timestamp())
    return [(t, min(t + DAY - 1, end)) for t in range(start, end + 1, DAY)]


def test_paging_windows_returns_every_visible_record_once(sandbox, sim_data, as_of):
    token = _token(sandbox)
    records, total_pages = [], 0
    for start, end in _windows(sim_data, as_of):
        got, _, pages = _read_window(sandbox, token, start, end, number=300, check_shape=True)
        records += got
        total_pages += pages
    assert total_pages > len(_windows(sim_data, as_of))
    truth = visible_messages(sim_data, P, as_of)
    assert len(records) == len(truth)
    said = Counter((r["openid"], r["opercode"], r["time"]) for r in records if r["opercode"] in (2002, 2003))
    assert said == _expected(sim_data, as_of)
    ops = Counter(r["opercode"] for r in records)
    assert ops[1001] == int((truth["event"] == "assign").sum())
    assert ops[1004] == int((truth["event"] == "close").sum())
    kf = set(sandbox.state.channel_accounts(P)["account_id"])
    assert {r["worker"] for r in records if r["opercode"] == 2002} <= kf
    assert not any("conversation" in k or "session" in k for r in records for k in r)


def test_window_and_parameter_limits(sandbox):
    token = _token(sandbox)
    t = int(sandbox.state.now().timestamp())
    r = _get(sandbox, token, t - DAY - 1, t)
    assert r.status_code == 200
    assert_golden_shape(r.json(), P, "error_65417")
    assert r.json()["errcode"] == 65417
    assert _get(sandbox, token, t - 10, t, number=10001).json()["errcode"] == 65416
    assert _get(sandbox, token, t, t - 10).json()["errcode"] == 65416
    assert _get(sandbox, token, t - DAY, t, number=10000).json()["number"] >= 0


def test_agent_endpoints_have_golden_shapes(sandbox):
    token = _token(sandbox)
    base = f"{sandbox.url}/{P}"
    kf = requests.get(f"{base}/cgi-bin/customservice/getkflist", params={"access_token": token}).json()
    assert_golden_shape(kf, P, "getkflist")
    online = requests.get(
        f"{base}/cgi-bin/customservice/getonlinekflist", params={"access_token": token}
    ).json()
    assert_golden_shape(online, P, "getonlinekflist")
    assert len(online["kf_online_list"]) == sandbox.state.live_state(P)["agents_online"]
    wait = requests.get(f"{base}/customservice/kfsession/getwaitcase", params={"access_token": token}).json()
    assert set(wait) == {"count", "waitcaselist"} and wait["count"] == len(wait["waitcaselist"])


def test_auth_is_refused_the_wechat_way(sandbox):
    c = sandbox.state.credentials[P]
    url = f"{sandbox.url}/{P}/cgi-bin/token"
    bad = {"grant_type": "client_credential", "appid": c["appid"], "secret": "wrong"}
    assert requests.get(url, params=bad).json()["errcode"] == 40125
    assert requests.get(url, params={**bad, "appid": "wxnope"}).json()["errcode"] == 40013
    t = int(sandbox.state.now().timestamp())
    assert _get(sandbox, "not-a-token", t - 60, t).json()["errcode"] == 40001
    token = _token(sandbox)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 7201})
    r = _get(sandbox, token, t - 60, t)
    assert_golden_shape(r.json(), P, "error_42001")
    assert r.json()["errcode"] == 42001


def _set_faults(sandbox, **values):
    assert requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values).status_code == 200


@pytest.mark.parametrize(
    ("fault", "errcode"),
    [
        ({"rate_limit": 1}, 45009),
        ({"error_codes": 1}, -1),
        ({"api_off": True}, 65400),
        ({"permission_denied": True}, 48001),
        ({"expire_tokens_after": 1}, 42001),
    ],
)
def test_faults_answer_with_wechat_error_codes(sandbox, fault, errcode):
    token = _token(sandbox)
    t = int(sandbox.state.now().timestamp())
    _set_faults(sandbox, **fault)
    r = _get(sandbox, token, t - 3600, t)
    assert r.status_code == 200 and r.json()["errcode"] == errcode
    assert r.json()["errmsg"].count(" rid: ") == 1
    requests.delete(f"{sandbox.url}/_sandbox/faults", params={"platform": P})
    assert "errcode" not in _get(sandbox, _token(sandbox), t - 3600, t).json()


def test_server_errors_and_hang(sandbox):
    token = _token(sandbox)
    t = int(sandbox.state.now().timestamp())
    _set_faults(sandbox, server_errors=1)
    assert _get(sandbox, token, t - 60, t).status_code == 503
    t0 = time.monotonic()
    r = _get(sandbox, token, t - 60, t, headers={"X-Sandbox-Fault": "hang=1,hang_s=0.3"})
    assert r.status_code == 503 and time.monotonic() - t0 >= 0.3
    assert _get(sandbox, token, t - 60, t).status_code == 200


def test_duplicates_keep_page_size(sandbox, sim_data, as_of):
    token = _token(sandbox)
    end = int(as_of.timestamp())
    clean, _, _ = _read_window(sandbox, token, end - DAY + 1, end, number=100)
    _set_faults(sandbox, duplicate_rows=3)
    dup, _, pages = _read_window(sandbox, token, end - DAY + 1, end, number=100)
    assert pages > 2 and len(dup) == len(clean) + 3 * (pages - 1)
    assert set(map(tuple, (r.values() for r in dup))) == set(map(tuple, (r.values() for r in clean)))


def test_late_records_show_on_a_reread(sandbox, sim_data, as_of):
    token = _token(sandbox)
    end = int(as_of.timestamp())
    clean, _, _ = _read_window(sandbox, token, end - 6 * 3600, end)
    _set_faults(sandbox, late_updates=True, late_by_s=1800)
    late, _, _ = _read_window(sandbox, token, end - 6 * 3600, end)
    assert len(late) < len(clean)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 1801})
    reread, _, _ = _read_window(sandbox, token, end - 6 * 3600, end)
    assert Counter(map(lambda r: tuple(r.values()), reread)) == Counter(
        map(lambda r: tuple(r.values()), clean)
    )


@pytest.mark.parametrize("kind", ["new_field", "missing_field", "changed_type"])
def test_schema_drift(sandbox, kind):
    token = _token(sandbox)
    t = int(sandbox.state.now().timestamp())
    _set_faults(sandbox, schema_drift=kind, drift_share=0.1)
    recs = _get(sandbox, token, t - DAY + 1, t).json()["recordlist"]
    assert recs
    if kind == "new_field":
        assert all("sandbox_new_field" in r for r in recs)
    elif kind == "missing_field":
        assert any("openid" not in r for r in recs)
    else:
        assert any(isinstance(r["time"], str) for r in recs)


def test_live_mode_next_poll_returns_only_new_records(sandbox, sim_data, as_of):
    token = _token(sandbox)
    now = int(as_of.timestamp())
    _, next_msgid, _ = _read_window(sandbox, token, now - 20 * 3600, now)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    new, _, _ = _read_window(sandbox, token, now - 20 * 3600, now + 3600, msgid=next_msgid)
    later = as_of + pd.Timedelta(seconds=3600)
    expected = _expected(sim_data, later, as_of + pd.Timedelta(milliseconds=1), later)
    assert expected
    assert (
        Counter((r["openid"], r["opercode"], r["time"]) for r in new if r["opercode"] in (2002, 2003))
        == expected
    )
