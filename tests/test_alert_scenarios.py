"""Alert rules on sandbox scenarios built to trigger them, and quiet on a calm day.

Two small simulated companies (three platforms each, to stay fast) are ingested through the
real connectors and built by dbt once per module:

- PROMO: a week before Double 11 to the Douyin livestream of 2026-11-14 (a promotion spike
  on Douyin in the evening), with JD's API switched off during ingest (the scraper
  fallback); a calm Friday afternoon (2026-11-13) in the same data;
- UNDERSTAFFED: the same days with `staffing_factor=0.6`.

The real-time rules run on their own WeCom sandbox (RT): a VIP waiting, the queue, and the 3-minute rule in live
mode (the sandbox clock running fast) firing within 2 minutes of the breach.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pandas as pd
import pytest

from alerting.jobs import run_interval, run_realtime
from alerting.realtime import hash_customer, label
from alerting.rules import load_rules, parse_rules
from alerting.store import AlertStore
from connectors.cli import run_ingest
from csw.transform import transform
from sandbox.config import SimConfig
from sandbox.server.app import RunningServer
from sandbox.server.state import SandboxState
from sandbox.simulation import simulate

TZ = "Asia/Shanghai"
PLATFORMS = ["wecom", "jd", "douyin"]
PROMO = SimConfig(
    seed=5, start=dt.date(2026, 11, 4), days=11, conversations_per_day=500, channels=tuple(PLATFORMS)
)
# understaffed: enough volume that staffing matters (a tiny company always has a free agent)
UNDER = SimConfig(
    seed=5,
    start=dt.date(2026, 11, 16),
    days=3,
    conversations_per_day=3000,
    channels=("jd", "wechat_oa"),
    staffing_factor=0.6,
)
UNDER_AS_OF = pd.Timestamp("2026-11-18 22:00", tz=TZ).tz_convert("UTC")
# real time: WeCom alone, understaffed, so customers do wait; no warehouse needed
RT = SimConfig(
    seed=5,
    start=dt.date(2026, 11, 16),
    days=2,
    conversations_per_day=3000,
    channels=("wecom",),
    staffing_factor=0.5,
)
BUILD_AS_OF = pd.Timestamp("2026-11-14 22:00", tz=TZ).tz_convert("UTC")
SPIKE_AT = pd.Timestamp("2026-11-14 21:30", tz=TZ).tz_convert("UTC")
CALM_AT = pd.Timestamp("2026-11-13 15:00", tz=TZ).tz_convert("UTC")
MARTS_RULES = ["channel_frt", "sla_attainment", "volume", "topic_share"]


def _build(tmp_path_factory, name, cfg, platforms=PLATFORMS, as_of=BUILD_AS_OF, switched_off=None):
    work = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    mp.delenv("CSW_ALERT_STORE", raising=False)
    data = simulate(cfg)
    server = RunningServer(SandboxState(data, as_of=as_of)).start()
    if switched_off:
        server.state.faults.set(switched_off, api_off=True)
    start = pd.Timestamp(cfg.start).tz_localize(TZ).tz_convert("UTC")
    summary = run_ingest([*platforms, "crm"], None, start, as_of, server.url, show_progress=False)
    # with the API off, a stream the console does not show (JD's agent list) waits for the API
    failures = [f for f in summary["failures"] if f["platform"] != switched_off]
    assert not failures, failures
    server.state.faults.clear()
    transform(as_of)
    mp.undo()
    return {
        "work": work,
        "warehouse": work / "warehouse" / "warehouse.duckdb",
        "server": server,
        "data": data,
    }


@pytest.fixture(scope="module")
def promo(tmp_path_factory):
    built = _build(tmp_path_factory, "promo", PROMO, switched_off="jd")
    yield built
    built["server"].stop()


@pytest.fixture(scope="module")
def understaffed(tmp_path_factory):
    built = _build(tmp_path_factory, "under", UNDER, ["jd", "wechat_oa"], UNDER_AS_OF)
    built["server"].stop()
    return built


def _interval(built, at, tmp_path, rules=None):
    with AlertStore(tmp_path / "alerts.sqlite") as store:
        return run_interval(at, rules=rules or load_rules(), store=store, warehouse=built["warehouse"])


def _no_raw_ids(text: str, data) -> None:
    ids = set(data["conversations"]["platform_user_id"].astype(str))
    found = [tok for tok in re.findall(r"[A-Za-z0-9_\-]{12,}", text) if tok in ids]
    assert not found, f"raw customer identifiers in alert text: {found[:3]}"


def test_calm_day_is_quiet(promo, tmp_path):
    out = _interval(promo, CALM_AT, tmp_path)
    marts = [a for a in out["alerts"] if a["rule"] in MARTS_RULES]
    assert marts == [], marts


def test_promotion_spike_fires_volume_alert_with_hint(promo, tmp_path):
    # a small company: Douyin's usual evening hour has ~4 contacts, so expect from 3 up
    rules = parse_rules({"interval": {"volume": {"min_expected": 3}}})
    out = _interval(promo, SPIKE_AT, tmp_path, rules)
    volume = [a for a in out["alerts"] if a["rule"] == "volume" and "douyin" in a["key"]]
    assert volume, out["alerts"]
    hint = volume[0]["hint"]
    # one sentence with numbers: FRT change, volume change, the dominant topic
    assert re.search(r"Douyin FRT [+-]\d+ %", hint) and re.search(r"volume [+-]\d+ %", hint), hint
    assert re.search(r"topic '\w+' \d+ % of contacts", hint), hint
    assert out["outcome"]["fired"] >= 1
    _no_raw_ids(str(out), promo["data"])


def test_topic_share_jump(promo, tmp_path):
    # the first Double 11 day against the week before it: 'promotion' about triples
    rules = parse_rules({"interval": {"topic_share": {"jump_pct": 100, "min_conversations": 5}}})
    out = _interval(promo, pd.Timestamp("2026-11-10 15:00", tz=TZ), tmp_path, rules)
    topics = [a for a in out["alerts"] if a["rule"] == "topic_share"]
    assert any("promotion" in a["key"] for a in topics), out["alerts"]


def test_switched_off_platform_is_reported(promo, tmp_path):
    out = _interval(promo, SPIKE_AT, tmp_path)
    fallback = [a for a in out["alerts"] if a["key"].startswith("ops_event:fallback_used:jd")]
    assert fallback, [a["key"] for a in out["alerts"]]


def test_understaffed_interval_fires_sla_or_frt(understaffed, tmp_path):
    hits = []
    for hour in ("2026-11-17 11:00", "2026-11-17 15:00", "2026-11-17 20:00"):
        out = _interval(understaffed, pd.Timestamp(hour, tz=TZ), tmp_path)
        hits += [a for a in out["alerts"] if a["rule"] in ("sla_attainment", "channel_frt")]
    assert hits, "an understaffed day raised no SLA or FRT alert"
    assert all(a["hint"] for a in hits)


# -- real time ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rt_sandbox():
    data = simulate(RT)
    server = RunningServer(SandboxState(data, as_of=pd.Timestamp("2026-11-17 09:00", tz=TZ))).start()
    yield {"server": server, "data": data}
    server.stop()


@pytest.fixture()
def live(rt_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSW_CONNECTORS_CONFIG", str(tmp_path / "connectors.yaml"))
    monkeypatch.setenv("CSW_SANDBOX_URL", rt_sandbox["server"].url)
    monkeypatch.setenv("CSW_ALERT_STORE", str(tmp_path / "alerts.sqlite"))
    state = rt_sandbox["server"].state
    yield rt_sandbox
    state.faults.clear()


def _land(platform: str, server, until) -> None:
    since = pd.Timestamp("2026-11-16", tz=TZ)  # first sync only; then the cursor resumes
    summary = run_ingest([platform], "messages", since, until, server.url, show_progress=False, load=False)
    assert not summary["failures"], summary["failures"]


def _wecom_breach(data, after, minimum_wait_s=300):
    """A WeCom conversation handed off after `after` that waited long for a human."""
    c = data["conversations"]
    c = c[
        (c["channel"] == "wecom")
        & (c["handoff_at"] > after)
        & (c["handoff_at"] < after + pd.Timedelta(hours=6))
    ]
    wait = (c["first_response_at"].fillna(c["closed_at"]) - c["handoff_at"]).dt.total_seconds()
    long = c[wait > minimum_wait_s].sort_values("handoff_at")
    assert len(long), "no long WeCom wait in the scenario window"
    return long.iloc[0]


def test_realtime_notes_platforms_that_cannot_be_real_time(live):
    out = run_realtime(live["server"].state.now(), platforms=["wecom", "douyin", "taobao"])
    assert "douyin" in out["notes"] and "hourly" in out["notes"]["douyin"]
    assert "taobao" in out["notes"] and "D+1" in out["notes"]["taobao"]
    assert out["live"]["wecom"]["waiting"] >= 0


def test_queue_rule_fires_on_live_state(live):
    rules = parse_rules({"realtime": {"queue_length": {"threshold": 0}}})
    state = live["server"].state
    # find a moment with someone waiting on WeCom
    row = _wecom_breach(live["data"], pd.Timestamp("2026-11-17 01:00", tz="UTC"))
    state.clock.set(row["handoff_at"] + pd.Timedelta(seconds=60), speed=0)
    with AlertStore() as store:
        out = run_realtime(None, rules=rules, store=store, platforms=["wecom"])
    assert any(a["rule"] == "queue_length" for a in out["alerts"]), out


def test_vip_waiting_fires(live):
    data = live["data"]
    state = live["server"].state
    customers = data["customers"]
    c = data["conversations"]
    c = c[
        (c["channel"] == "wecom")
        & c["handoff_at"].notna()
        & (c["handoff_at"] > pd.Timestamp("2026-11-17 02:00", tz="UTC"))
    ]
    wait = (c["first_response_at"].fillna(c["closed_at"]) - c["handoff_at"]).dt.total_seconds()
    row = c[wait > 60].iloc[0]
    at = row["handoff_at"] + pd.Timedelta(seconds=45)
    state.clock.set(at, speed=0)
    _land("wecom", live["server"], at)
    key = hash_customer("wecom", row["platform_user_id"])
    with AlertStore() as store:
        store.replace_vips([("wecom", key)], at)  # the interval run copies these from the marts
        out = run_realtime(None, store=store, platforms=["wecom"])
    vip = [a for a in out["alerts"] if a["rule"] == "vip_waiting"]
    assert vip and label(key) in vip[0]["message"], out["alerts"]
    assert row["platform_user_id"] not in str(out)
    assert len(customers)  # the scenario has customers (and tiers)


def test_unanswered_rule_fires_within_two_minutes_in_live_mode(live):
    data = live["data"]
    state = live["server"].state
    row = _wecom_breach(data, pd.Timestamp("2026-11-17 01:00", tz="UTC"), minimum_wait_s=420)
    breach = row["handoff_at"] + pd.Timedelta(seconds=180)
    key = hash_customer("wecom", row["platform_user_id"])
    # live mode: the sandbox clock runs 60x wall time, starting a minute before the breach
    state.clock.set(breach - pd.Timedelta(seconds=60), speed=60)
    fired_at = None
    with AlertStore() as store:
        for _ in range(12):
            now = state.now()
            _land("wecom", live["server"], now)
            out = run_realtime(now, store=store, platforms=["wecom"])
            if any(a["rule"] == "unanswered_session" and label(key) in a["message"] for a in out["alerts"]):
                fired_at = now
                break
            time.sleep(0.5)
    assert fired_at is not None, "the 3-minute rule never fired"
    assert fired_at - breach <= pd.Timedelta(minutes=2), (fired_at, breach)
    assert fired_at >= breach - pd.Timedelta(seconds=1)


def test_dag_failure_callback_stamps_the_run_end_and_success_resolves(tmp_path, monkeypatch):
    """The callbacks Airflow calls on a DAG run: a failure opens a `dag_failure` incident
    stamped with the run's recorded end (not the callback's wall clock); the DAG's next
    success resolves exactly that incident."""
    from types import SimpleNamespace

    from alerting.jobs import dag_failure_callback, dag_success_callback

    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    ended = dt.datetime(2026, 11, 11, 8, 0, 5, tzinfo=dt.UTC)
    failed_run = SimpleNamespace(dag_id="cs_ingest", run_id="scheduled__2026-11-11", end_date=ended)
    dag_failure_callback({"dag_run": failed_run, "reason": "task_failure"})
    with AlertStore() as store:
        (event,) = store.events(rule="dag_failure")
        assert pd.Timestamp(event["at"]) == pd.Timestamp(ended)
        assert "cs_ingest" in event["message"] and "clear the run" in event["message"]
        assert [i["key"] for i in store.open_incidents(["dag_failure"])] == ["dag_failure:cs_ingest"]
    other = SimpleNamespace(dag_id="cs_forecast", run_id="r2", end_date=ended + dt.timedelta(minutes=5))
    dag_success_callback({"dag_run": other})  # another DAG's success resolves nothing
    ok_run = SimpleNamespace(dag_id="cs_ingest", run_id="r3", end_date=ended + dt.timedelta(minutes=15))
    dag_success_callback({"dag_run": ok_run})
    with AlertStore() as store:
        assert store.open_incidents(["dag_failure"]) == []
