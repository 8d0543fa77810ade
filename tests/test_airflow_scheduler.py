"""One scheduler-driven run: the real scheduler, dag-processor and api-server (LocalExecutor,
SQLite metadata) run `cs_ingest`; `cs_transform` must start from the `csw_raw` Asset, and
the one-slot pool `duckdb_writer` must keep the warehouse tasks one at a time even when
several are ready together. `dag.test()` proves neither: it runs tasks one by one in-process
and ignores Assets and pools. The same stack then runs `airflow backfill create` over a past
range and the scheduler runs one run per interval.
"""

from __future__ import annotations

import re
import subprocess
import time

import pandas as pd
import pytest
from conftest import SMALL, SMALL_AS_OF

from csw.airflow_env import WRITER_POOL, AirflowStack, airflow_bin, airflow_env, free_port
from csw.settings import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# API, server cursor + console backfill (wecom), incremental export (zendesk), console-only
# scraper (douyin), the CRM (orders, value tiers): every kind of extraction, fewer tasks.
PLATFORMS = ["wecom", "zendesk", "douyin", "crm"]

# Backfill needs a periodic schedule, and a periodic schedule with catchup=False makes the
# scheduler run the latest complete interval at once. cs_ingest keeps `manual` here (such a
# run would ingest every platform); the cheap cron DAG cs_reports (daily 08:00 Asia/Shanghai)
# gets a cron limited to the sandbox's days, so the scheduler's own run renders a sandbox day.
REPORT_CRON = "0 8 9-11 11 *"
BACKFILL_FROM, BACKFILL_TO = "2026-11-09T08:00:00+08:00", "2026-11-10T08:00:00+08:00"


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").isoformat()


@pytest.fixture()
def own_sandbox(sim_data):
    """A sandbox of its own: Airflow's task processes must not touch the session's server."""
    from sandbox.server.app import RunningServer
    from sandbox.server.state import SandboxState

    server = RunningServer(SandboxState(sim_data, as_of=SMALL_AS_OF)).start()
    yield server
    server.stop()


def test_scheduler_runs_ingest_then_transform_from_the_asset_one_writer_at_a_time(tmp_path, own_sandbox):
    _server = own_sandbox
    start = pd.Timestamp(SMALL.start).tz_localize("Asia/Shanghai").tz_convert("UTC")
    middle = SMALL_AS_OF - pd.Timedelta(minutes=15)
    port = free_port()
    env = airflow_env(
        port,
        data_root=tmp_path / "data",
        manual_schedules=True,
        parallelism=4,
        extra={
            "CSW_SANDBOX_URL": _server.url,
            "CSW_TASK_RETRIES": "0",
            "CSW_REPORT_SCHEDULE": REPORT_CRON,
        },
    )
    with AirflowStack(env, port, start_timeout_s=240) as stack:
        api = stack.api
        api.wait_for_dags(["cs_ingest", "cs_transform", "cs_publish"], timeout_s=180)
        conf = {"platforms": PLATFORMS}
        # two consecutive intervals, back to back: the second run's load becomes ready while
        # the first run's transform holds the writer slot
        api.trigger("cs_ingest", run_id="first", interval=(_iso(start), _iso(middle)), conf=conf)
        api.trigger("cs_ingest", run_id="second", interval=(_iso(middle), _iso(SMALL_AS_OF)), conf=conf)
        for run_id in ("first", "second"):
            run = api.wait_run("cs_ingest", run_id, timeout_s=300)
            assert run["state"] == "success", (run_id, api.task_instances("cs_ingest", run_id))
            assert run["run_type"] == "manual"
            assert pd.Timestamp(run["data_interval_end"]) == (middle if run_id == "first" else SMALL_AS_OF)

        # cs_transform was started by the scheduler from the Asset events of the loads
        first_transform = api.wait_new_run("cs_transform", set(), timeout_s=120)
        assert first_transform["run_type"] == "asset_triggered"
        deadline = time.monotonic() + 300
        while True:
            runs = api.dag_runs("cs_transform")
            events = {r["dag_run_id"]: _upstream_events(api, r["dag_run_id"]) for r in runs}
            consumed = {e["source_run_id"] for evs in events.values() for e in evs}
            if {"first", "second"} <= consumed and all(r["state"] in ("success", "failed") for r in runs):
                break
            assert time.monotonic() < deadline, f"transform runs {runs} consumed only {consumed}"
            time.sleep(3)
        for r in runs:
            assert r["state"] == "success", api.task_instances("cs_transform", r["dag_run_id"])
            assert r["run_type"] == "asset_triggered"
            assert {e["source_dag_id"] for e in events[r["dag_run_id"]]} == {"cs_ingest"}
            assert {e["name"] for e in events[r["dag_run_id"]]} == {"csw_raw"}
        stamps = {e["extra"]["as_of"] for evs in events.values() for e in evs}
        assert stamps == {_z(middle), _z(SMALL_AS_OF)}  # each load announced its interval end

        # the writer pool: warehouse tasks never overlapped, and at least once one waited
        writers = [
            ti for ti in api.task_instances(pool=WRITER_POOL) if ti["state"] == "success" and ti["start_date"]
        ]
        names = {(ti["dag_id"], ti["task_id"]) for ti in writers}
        assert {("cs_ingest", "load"), ("cs_transform", "dbt_build"), ("cs_transform", "mart_gate")} <= names
        spans = sorted(
            (
                (
                    pd.Timestamp(ti["start_date"]),
                    pd.Timestamp(ti["end_date"]),
                    ti["dag_id"],
                    ti["task_id"],
                    ti,
                )
                for ti in writers
            ),
            key=lambda span: span[0],
        )
        for (s1, e1, *_a), (s2, e2, *_b) in zip(spans, spans[1:], strict=False):
            assert s2 >= e1, f"writers overlapped: {_a[:2]} {s1}..{e1} and {_b[:2]} {s2}..{e2}"
        waited = [
            (ti["dag_id"], ti["task_id"])
            for (_s, _e, _d, _t, ti) in spans
            for (s0, e0, d0, t0, other) in spans
            if other is not ti
            and ti["scheduled_when"]
            and pd.Timestamp(ti["scheduled_when"]) < e0
            and pd.Timestamp(ti["start_date"]) >= e0
            and pd.Timestamp(ti["scheduled_when"]) >= s0
        ]
        assert waited, (
            f"no writer ever waited for the slot; spans: {[(s, e, d, t) for s, e, d, t, _ in spans]}"
        )

        reports = _backfill_reports(api, env)
    _check_reports(reports, tmp_path / "data")


