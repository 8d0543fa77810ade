"""The contact-centre simulation: determinism, seasonality, promotions, physical queueing,
and what each platform hides (DESIGN §5)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sandbox.config import SimConfig
from sandbox.simulation import SimData, simulate
from sandbox.truth import conversations_at, intervals_at, visible_messages, visible_ratings

# Four weeks spanning Double 11 with its pre-sale, two member days and livestreams.
MONTH = SimConfig(seed=3, start=dt.date(2026, 10, 19), days=28, conversations_per_day=1500)


@pytest.fixture(scope="module")
def month() -> SimData:
    return simulate(MONTH)


def _local_day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("Asia/Shanghai").dt.date


def test_same_seed_same_data_and_other_seed_differs(sim_data, small_config):
    again = simulate(small_config)
    for name in ("conversations", "messages", "ratings", "orders", "agent_status"):
        pd.testing.assert_frame_equal(sim_data[name], again[name], check_like=False)
    other = simulate(small_config.with_(seed=small_config.seed + 1))
    assert len(other["messages"]) != len(sim_data["messages"]) or not other["messages"]["sent_at"].equals(
        sim_data["messages"]["sent_at"]
    )


def test_write_read_roundtrip(tmp_path, sim_data):
    back = SimData.read(sim_data.write(tmp_path / "ds"))
    pd.testing.assert_frame_equal(back["conversations"], sim_data["conversations"])
    assert back.config == sim_data.config
    assert back["messages"]["content"].dtype == "category"


def test_intraday_seasonality(month):
    c = month["conversations"]
    shop = c[c["channel"].isin(["taobao", "jd", "pinduoduo"])]
    hour = shop["started_at"].dt.tz_convert("Asia/Shanghai").dt.hour
    per_hour = hour.value_counts()
    open_hours = per_hour[(per_hour.index >= 8) & (per_hour.index < 23)]
    assert open_hours.idxmax() in (10, 11, 20, 21, 22)
    assert open_hours.max() / open_hours.min() > 2.0
    # nothing arrives on chat channels outside business hours
    assert set(hour.unique()) <= set(range(8, 23))


def test_promotions_lift_volume_by_class(month):
    c = month["conversations"]
    days = _local_day(c["started_at"])
    daily = days.value_counts().sort_index()
    weekday_plain = [d for d in daily.index if d.weekday() < 5 and d not in _promo_days()]
    base = daily[weekday_plain].median()
    assert daily[dt.date(2026, 11, 11)] / base > 2.3  # Double 11 (true x3.2 on shops)
    assert daily[dt.date(2026, 11, 1)] / base > 1.4  # pre-sale (x1.9)
    assert 1.1 < daily[dt.date(2026, 11, 9) - dt.timedelta(days=1)] / daily[weekday_plain].median() < 1.8
    dy = c[(c["channel"] == "douyin")]
    dy_evening = dy[dy["started_at"].dt.tz_convert("Asia/Shanghai").dt.hour >= 19]
    ev_daily = _local_day(dy_evening["started_at"]).value_counts()
    other_sats = [d for d in ev_daily.index if d.weekday() == 5 and d != dt.date(2026, 11, 14)]
    assert ev_daily[dt.date(2026, 11, 14)] / ev_daily[other_sats].median() > 2.0  # livestream


def _promo_days() -> set[dt.date]:
    from csw.calendar import load_calendar

    cal = load_calendar()
    return set(cal.loc[cal["kind"].isin(["promotion", "holiday"]), "event_date"])


def test_queueing_is_physical(small_config):
    from sandbox.replay import replay, summarise

    busy = small_config.with_(channels=("taobao",), days=3, conversations_per_day=6000)
    data = simulate(busy)
    roster = data["roster"]
    plan = roster.rename(columns={"agents_on_duty": "agents"})[["channel", "interval_start", "agents"]]
    results = {}
    for label, factor in (("fewer", 0.6), ("same", 1.0), ("more", 1.6)):
        p = plan.assign(agents=np.ceil(plan["agents"] * factor).astype(int))
        r = replay(busy, p, replications=3)
        s = summarise(r)
        s["wait"] = float((r["mean_wait_s"] * r["answered"]).sum() / r["answered"].sum())
        s["abandoned"] = int(r["abandoned"].sum())
        results[label] = s
    assert results["fewer"]["overall_service_level"] < results["same"]["overall_service_level"]
    assert results["same"]["overall_service_level"] < results["more"]["overall_service_level"]
    assert results["fewer"]["wait"] > results["same"]["wait"] > results["more"]["wait"]
    assert results["fewer"]["abandoned"] > results["more"]["abandoned"]


def test_truth_matches_the_messages(sim_data):
    """FRT in the truth equals first agent message - queue start in the message log."""
    c = sim_data["conversations"].set_index("conversation_id")
    m = sim_data["messages"]
    first_agent = m[m["sender_type"] == "agent"].groupby("conversation_id")["sent_at"].min()
    frt = (first_agent - c.loc[first_agent.index, "queue_start_at"]).dt.total_seconds()
    np.testing.assert_allclose(frt.to_numpy(), c.loc[first_agent.index, "frt_s"].to_numpy(), atol=0.002)
    assert (c["frt_s"].dropna() > 0).all()
    # bot-resolved conversations never reach a human, abandoned ones get no agent message
    assert not set(c.index[c["bot_resolved"]]) & set(first_agent.index)
    assert not set(c.index[c["abandoned"]]) & set(first_agent.index)
    # the first response block is measured from the human queue start: its time is the FRT
    b = sim_data["response_blocks"]
    first_block = b[(b["block_no"] == 1) & b["replied_at"].notna()].set_index("conversation_id")
    np.testing.assert_allclose(
        first_block["response_s"].to_numpy(), c.loc[first_block.index, "frt_s"].to_numpy(), atol=0.002
    )


def test_waiting_lowers_satisfaction(month):
    c = month["conversations"].dropna(subset=["csat", "wait_s"])
    short = c[c["wait_s"] <= 10]["csat"].mean()
    long = c[c["wait_s"] > 120]["csat"].mean()
    assert short - long > 0.5


def test_as_of_shows_only_the_past(sim_data, as_of):
    c = conversations_at(sim_data, as_of)
    assert (c["started_at"] <= as_of).all()
    for col in ("first_response_at", "assigned_at", "closed_at", "first_closed_at"):
        assert (c[col].dropna() <= as_of).all()
    assert c["unattended"].any() or (c["status"] == "open").any()
    assert not (c["abandoned"] & c["frt_s"].notna()).any()
    late = intervals_at(sim_data, as_of)
    assert (late["interval_start"] <= as_of).all()


def test_platform_truth_hides_what_the_platform_hides(sim_data, as_of):
    wecom = visible_messages(sim_data, "wecom", as_of)
    full = sim_data["messages"]
    assert (full[full["channel"] == "wecom"]["sender_type"] == "bot").any()
    assert not (wecom["sender_type"] == "bot").any()  # API-sent bot replies not returned
    assert wecom["sent_at"].min() >= as_of - pd.Timedelta(days=3)  # 3-day retention
    assert wecom["conversation_id"].isna().all()  # no conversation ids
    assert visible_messages(sim_data, "wechat_oa", as_of)["conversation_id"].isna().all()
    taobao = visible_messages(sim_data, "taobao", as_of)
    today = as_of.tz_convert("Asia/Shanghai").normalize()
    assert taobao["sent_at"].max() < today  # D+1: nothing from today
    assert (
        (full[(full["channel"] == "taobao") & (full["sent_at"] >= today) & (full["sent_at"] <= as_of)]).shape[
            0
        ]
        > 0
    )
    assert visible_ratings(sim_data, "taobao", as_of)["rated_at"].max() < today
    zendesk = visible_messages(sim_data, "zendesk", as_of)
    assert zendesk["conversation_id"].notna().all()
    assert (zendesk["sent_at"] <= as_of).all()


def test_customers_join_across_platforms(month):
    sim_data = month
    ident = sim_data["identities"]
    per_customer = ident.groupby("customer_id")["channel"].nunique()
    assert (per_customer >= 2).mean() > 0.3
    assert ident["platform_user_id"].is_unique
    cust = sim_data["customers"]
    assert cust["phone_hash"].str.fullmatch(r"[0-9a-f]{64}").all()
    orders = sim_data["orders"]
    assert set(orders["customer_id"]) <= set(cust["customer_id"])
    # some agents serve two platforms with an account on each
    acc = sim_data["agent_accounts"]
    assert (acc.groupby("agent_id")["channel"].nunique() > 1).any()
