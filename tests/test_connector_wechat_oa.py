"""WeChat Official Account connector specifics against the sandbox (the generic checks are
in tests/test_connectors.py): windows of at most 24 h, msgid paging, the whole-record key,
snapshots, error codes."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from connector_cases.wechat_oa import id_lookup

from connectors.cli import run_ingest
from connectors.core.config import load_config, sandbox_overrides
from connectors.core.http import ApiUnavailable, ConnectorError, FatalApiError
from connectors.core.runner import extract
from connectors.core.streams import Window
from connectors.platforms.wechat_oa import STREAMS, Connector, window_seconds
from sandbox.truth import visible_messages

P = "wechat_oa"
DAY_S = 86400


def connector(sandbox, **settings) -> Connector:
    config = load_config(overrides=sandbox_overrides(sandbox.url))[P]
    config.values.update(settings)
    return Connector(config)


def getmsglist_calls(c: Connector) -> list[tuple[dict, dict]]:
    """(request body, response body) of every getmsglist call the connector makes."""
    calls: list[tuple[dict, dict]] = []

    def hook(r, *args, **kwargs):
        if "getmsglist" in r.url:
            calls.append((json.loads(r.request.body), r.json()))

    c.http.session.hooks["response"].append(hook)
    return calls


def test_windows_never_exceed_24h_and_cover_the_range(workdir, sandbox, sim_data, as_of):
    c = connector(sandbox, page_size=500)
    calls = getmsglist_calls(c)
    result = extract(c, STREAMS["messages"], until=as_of)
    windows = sorted({(b["starttime"], b["endtime"]) for b, _ in calls})
    assert len(windows) == 7
    assert all(0 <= end - start <= DAY_S for start, end in windows)
    assert all(end - start < DAY_S for start, end in windows)  # [t, t + 86399]
    # contiguous, no gap: each window starts the second after the previous one ends
    assert all(b[0] == a[1] + 1 for a, b in zip(windows, windows[1:], strict=False))
    assert windows[-1][1] >= int(as_of.timestamp()) - 1
    assert result.rows == len(visible_messages(sim_data, P, as_of))
    with pytest.raises(ValueError, match="24 h"):
        window_seconds(Window(as_of - pd.Timedelta(hours=25), as_of))


def test_msgid_paging_goes_on_while_number_equals_the_request(workdir, sandbox, sim_data, as_of):
    c = connector(sandbox, page_size=300)
    calls = getmsglist_calls(c)
    extract(c, STREAMS["messages"], until=as_of)
    by_window: dict[tuple, list] = {}
    for req, resp in calls:
        by_window.setdefault((req["starttime"], req["endtime"]), []).append((req, resp))
    assert any(len(pages) > 2 for pages in by_window.values())
    for pages in by_window.values():
        assert pages[0][0]["msgid"] == 1
        for (req, resp), (nxt, _) in zip(pages, pages[1:], strict=False):
            assert resp["number"] == req["number"] == 300  # a full page: go on
            assert nxt["msgid"] == resp["msgid"]  # with the msgid returned
        assert pages[-1][1]["number"] < 300  # stopped on the first short page


def test_records_are_kept_as_received_and_keyed_by_the_whole_record(workdir, sandbox, sim_data, as_of):
    lookup = id_lookup(sim_data)
    assert not lookup.duplicated(["openid", "opercode", "time", "text"]).any()  # the case's mapping
    summary = run_ingest([P], None, None, as_of, sandbox.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    rows = con.execute("select _record_key, payload from raw.wechat_oa__messages").df()
    snaps = {
        s: con.execute(f"select payload from raw.wechat_oa__{s}").df()["payload"].map(json.loads)
        for s in ("agents", "agent_status", "queue")
    }
    con.close()
    records = rows["payload"].map(json.loads)
    assert all(set(r) == {"openid", "opercode", "text", "time", "worker"} for r in records)
    assert rows["_record_key"].is_unique
    assert len(rows) == len(visible_messages(sim_data, P, as_of))
    polled = int(as_of.timestamp())
    assert len(snaps["agents"]) == len(sandbox.state.channel_accounts(P)) > 0
    assert all(r["polled_at"] == polled and "kf_account" in r for r in snaps["agents"])
    assert len(snaps["agent_status"]) == sandbox.state.live_state(P)["agents_online"]
    (queue,) = snaps["queue"]
    assert queue["polled_at"] == polled and queue["count"] == len(queue["waitcaselist"])


def test_a_rerun_over_the_lookback_adds_no_rows(workdir, sandbox, as_of):
    run_ingest([P], "messages", None, as_of, sandbox.url, show_progress=False)
    summary = run_ingest([P], "messages", None, as_of, sandbox.url, show_progress=False)
    assert summary["extracted"][0]["rows"] > 0  # the look-back hour is read again
    assert summary["loaded"]["rows"] == 0  # ... and the loader keeps nothing twice


def test_error_codes(workdir, sandbox, as_of):
    c = connector(sandbox)
    t = int(as_of.timestamp())
    with pytest.raises(FatalApiError, match="65417.*24 h"):
        c.http.json(
            "POST",
            f"{c.base}/customservice/msgrecord/getmsglist",
            json={"starttime": t - DAY_S - 1, "endtime": t, "msgid": 1, "number": 10},
        )
    sandbox.state.faults.set(P, permission_denied=True)
    with pytest.raises(ApiUnavailable, match="48001"):
        extract(c, STREAMS["agents"], until=as_of)
    sandbox.state.faults.set(P, permission_denied=False, api_off=True)
    with pytest.raises(ApiUnavailable, match="65400.*not enabled"):
        extract(c, STREAMS["messages"], until=as_of)
    bad = connector(sandbox, secret="wrong-secret")
    with pytest.raises(ConnectorError, match="40125.*secret"):
        extract(bad, STREAMS["agents"], until=as_of)


def test_rate_limit_and_busy_codes_are_retried(workdir, sandbox, as_of):
    c = connector(sandbox)
    sandbox.state.faults.set(P, rate_limit=2, error_codes=2, expire_tokens_after=1)
    extract(c, STREAMS["queue"], until=as_of)
    extract(c, STREAMS["agents"], until=as_of)
    assert c.http.stats["retries"] >= 4
    assert c.http.stats["token_refreshes"] == 1
