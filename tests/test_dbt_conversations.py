"""The oracle: fct_conversations, built by dbt from what the connectors landed, equals the
sandbox's ground truth, platform by platform.

Calendar seconds are compared exactly at the platform's time precision (WeCom sends unix
seconds, so truth times are floored to the second first); business seconds are compared
with an independent Python computation from the same seeds.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from connector_cases import cases

from connectors.cli import run_ingest
from csw.settings import seeds_dir
from csw.transform import transform
from sandbox.truth import conversations_at, visible_cutoff

CASES = {p: c for p, c in cases().items() if c.truth_conversation_ids is not None}


@pytest.fixture(scope="module")
def built(tmp_path_factory, sim_data, _server, as_of):
    """Ingest every platform with a connector case, then dbt build, once for the module."""
    work = tmp_path_factory.mktemp("oracle")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    start = pd.Timestamp(sim_data.config["start"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    summary = run_ingest(sorted(CASES), None, start, as_of, _server.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    transform(as_of)
    con = duckdb.connect(str(work / "warehouse" / "warehouse.duckdb"), read_only=True)
    fct = con.execute("select * from marts.fct_conversations").df()
    messages = con.execute("select * from marts.fct_messages").df()
    con.close()
    fct.attrs["messages"] = messages
    yield fct
    mp.undo()


# -- an independent business-hours clock (pandas + the seeds, no SQL) -----------------------
def _business_calendar() -> tuple[dict, set, set]:
    hours = pd.read_csv(seeds_dir() / "business_hours.csv", dtype=str)
    cal = pd.read_csv(seeds_dir() / "calendar_events.csv")
    holidays = set(pd.to_datetime(cal.loc[cal["kind"] == "holiday", "event_date"]).dt.date)
    makeup = set(pd.to_datetime(cal.loc[cal["kind"] == "makeup_workday", "event_date"]).dt.date)
    table = {}
    for r in hours.itertuples():
        o = dt.time.fromisoformat(r.open_time)
        c = dt.time.fromisoformat(r.close_time)
        table[(r.channel, r.day_type)] = (o, c)
    return table, holidays, makeup


def business_seconds(channel: str, a: pd.Timestamp, b: pd.Timestamp) -> float:
    table, holidays, makeup = _business_calendar_cached()
    tz = "Asia/Shanghai"
    a_local, b_local = a.tz_convert(tz), b.tz_convert(tz)
    total = 0.0
    day = a_local.date()
    while day <= b_local.date():
        if day in holidays:
            kind = "holiday"
        elif day in makeup or day.weekday() < 5:
            kind = "weekday"
        else:
            kind = "weekend"
        window = table.get((channel, kind))
        if window:
            open_at = pd.Timestamp(dt.datetime.combine(day, window[0]), tz=tz)
            close_at = pd.Timestamp(dt.datetime.combine(day, window[1]), tz=tz)
            lo, hi = max(open_at, a_local), min(close_at, b_local)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += dt.timedelta(days=1)
    return total


_CAL = None


def _business_calendar_cached():
    global _CAL
    if _CAL is None:
        _CAL = _business_calendar()
    return _CAL


def _floor(ts: pd.Series, precision_ms: int) -> pd.Series:
    return ts.dt.floor(f"{precision_ms}ms")


def _expected(sim_data, platform: str, as_of) -> pd.DataFrame:
    """Truth for the conversations the platform shows whole at as_of."""
    lower, upper = visible_cutoff(platform, as_of)
    t = conversations_at(sim_data, upper)
    t = t[t["channel"] == platform]
    if lower is not None:
        t = t[t["started_at"] >= lower]
    t = t.set_index("conversation_id")
    # what the platform cannot show (a hand-off event, closes) turns the truth into the
    # platform's truth: e.g. Taobao shows no hand-off, so its queue starts at the first message
    adjust = CASES[platform].notes.get("platform_truth")
    return adjust(t, sim_data, upper) if adjust else t


@pytest.mark.parametrize("platform", sorted(CASES))
def test_fct_conversations_equals_truth(built, sim_data, as_of, platform):
    case = CASES[platform]
    fct = built[built["channel"] == platform].copy()
    fct["truth_id"] = case.truth_conversation_ids(fct, sim_data)
    expected = _expected(sim_data, platform, as_of)
    fct = fct[fct["truth_id"].isin(expected.index)].set_index("truth_id")
    assert not fct.index.duplicated().any(), "two warehouse conversations map to one true conversation"
    assert len(fct) == len(expected), f"{len(expected) - len(fct)} conversations missing"
    t = expected.loc[fct.index]
    p = case.time_precision_ms
    frt = (_floor(t["first_response_at"], p) - _floor(t["queue_start_at"], p)).dt.total_seconds()
    np.testing.assert_array_equal(fct["frt_s"].isna(), frt.isna())
    np.testing.assert_allclose(fct["frt_s"].dropna(), frt.dropna(), atol=1e-6)
    for col, truth_col in (
        ("is_abandoned", "abandoned"),
        ("is_unattended", "unattended"),
        ("is_bot_resolved", "bot_resolved"),
        ("transfer_count", "transfer_count"),
        ("agents_involved", "agents_involved"),
        ("reopen_count", "reopen_count"),
        ("topic", "topic"),
        ("status", "status"),
    ):
        got, want = fct[col].to_numpy(), t[truth_col].to_numpy()
        if got.dtype.kind in "biuf" or want.dtype.kind in "biuf":
            got, want = got.astype(float), want.astype(float)
        bad = got != want
        assert not bad.any(), f"{col}: {bad.sum()} of {len(bad)} differ, e.g. {fct.index[bad][:5].tolist()}"
    # handle time: from assignment (or the first reply where the platform shows no
    # assignment) to the first agent's last message before the first close
    start = t["assigned_at"] if case.shows_assignment else t["first_response_at"]
    handle_expected = t["handle_time_s"] + (t["assigned_at"] - start).dt.total_seconds()
    np.testing.assert_array_equal(fct["handle_time_s"].isna(), handle_expected.isna())
    np.testing.assert_allclose(fct["handle_time_s"].dropna(), handle_expected.dropna(), atol=p / 1000 + 1e-6)
    # ART at the platform's precision: each block's time may move by one tick
    both = fct["art_s"].notna() & t["art_s"].notna()
    assert (fct["art_s"].isna() == t["art_s"].isna()).all()
    np.testing.assert_allclose(fct.loc[both, "art_s"], t.loc[both, "art_s"], atol=p / 1000 + 1e-6)
    if case.has_ratings:
        np.testing.assert_array_equal(
            fct["csat"].to_numpy(float), case.expected_csat(t["csat"]).to_numpy(float)
        )


@pytest.mark.parametrize("platform", sorted(CASES))
def test_fct_messages_equal_truth(built, sim_data, as_of, platform):
    """Every customer and agent message the platform shows lands in fct_messages, in the
    right conversation; block replies' response times average to the true ART."""
    case = CASES[platform]
    fct = built[built["channel"] == platform].copy()
    fct["truth_id"] = case.truth_conversation_ids(fct, sim_data)
    expected = _expected(sim_data, platform, as_of)
    fct = fct[fct["truth_id"].isin(expected.index)]
    truth_of = dict(zip(fct["conversation_id"], fct["truth_id"], strict=True))
    messages = built.attrs["messages"]
    talk = messages[
        messages["conversation_id"].isin(truth_of) & messages["sender_type"].isin(["customer", "agent"])
    ]
    got = talk.groupby([talk["conversation_id"].map(truth_of).rename("truth_id"), "sender_type"]).size()
    lower, upper = visible_cutoff(platform, as_of)
    m = sim_data["messages"]
    m = m[(m["channel"] == platform) & (m["sent_at"] <= upper) & m["conversation_id"].isin(expected.index)]
    m = m[m["sender_type"].astype(str).isin(["customer", "agent"])]
    want = m.groupby([m["conversation_id"].rename("truth_id"), m["sender_type"].astype(str)]).size()
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    replies = talk[talk["is_block_reply"]].groupby(talk["conversation_id"].map(truth_of))["response_s"].mean()
    t = expected.loc[replies.index, "art_s"]
    np.testing.assert_allclose(replies, t, atol=case.time_precision_ms / 1000 + 1e-6)


