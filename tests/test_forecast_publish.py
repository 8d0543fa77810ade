"""Publishing forecast runs (atomic, versioned) and the warehouse job end to end:
marts → history → forecasts → staffing → `forecast` schema, and `csw forecast`."""

from __future__ import annotations

import datetime as dt
import json
import threading

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csw.cli import app
from forecasting.backtest import BacktestConfig
from forecasting.job import forecast_warehouse
from forecasting.publish import TABLES, current_run, publish, publish_to
from forecasting.series import estimate_concurrency, load_history
from sandbox.config import SimConfig
from sandbox.simulation import mean_busy_s, simulate
from sandbox.truth import intervals_at


def _tables(run_id: str, n: int) -> dict[str, pd.DataFrame]:
    t = pd.date_range("2026-09-01", periods=n, freq="30min", tz="UTC")
    return {
        "forecast_volume": pd.DataFrame(
            {"channel": "taobao", "interval_start": t, "yhat": np.arange(n, dtype=float)}
        ),
        "forecast_backtest": pd.DataFrame(
            {"channel": ["taobao"] * 2, "model": ["prophet", "seasonal_naive"]}
        ),
        "staffing_recommendations": pd.DataFrame(
            {"channel": "taobao", "interval_start": t, "required_agents": np.full(n, 3)}
        ),
        "staffing_actions": pd.DataFrame({"rank": [1], "sentence": [f"run {run_id}"]}),
    }


def _meta(run_id: str) -> dict:
    now = pd.Timestamp.now(tz="UTC")
    return {"run_id": run_id, "generated_at": now, "origin": now, "horizon": "7D", "series": 1}


