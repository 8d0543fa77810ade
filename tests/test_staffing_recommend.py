"""Staffing recommendations from a forecast: SLA policies, chat slots, rosters, e-mail
workload and the actions list."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecasting.actions import staffing_actions
from forecasting.series import SeriesKey, SeriesParams
from forecasting.staffing import StaffingConfig, recommend, sla_policy


def _volume(
    channel: str, medium: str, values, usual=None, start="2026-09-18 07:00", events=""
) -> pd.DataFrame:
    """A forecast_volume-like frame (local start time, Asia/Shanghai)."""
    values = np.asarray(values, float)
    t = pd.date_range(pd.Timestamp(start, tz="Asia/Shanghai"), periods=len(values), freq="30min")
    local = t.tz_localize(None)
    return pd.DataFrame(
        {
            "channel": channel,
            "medium": medium,
            "interval_start": t.tz_convert("UTC"),
            "local_date": local.date,
            "local_time": local.strftime("%H:%M"),
            "is_open": values > 0,
            "yhat": values,
            "yhat_lower": values * 0.8,
            "yhat_upper": values * 1.2,
            "usual": values if usual is None else np.asarray(usual, float),
            "model": "prophet",
            "events": events,
        }
    )


def test_sla_policy_from_the_seed():
    assert sla_policy("taobao", "chat") == (60.0, 0.8)
    assert sla_policy("taobao", "chat", "vip") == (30.0, 0.8)
    assert sla_policy("zendesk", "email") == (28800.0, 0.8)


def test_design_example_with_one_slot_per_agent():
    """DESIGN §8: 100 contacts in 30 min, AHT 180 s, 20 s / 80 %, occupancy 0.85,
    shrinkage 0.30 -> 14 on the floor, 20 scheduled, SL about 0.888."""
    v = _volume("phoneline", "phone", [100.0])
    params = {SeriesKey("phoneline", "phone"): SeriesParams(SeriesKey("phoneline", "phone"), 180.0, None)}
    for mode in ("slots", "fast_server"):
        cfg = StaffingConfig(
            sl_seconds=20, sl_target=0.8, concurrency={"phoneline": 1}, concurrency_model=mode
        )
        rec = recommend(v, params, cfg)
        assert rec["required_agents"].iloc[0] == 14
        assert rec["required_headcount"].iloc[0] == 20
        assert rec["forecast_service_level"].iloc[0] == pytest.approx(0.888, abs=0.002)
        assert rec["traffic_erlangs"].iloc[0] == pytest.approx(10.0)


def test_chat_slots_staff_fewer_agents_than_fast_servers():
    v = _volume("taobao", "chat", [5, 20, 60, 120, 200])
    params = {SeriesKey("taobao"): SeriesParams(SeriesKey("taobao"), 360.0, 240.0)}
    base = {"sl_seconds": 20, "sl_target": 0.8, "concurrency": {"taobao": 3}}
    slots = recommend(v, params, StaffingConfig(**base))
    fast = recommend(v, params, StaffingConfig(**base, concurrency_model="fast_server"))
    assert (slots["required_agents"] <= fast["required_agents"]).all()
    assert (slots["required_agents"] < fast["required_agents"]).any()
    assert (slots["forecast_service_level"] >= 0.8).all()
    assert (slots["forecast_abandonment"].between(0, 0.2)).all()  # Erlang A with the patience
    erlang_a = recommend(v, params, StaffingConfig(**base, model="erlang_a"))
    assert (erlang_a["erlang_model"] == "erlang_a").all()
    assert (erlang_a["required_agents"] <= slots["required_agents"]).all()
    assert slots["traffic_erlangs"].tolist() == pytest.approx((v["yhat"] * 360 / 1800 / 3).tolist())


def test_closed_intervals_need_nobody():
    v = _volume("taobao", "chat", [0, 0, 10, 0])
    rec = recommend(v, {}, StaffingConfig())
    assert rec["required_agents"].tolist()[:2] == [0, 0] and rec["required_agents"].iloc[2] > 0
    assert rec["forecast_service_level"].isna().tolist() == [True, True, False, True]


def test_roster_gap_and_its_service_level():
    v = _volume("jd", "chat", [40, 40, 40, 40])
    params = {SeriesKey("jd"): SeriesParams(SeriesKey("jd"), 360.0, None)}
    roster = pd.DataFrame(
        {"channel": "jd", "interval_start": v["interval_start"], "scheduled_agents": [1, 3, 6, 12]}
    )
    rec = recommend(v, params, StaffingConfig(concurrency={"jd": 3}), roster=roster)
    assert (rec["gap"] == rec["scheduled_agents"] - rec["required_headcount"]).all()
    sl = rec["scheduled_service_level"].to_numpy()
    assert np.all(np.diff(sl) >= 0) and sl[0] < 0.8 <= sl[-1]


def test_email_is_staffed_by_workload_in_business_hours():
    # a weekday (Friday 2026-09-18) from midnight: mail arrives all day, agents work 09-18
    v = _volume("zendesk", "email", np.full(48, 4.0), start="2026-09-18 00:00")
    params = {SeriesKey("zendesk", "email"): SeriesParams(SeriesKey("zendesk", "email"), 900.0, None)}
    rec = recommend(v, params, StaffingConfig(max_occupancy=0.85))
    hours = pd.to_datetime(rec["local_time"], format="%H:%M").dt.hour
    assert (rec.loc[(hours < 9) | (hours >= 18), "required_agents"] == 0).all()
    on = rec.loc[(hours >= 9) & (hours < 18), "required_agents"]
    assert (on == int(np.ceil(48 * 4 * 900 / (18 * 1800 * 0.85)))).all()
    assert (rec["erlang_model"] == "workload").all() and rec["forecast_service_level"].isna().all()


def test_actions_against_usual_days_and_against_a_roster():
    usual = np.full(16, 30.0)
    values = usual.copy()
    values[6:10] = 75.0  # 10:00-12:00 far above a usual Friday
    v = _volume("douyin", "chat", values, usual=usual, events="livestream")
    params = {SeriesKey("douyin"): SeriesParams(SeriesKey("douyin"), 320.0, 180.0)}
    cfg = StaffingConfig(sl_seconds=20, concurrency={"douyin": 3})
    rec = recommend(v, params, cfg)
    actions = staffing_actions(rec)
    assert len(actions) == 1
    a = actions.iloc[0]
    assert a["action"] == "add" and a["start_time"] == "10:00" and a["end_time"] == "12:00"
    assert a["sentence"].startswith(
        "Fri 2026-09-18 10:00-12:00 Douyin Feige: volume +150 % on a usual Friday"
    )
    assert "(livestream)" in a["sentence"] and f"add {a['agents']} agent" in a["sentence"]
    assert a["impact_agent_hours"] == pytest.approx(
        (rec["required_agents"] - rec["usual_required_agents"]).iloc[6:10].sum() * 0.5
    )
    roster = pd.DataFrame({"channel": "douyin", "interval_start": v["interval_start"], "scheduled_agents": 6})
    rec = recommend(v, params, cfg, roster=roster)
    actions = staffing_actions(rec)
    assert set(actions["action"]) == {"add", "reduce"}
    top = actions.iloc[0]
    assert top["action"] == "add" and "the roster is short by" in top["sentence"]
    assert actions["impact_agent_hours"].is_monotonic_decreasing
    assert actions.loc[actions["action"] == "reduce", "sentence"].str.contains("can move to other work").all()


def test_no_actions_on_an_ordinary_day():
    v = _volume("taobao", "chat", np.full(10, 25.0), start=dt.datetime(2026, 9, 16, 9, 0).isoformat())
    rec = recommend(v, {}, StaffingConfig())
    assert staffing_actions(rec).empty