@pytest.mark.parametrize("platform", sorted(CASES))
def test_business_seconds_and_sla_breach(built, sim_data, as_of, platform):
    """FRT in business seconds and the breach flag against a pure-Python clock."""
    fct = built[(built["channel"] == platform) & built["first_response_at"].notna()]
    sample = fct.sample(min(len(fct), 300), random_state=1)
    expected = [
        business_seconds(platform, r.queue_start_at, r.first_response_at) for r in sample.itertuples()
    ]
    np.testing.assert_allclose(sample["frt_business_s"].to_numpy(float), expected, atol=1e-6)
    breached = np.asarray(expected) > sample["sla_target_s"].to_numpy(float)
    np.testing.assert_array_equal(sample["sla_breached"].to_numpy(bool), breached)
    # an open conversation still within its target is not judged yet
    waiting = built[(built["channel"] == platform) & built["is_unattended"]]
    for r in waiting.itertuples():
        due = business_seconds(platform, r.queue_start_at, as_of) > r.sla_target_s
        assert (r.sla_breached == True) if due else pd.isna(r.sla_breached)  # noqa: E712


def test_rerun_with_the_same_as_of_is_identical(built, as_of):
    before = built.sort_values("conversation_id").reset_index(drop=True)
    transform(as_of)
    import os

    from csw.settings import warehouse_path

    con = duckdb.connect(str(warehouse_path()), read_only=True)
    after = (
        con.execute("select * from marts.fct_conversations")
        .df()
        .sort_values("conversation_id")
        .reset_index(drop=True)
    )
    con.close()
    assert os.environ.get("CSW_DATA_DIR")
    pd.testing.assert_frame_equal(before, after)