def test_a_reader_sees_the_old_run_or_the_new_one_never_a_mix(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    sizes = {f"run{i}": 200 + 150 * (i % 3) for i in range(12)}
    publish(con, _meta("run0"), _tables("run0", sizes["run0"]))
    seen, problems = set(), []
    stop = threading.Event()

    def reader():
        cur = con.cursor()
        while not stop.is_set():
            row = cur.execute(
                """
                select
                    (select run_id from forecast.current_run),
                    (select min(run_id) from forecast.forecast_volume),
                    (select max(run_id) from forecast.forecast_volume),
                    (select count(*) from forecast.forecast_volume),
                    (select min(run_id) from forecast.staffing_recommendations),
                    (select count(*) from forecast.staffing_recommendations),
                    (select max(sentence) from forecast.staffing_actions)
                """
            ).fetchone()
            current, vmin, vmax, vcount, smin, scount, sentence = row
            seen.add(current)
            if not (current == vmin == vmax == smin and vcount == scount == sizes[current]):
                problems.append(row)
            if sentence != f"run {current}":
                problems.append(row)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(1, 12):
        publish(con, _meta(f"run{i}"), _tables(f"run{i}", sizes[f"run{i}"]), keep=3)
    stop.set()
    thread.join()
    assert not problems, problems[:3]
    assert len(seen) >= 2
    assert current_run(con) == "run11"
    kept = {r[0] for r in con.execute("select run_id from forecast.runs").fetchall()}
    assert kept == {"run9", "run10", "run11"}
    for name in TABLES:
        ids = {r[0] for r in con.execute(f"select distinct run_id from forecast.{name}_runs").fetchall()}
        assert ids <= kept


def test_a_failed_publish_leaves_the_current_run(tmp_path):
    path = tmp_path / "w.duckdb"
    publish_to(path, _meta("good"), _tables("good", 10))
    bad = _tables("bad", 10)
    bad["forecast_volume"] = bad["forecast_volume"].assign(yhat="not a number")  # type clash
    with pytest.raises(duckdb.Error):
        publish_to(path, _meta("bad"), bad)
    con = duckdb.connect(str(path), read_only=True)
    assert current_run(con) == "good"
    assert con.execute("select count(*) from forecast.forecast_volume").fetchone()[0] == 10
    con.close()


# ------------------------------------------------------------ warehouse end to end

CFG = SimConfig(
    seed=2,
    start=dt.date(2026, 9, 7),
    days=35,
    conversations_per_day=2500,
    channels=("taobao", "douyin", "zendesk"),
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A warehouse file with the two marts the forecasts read, built from the truth."""
    data = simulate(CFG)
    iv = intervals_at(data)
    c = data["conversations"]
    medium = {ch: p.medium for ch, p in CFG.profiles.items()}
    mart = pd.DataFrame(
        {
            "channel": iv["channel"],
            "medium": iv["channel"].map(medium),
            "interval_start": iv["interval_start"],
            "conversations": iv["conversations"],
            "queued": iv["queued"],
            "aht_s": iv["aht_s"],  # handle time: the job must prefer the slot time
            "is_open": iv["is_open"],
        }
    )
    fct = pd.DataFrame(
        {
            "conversation_id": c["conversation_id"],
            "channel": c["channel"],
            "medium": c["medium"],
            "queue_start_at": c["queue_start_at"],
            "assigned_at": c["assigned_at"],
            "first_response_at": c["first_response_at"],
            "first_resolution_at": c["first_closed_at"],
            "first_agent_account": c["first_agent_id"].astype(str),
            "is_abandoned": c["abandoned"],
        }
    )
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.register("m", mart)
    con.register("f", fct)
    con.execute("create table marts.mart_volume_interval as select * from m")
    con.execute("create table marts.fct_conversations as select * from f")
    con.close()
    return path


def test_history_from_the_marts_uses_slot_time_and_measured_concurrency(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        history = load_history(con)
        conc = estimate_concurrency(con)
    finally:
        con.close()
    assert set(history["channel"]) == {"taobao", "douyin", "zendesk"}
    assert history["interval_start"].dt.tz is not None
    taobao = history[history["channel"] == "taobao"]
    slot = np.average(taobao["aht_s"].dropna(), weights=taobao.loc[taobao["aht_s"].notna(), "answered"])
    assert slot == pytest.approx(mean_busy_s(CFG, "taobao"), rel=0.05)
    assert conc["taobao"] == CFG.profiles["taobao"].concurrency
    assert conc["douyin"] == CFG.profiles["douyin"].concurrency


def test_forecast_job_publishes_four_tables(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    result = forecast_warehouse(
        warehouse,
        backtest=BacktestConfig(held_out=4, selection=2),
        workers=2,
        config=None,
    )
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert current_run(con) == result.run_id
        vol = con.execute("select * from forecast.forecast_volume").df()
        rec = con.execute("select * from forecast.staffing_recommendations").df()
        bt = con.execute("select * from forecast.forecast_backtest").df()
        actions = con.execute("select * from forecast.staffing_actions").df()
        runs = con.execute("select * from forecast.runs").df()
    finally:
        con.close()
    assert len(vol) == 3 * 7 * 48 and vol["run_id"].eq(result.run_id).all()
    assert (
        str(vol["interval_start"].dtype).startswith("datetime64") and vol["interval_start"].dt.tz is not None
    )
    assert vol["interval_start"].min() == pd.Timestamp(CFG.end, tz="Asia/Shanghai").tz_convert("UTC")
    design_columns = {
        "local_date", "local_time", "channel", "volume", "volume_lower", "volume_upper", "aht_s", "concurrency",
        "traffic_erlangs", "sl_target", "sl_seconds", "required_agents", "shrinkage", "required_headcount",
        "scheduled_agents", "gap", "forecast_service_level", "forecast_asa_s", "forecast_occupancy",
        "forecast_abandonment", "events", "model_version", "generated_at",
    }  # fmt: skip
    assert design_columns <= set(rec.columns)
    chat = rec[rec["medium"] == "chat"]
    assert (chat["sl_seconds"] == 60).all() and (chat["sl_target"] == 0.8).all()  # the SLA policy seed
    assert (chat.loc[chat["concurrency"] > 0, "concurrency"] == 3).all()
    assert (rec["required_headcount"] >= rec["required_agents"]).all()
    assert (rec.loc[~rec["is_open"], "required_agents"] == 0).all()
    email = rec[rec["medium"] == "email"]
    assert (email["erlang_model"] == "workload").all() and (email["sl_seconds"] == 28800).all()
    local = email["interval_start"].dt.tz_convert("Asia/Shanghai")
    off_hours = (local.dt.hour < 9) | (local.dt.hour >= 18) | (local.dt.weekday >= 5)
    assert (email.loc[off_hours, "required_agents"] == 0).all() and email["required_agents"].max() > 0
    held = bt[(bt["role"] == "held_out")]
    assert set(held["channel"]) == {"taobao", "douyin", "zendesk"}
    assert held.groupby("channel")["is_published"].sum().eq(1).all()
    assert runs["model_version"].iloc[0].startswith("csw-forecast-")
    assert (tmp_path / "forecast" / "models" / result.run_id / "taobao__chat.json").exists()
    assert list(actions.columns)[:3] == ["run_id", "rank", "channel"]


def test_csw_forecast_on_the_warehouse_and_with_a_roster(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    start = pd.Timestamp(CFG.end, tz="Asia/Shanghai").tz_convert("UTC")
    roster = pd.DataFrame(
        {
            "channel": "taobao",
            "interval_start": pd.date_range(start, periods=7 * 48, freq="30min"),
            "scheduled_agents": 2,
        }
    )
    roster_path = tmp_path / "roster.csv"
    roster.to_csv(roster_path, index=False)
    result = CliRunner().invoke(
        app, ["forecast", "--horizon", "3d", "--roster", str(roster_path), "--workers", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["series"] == 3 and set(summary["held_out_mase"]) == {
        "taobao/chat",
        "douyin/chat",
        "zendesk/email",
    }
    con = duckdb.connect(str(warehouse), read_only=True)
    rec = con.execute("select * from forecast.staffing_recommendations where channel = 'taobao'").df()
    actions = con.execute("select * from forecast.staffing_actions").df()
    con.close()
    assert len(rec) == 3 * 48
    assert (rec["gap"] == rec["scheduled_agents"] - rec["required_headcount"]).all()
    short = actions[actions["channel"] == "taobao"]
    assert len(short) and short["sentence"].str.contains("the roster is short by").any()


def test_csw_forecast_without_marts_says_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    monkeypatch.setenv("CSW_WAREHOUSE", str(path))
    result = CliRunner().invoke(app, ["forecast"])
    assert result.exit_code == 2
    assert "csw transform" in result.output