def _backfill_reports(api, env) -> dict[str, pd.Timestamp]:
    """`airflow backfill create` over two past days of cs_reports: one backfill run per daily
    interval, with that interval; `--reprocess-behavior completed` also re-runs the interval
    the scheduler already ran on its own. Returns report file name -> local day reported."""
    tz = "Asia/Shanghai"
    days = pd.date_range(pd.Timestamp(BACKFILL_FROM), pd.Timestamp(BACKFILL_TO), freq="D")
    if pd.Timestamp.now(tz="UTC") < days[-1] + pd.Timedelta(days=1):
        pytest.skip("the wall clock is before the backfill range: Airflow backfills past intervals only")
    deadline = time.monotonic() + 180
    while True:  # the scheduler's own run of the latest interval (catchup=False), finished
        before = {r["logical_date"]: r for r in api.dag_runs("cs_reports")}
        if before and all(r["state"] in ("success", "failed") for r in before.values()):
            break
        assert time.monotonic() < deadline, f"cs_reports scheduled runs: {before}"
        time.sleep(2)
    assert [r["run_type"] for r in before.values()] == ["scheduled"]
    assert pd.Timestamp(next(iter(before))) == days[-1]

    command = [airflow_bin(), "backfill", "create", "--dag-id", "cs_reports"]
    command += ["--from-date", BACKFILL_FROM, "--to-date", BACKFILL_TO]
    command += ["--reprocess-behavior", "completed", "--max-active-runs", "1"]
    proc = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    deadline = time.monotonic() + 300
    while True:
        runs = [r for r in api.dag_runs("cs_reports") if r["run_type"] == "backfill"]
        if len(runs) == len(days) and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, f"backfill runs: {runs}"
        time.sleep(3)
    assert len(api.dag_runs("cs_reports")) == len(days)  # the scheduled run became a backfill run
    intervals = sorted(
        (pd.Timestamp(r["data_interval_start"]), pd.Timestamp(r["data_interval_end"])) for r in runs
    )
    assert intervals == [(day, day + pd.Timedelta(days=1)) for day in days]
    for r in runs:
        assert r["state"] == "success", api.task_instances("cs_reports", r["dag_run_id"])
    # each run reports the local day before its interval end (its `as_of`)
    return {f"daily_{day:%Y-%m-%d}.html": day.tz_convert(tz).normalize() for day in days}


def _check_reports(reports: dict[str, pd.Timestamp], data) -> None:
    """Each backfilled report counts the conversations of its own day in the marts."""
    import duckdb

    con = duckdb.connect(str(data / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        for name, day in reports.items():
            html = (data / "reports" / name).read_text()
            assert f"report: {day:%Y-%m-%d}<" in html
            expected = con.execute(
                "select count(*) from marts.fct_conversations where started_at >= ? and started_at < ?",
                [
                    day.tz_convert("UTC").to_pydatetime(),
                    (day + pd.Timedelta(days=1)).tz_convert("UTC").to_pydatetime(),
                ],
            ).fetchone()[0]
            assert expected > 0
            assert re.search(r"Conversations: <b>(\d+)</b>", html).group(1) == str(expected), name
    finally:
        con.close()


def _upstream_events(api, run_id: str) -> list[dict]:
    return api.upstream_events("cs_transform", run_id)


def _z(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
