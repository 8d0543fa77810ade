"""Zendesk sandbox over real HTTP: shapes, basic auth, the cursor export that ends on
end_of_stream, list paging, faults (429 + Retry-After ...), live mode."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import requests
from golden_check import assert_golden_shape, golden_response, load_golden

from sandbox.truth import visible_messages, visible_ratings

P = "zendesk"
HOLD_BACK = pd.Timedelta(seconds=60)


@pytest.fixture()
def zd(sandbox) -> requests.Session:
    c = sandbox.state.credentials[P]
    s = requests.Session()
    s.auth = (f"{c['email']}/token", c["api_token"])
    s.base = f"{sandbox.url}/{P}/api/v2"
    return s


def _export(zd, path="incremental/tickets/cursor.json", key="tickets", start_time=0, cursor=None, **params):
    """Follow after_url until end_of_stream; returns (items, pages, last after_cursor)."""
    url = f"{zd.base}/{path}"
    params = {**params, **({"cursor": cursor} if cursor else {"start_time": start_time})}
    items, pages = [], []
    while True:
        r = zd.get(url, params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body[key]
        pages.append(body)
        if body["end_of_stream"]:
            return items, pages, body["after_cursor"]
        url, params = body["after_url"], None


def _expected_tickets(state, as_of) -> pd.Series:
    """Visible tickets and their updated_at (a rating updates its ticket), as exported now."""
    c = state.conversations(P)
    r = state.data["ratings"].query("channel == @P").set_index("conversation_id")["rated_at"]
    rated = c["conversation_id"].map(r)
    rated = rated.where(rated <= as_of)
    upd = c["updated_at"].where(~(rated > c["updated_at"]), rated)
    upd.index = c["conversation_id"]
    return upd[upd <= as_of - HOLD_BACK]


def test_ticket_export_every_ticket_once_and_stops_on_end_of_stream(sandbox, zd, as_of):
    tickets, pages, _ = _export(zd)
    for body in pages:
        if body["tickets"]:
            assert_golden_shape(body, P, "incremental_tickets_cursor")
    ids = [t["id"] for t in tickets]
    expected = _expected_tickets(sandbox.state, as_of)
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == set(expected.index)
    keys = [(t["generated_timestamp"], t["id"]) for t in tickets]
    assert keys == sorted(keys)
    # a client that stopped on an empty or short page would have stopped early
    assert any(not b["tickets"] and not b["end_of_stream"] for b in pages)
    assert any(0 < len(b["tickets"]) < 1000 and not b["end_of_stream"] for b in pages)
    users = {u["id"] for u in zd.get(f"{zd.base}/users.json", params={"role": "agent"}).json()["users"]}
    assert {t["assignee_id"] for t in tickets} - {None} <= users
    assert {t["status"] for t in tickets} <= {"new", "open", "solved"}


def test_per_page_and_start_time(sandbox, zd, as_of):
    start = int((as_of - pd.Timedelta(days=2)).timestamp())
    tickets, pages, _ = _export(zd, start_time=start, per_page=5)
    assert all(len(b["tickets"]) <= 5 for b in pages)
    expected = _expected_tickets(sandbox.state, as_of)
    assert sorted(t["id"] for t in tickets) == sorted(
        expected[expected >= pd.Timestamp(start, unit="s", tz="UTC")].index
    )
    assert (
        zd.get(
            f"{zd.base}/incremental/tickets/cursor.json", params={"start_time": 0, "per_page": 1001}
        ).status_code
        == 400
    )


def test_comments_per_ticket_and_bulk(sandbox, zd, sim_data, as_of):
    truth = visible_messages(sim_data, P, as_of)
    said = truth[truth["sender_type"].isin(["customer", "agent"])]
    tid = int(said["conversation_id"].value_counts().index[0])
    r = zd.get(f"{zd.base}/tickets/{tid}/comments.json", params={"per_page": 2})
    assert_golden_shape(r.json(), P, "ticket_comments")
    got, url = [], f"{zd.base}/tickets/{tid}/comments.json?per_page=2"
    while url:
        body = zd.get(url).json()
        got += [c["id"] for c in body["comments"]]
        url = body["next_page"]
    assert (
        got
        == said.loc[said["conversation_id"] == tid]
        .sort_values(["sent_at", "message_id"])["message_id"]
        .tolist()
    )
    assert zd.get(f"{zd.base}/tickets/999999999/comments.json").status_code == 404
    comments, pages, _ = _export(zd, "sandbox/incremental/comments/cursor.json", "comments")
    expected = said[said["sent_at"] <= as_of - HOLD_BACK]
    ids = [c["id"] for c in comments]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == set(expected["message_id"])
    assert all(c["ticket_id"] for c in comments)


def test_satisfaction_ratings_offset_and_cursor_paging(sandbox, zd, sim_data, as_of):
    truth = visible_ratings(sim_data, P, as_of)
    url, offset_ids = f"{zd.base}/satisfaction_ratings.json?per_page=7", []
    while url:
        body = zd.get(url).json()
        assert_golden_shape(body, P, "satisfaction_ratings")
        offset_ids += [r["id"] for r in body["satisfaction_ratings"]]
        url = body["next_page"]
    assert sorted(offset_ids) == sorted(truth["rating_id"]) and len(set(offset_ids)) == len(offset_ids)
    params, cursor_ids = {"page[size]": 7}, []
    while True:
        body = zd.get(f"{zd.base}/satisfaction_ratings.json", params=params).json()
        assert set(body) == {"satisfaction_ratings", "meta", "links"}
        cursor_ids += [r["id"] for r in body["satisfaction_ratings"]]
        if not body["meta"]["has_more"]:
            break
        params = {"page[size]": 7, "page[after]": body["meta"]["after_cursor"]}
    assert cursor_ids == offset_ids
    start, end = as_of - pd.Timedelta(days=2), as_of - pd.Timedelta(days=1)
    window = zd.get(
        f"{zd.base}/satisfaction_ratings.json",
        params={"start_time": int(start.timestamp()), "end_time": int(end.timestamp())},
    ).json()
    inside = truth[(truth["rated_at"] >= start) & (truth["rated_at"] <= end)]
    assert sorted(r["id"] for r in window["satisfaction_ratings"]) == sorted(inside["rating_id"])
    good = zd.get(f"{zd.base}/satisfaction_ratings.json", params={"score": "good"}).json()
    assert {r["score"] for r in good["satisfaction_ratings"]} == {"good"}


def test_users_golden_shape(zd, sandbox):
    body = zd.get(f"{zd.base}/users.json", params={"role": "agent"}).json()
    assert_golden_shape(body, P, "users")
    assert {u["id"] for u in body["users"]} == set(
        sandbox.state.channel_accounts(P)["account_id"].astype(int)
    )


def test_basic_auth_is_required(sandbox, zd):
    url = f"{zd.base}/incremental/tickets/cursor.json?start_time=0"
    assert requests.get(url).status_code == 401
    c = sandbox.state.credentials[P]
    r = requests.get(url, auth=(f"{c['email']}/token", "wrong"))
    assert r.status_code == 401 and r.json() == {"error": "Couldn't authenticate you"}
    assert requests.get(url, auth=(c["email"], c["api_token"])).status_code == 401


def _set_faults(sandbox, **values):
    assert requests.post(f"{sandbox.url}/_sandbox/faults/{P}", json=values).status_code == 200


def test_rate_limit_is_429_with_retry_after(sandbox, zd):
    _set_faults(sandbox, rate_limit=1, retry_after_s=7)
    r = zd.get(f"{zd.base}/incremental/tickets/cursor.json", params={"start_time": 0})
    golden = load_golden(P, "rate_limited_429")
    assert r.status_code == golden["http_status"] == 429
    assert r.headers["Retry-After"] == "7"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == golden_response(P, "rate_limited_429")
    assert zd.get(f"{zd.base}/incremental/tickets/cursor.json", params={"start_time": 0}).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"error_codes": 1}, 503),
        ({"server_errors": 1}, 500),
        ({"api_off": True}, 403),
        ({"permission_denied": True}, 403),
        ({"expire_tokens_after": 1}, 200),  # API tokens do not expire
    ],
)
def test_other_faults(sandbox, zd, fault, status):
    _set_faults(sandbox, **fault)
    r = zd.get(f"{zd.base}/users.json")
    assert r.status_code == status
    if status == 503:
        assert "Retry-After" in r.headers
    if status == 403:
        assert r.json()["error"] == ("APIAccessDisabled" if "api_off" in fault else "Forbidden")


def test_hang_and_slow_via_header(sandbox, zd):
    t0 = time.monotonic()
    r = zd.get(f"{zd.base}/users.json", headers={"X-Sandbox-Fault": "hang=1,hang_s=0.3"})
    assert r.status_code == 500 and time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    r = zd.get(f"{zd.base}/users.json", headers={"X-Sandbox-Fault": "slow_s=0.2"})
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.2


def test_duplicates_across_export_pages(sandbox, zd):
    clean, _, _ = _export(zd, per_page=10)
    _set_faults(sandbox, duplicate_rows=2)
    dup, pages, _ = _export(zd, per_page=10)
    ids = [t["id"] for t in dup]
    assert len(ids) > len(set(ids)) and set(ids) == {t["id"] for t in clean}
    assert all(len(b["tickets"]) <= 10 for b in pages)


def test_late_updates_arrive_after_the_cursor(sandbox, zd, as_of):
    _set_faults(sandbox, late_updates=True, late_by_s=1800)
    first, _, cursor = _export(zd)
    missing = set(_expected_tickets(sandbox.state, as_of).index) - {t["id"] for t in first}
    assert missing
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 1900})
    later, _, _ = _export(zd, cursor=cursor)
    assert missing <= {t["id"] for t in later}
    assert all(t["generated_timestamp"] >= pd.Timestamp(t["updated_at"]).timestamp() for t in later)


@pytest.mark.parametrize("kind", ["new_field", "missing_field", "changed_type"])
def test_schema_drift(sandbox, zd, kind):
    _set_faults(sandbox, schema_drift=kind, drift_share=0.2)
    tickets, _, _ = _export(zd)
    if kind == "new_field":
        assert all("sandbox_new_field" in t for t in tickets)
    elif kind == "missing_field":
        assert any("updated_at" not in t for t in tickets)
    else:
        assert any(isinstance(t["id"], str) for t in tickets)


def test_live_mode_after_cursor_returns_only_changes(sandbox, zd, as_of):
    _, _, cursor = _export(zd)
    before = _expected_tickets(sandbox.state, as_of)
    requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 3600})
    later = as_of + pd.Timedelta(seconds=3600)
    changed, _, _ = _export(zd, cursor=cursor)
    after = _expected_tickets(sandbox.state, later)
    expected = after[after > as_of - HOLD_BACK]
    assert len(expected) and sorted(t["id"] for t in changed) == sorted(expected.index)
    assert set(expected.index) - set(before.index)  # new tickets, not only updated ones


def _ticket_events(zd, start_time=0, **params):
    """Follow the time-based ticket event export (start_time = end_time) to end_of_stream."""
    items, pages = [], []
    while True:
        r = zd.get(f"{zd.base}/incremental/ticket_events.json", params={"start_time": start_time, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["ticket_events"]
        pages.append(body)
        if body["end_of_stream"]:
            return items, pages
        assert body["end_time"] >= start_time
        start_time = body["end_time"]


def test_ticket_event_export_shows_every_assignee_and_status_change(sandbox, zd, sim_data, as_of):
    events, pages = _ticket_events(zd, per_page=20)
    for body in pages:
        if body["ticket_events"]:
            assert_golden_shape(body, P, "incremental_ticket_events")
        assert body["count"] == len(body["ticket_events"]) <= 20
    by_id = {e["id"]: e for e in events}  # the end_time second comes again: de-duplicate on id
    m = sim_data["messages"]
    truth = m[
        (m["channel"] == P)
        & m["event"].isin(["assign", "transfer", "close", "reopen"])
        & (m["sent_at"] <= as_of - HOLD_BACK)
    ]
    assert len(by_id) == len(truth) and set(by_id) == set(truth["message_id"] + 10**9)
    kinds = {
        mid: next(iter({k for c in e["child_events"] for k in c} & {"assignee_id", "status"}))
        for mid, e in by_id.items()
        if len(e["child_events"]) == 1
    }
    event_of = truth.set_index("message_id")["event"].astype(str)
    for audit, field in kinds.items():  # one change: a transfer (assignee) or a solve/reopen (status)
        assert field == ("assignee_id" if event_of[audit - 10**9] == "transfer" else "status")
    times = [(e["timestamp"], e["id"]) for e in events]
    assert times == sorted(times)


def test_ticket_event_export_refuses_recent_start_and_bad_pages(sandbox, zd, as_of):
    url = f"{zd.base}/incremental/ticket_events.json"
    assert zd.get(url, params={"start_time": int(as_of.timestamp()) - 30}).status_code == 400
    assert zd.get(url, params={"start_time": 0, "per_page": 1001}).status_code == 400
    assert zd.get(url).status_code == 400
    _set_faults(sandbox, duplicate_rows=3)
    events, _ = _ticket_events(zd, per_page=10)
    assert sandbox.state.faults.snapshot()["fired"][P]["duplicate_rows"] > 0
    assert len(events) > len({e["id"] for e in events})
