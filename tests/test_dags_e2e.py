"""The DAGs end to end with `dag.test()` on the small sandbox (conftest: a week around
Double 11, every platform): ingest → transform → forecast → publish give the marts, the
forecast and staffing tables and the serving snapshot; re-running the same data interval
changes no table's content; a reader holding the snapshot through a whole pipeline run
neither blocks it nor sees a half-built state.

Airflow runs in a child process (its own AIRFLOW_HOME, SQLite DB and data directory), as
Airflow reads its configuration once at import; the sandbox servers run in this process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import SMALL, SMALL_AS_OF

from csw.airflow_env import airflow_env, free_port, init_airflow
from csw.settings import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HISTORY_FROM = pd.Timestamp(SMALL.start).tz_localize("Asia/Shanghai").tz_convert("UTC")
NEXT = SMALL_AS_OF + pd.Timedelta(minutes=15)

RUNNER = textwrap.dedent(
    """
    import datetime as dt, json, os, sys, time
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    out = []
    for step in json.loads(sys.argv[1]):
        dag = bag.dags[step["dag_id"]]
        started = time.monotonic()
        run = dag.test(logical_date=dt.datetime.fromisoformat(step["logical_date"]), run_conf=step.get("conf") or {})
        tis = run.get_task_instances()
        out.append({
            "dag_id": step["dag_id"],
            "state": str(run.state),
            "interval": [str(run.data_interval_start), str(run.data_interval_end)],
            "failed": sorted(f"{t.task_id}[{t.map_index}]" for t in tis if str(t.state) != "success"),
            "tasks": len(tis),
            "seconds": round(time.monotonic() - started, 1),
        })
    print("RESULT " + json.dumps(out))
    """
)

# Bookkeeping that records *that* a run happened, not what the data say: forecasting keeps
# every run (`forecast.*_runs`, `forecast.runs`) and stamps rows with the run id and time.
BOOKKEEPING_TABLES = {"forecast.runs", "forecast.current_run"}
BOOKKEEPING_COLUMNS = {"run_id", "generated_at", "published_at"}


class World:
    def __init__(self, root: Path, sandbox_url: str):
        self.data = root / "data"
        self.env = airflow_env(
            free_port(),
            data_root=self.data,
            extra={"CSW_SANDBOX_URL": sandbox_url, "CSW_TASK_RETRIES": "0"},
        )
        for var in (
            "CSW_SERVING_DIR",
            "CSW_WAREHOUSE",
            "CSW_AIRFLOW_HOME",
            "CSW_ALERT_STORE",
            "CSW_ALERT_RULES",
        ):
            self.env.pop(var, None)

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse" / "warehouse.duckdb"

    @property
    def snapshot(self) -> Path:
        return self.data / "serving" / "warehouse.duckdb"

    def run(self, *steps: dict) -> list[dict]:
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, json.dumps(list(steps))],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, proc.stdout[-4000:] + proc.stderr[-4000:]
        out = json.loads(lines[-1][len("RESULT ") :])
        print("dag.test:", [(r["dag_id"], r["state"], r["seconds"]) for r in out])
        return out


def chain(
    as_of: pd.Timestamp, *, forecast: bool = True, history: bool = True, platforms: list[str] | None = None
) -> list[dict]:
    at = as_of.isoformat()
    conf: dict = {"history_from": HISTORY_FROM.isoformat()} if history else {}
    if platforms:
        conf["platforms"] = platforms
    steps = [
        {"dag_id": "cs_ingest", "logical_date": at, "conf": conf},
        {"dag_id": "cs_transform", "logical_date": at, "conf": {"as_of": at}},
    ]
    if forecast:
        steps.append({"dag_id": "cs_forecast", "logical_date": at, "conf": {"as_of": at}})
    steps.append({"dag_id": "cs_publish", "logical_date": at, "conf": {"as_of": at}})
    return steps


def fingerprint(path: Path) -> dict[str, str]:
    """An order-independent hash of every table's rows (bookkeeping left out), and of the
    forecast views readers query (the current run), forecast bounds included: Prophet's
    uncertainty samples are seeded per series and origin."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        relations = con.execute(
            """
            select table_schema, table_name, table_type from information_schema.tables
            where table_type = 'BASE TABLE' or table_schema = 'forecast'
            """
        ).fetchall()
        for schema, table, kind in relations:
            name = f"{schema}.{table}"
            if name in BOOKKEEPING_TABLES or (schema == "forecast" and table.endswith("_runs")):
                continue
            cols = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                if c not in BOOKKEEPING_COLUMNS
            ]
            row = " || '|' || ".join(f"coalesce(cast(\"{c}\" as varchar), '-')" for c in cols) or "''"
            out[f"{name} ({kind.lower()})"] = con.execute(
                f"select count(*) || ':' || coalesce(md5(string_agg(h, ',' order by h)), '') "
                f'from (select md5({row}) as h from "{schema}"."{table}")'
            ).fetchone()[0]
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, _server):
    _server.state.faults.clear()
    _server.state.clock.set(SMALL_AS_OF, speed=0)
    w = World(tmp_path_factory.mktemp("e2e"), _server.url)
    init_airflow(w.env)
    yield w
    _server.state.clock.set(SMALL_AS_OF, speed=0)


@pytest.fixture(scope="module")
def first_run(world):
    return world.run(*chain(SMALL_AS_OF))


def test_ingest_transform_forecast_publish(world, first_run):
    by_dag = {r["dag_id"]: r for r in first_run}
    for dag_id, r in by_dag.items():
        assert r["state"] == "success" and r["failed"] == [], (dag_id, r)
    # the ingest run owns its 15-minute interval; the history came with it on request
    assert by_dag["cs_ingest"]["interval"] == [
        str((SMALL_AS_OF - pd.Timedelta(minutes=15)).tz_convert("UTC")),
        str(SMALL_AS_OF.tz_convert("UTC")),
    ]
    assert by_dag["cs_ingest"]["tasks"] > 30  # plan + one extract per platform stream + load + done

    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:
        marts = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        assert {"fct_conversations", "mart_sla_daily", "mart_satisfaction", "dim_customers"} <= marts
        as_of = con.execute("select max(as_of) from marts.fct_conversations").fetchone()[0]
        assert pd.Timestamp(as_of) == SMALL_AS_OF
        channels = {
            r[0] for r in con.execute("select distinct channel from marts.fct_conversations").fetchall()
        }
        assert len(channels) >= 7
        forecast = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'forecast'"
            ).fetchall()
        }
        assert {
            "forecast_volume",
            "forecast_backtest",
            "staffing_recommendations",
            "staffing_actions",
        } <= forecast
        assert con.execute("select count(*) from forecast.forecast_volume").fetchone()[0] > 0
        assert (
            con.execute("select min(interval_start) from forecast.forecast_volume").fetchone()[0]
            >= SMALL_AS_OF
        )
    finally:
        con.close()

    gate = json.loads((world.data / "pipeline" / "mart_gate.json").read_text())
    assert gate["status"] in ("passed", "unavailable"), gate

    snap = duckdb.connect(str(world.snapshot), read_only=True)
    try:
        tables = {
            f"{s}.{t}"
            for s, t in snap.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        assert {
            "marts.fct_conversations",
            "forecast.staffing_recommendations",
            "bi.sla_by_channel",
            "meta.tables",
        } <= tables
        assert not any(t.startswith("raw.") for t in tables)
        assert pd.Timestamp(snap.execute("select as_of from meta.snapshot").fetchone()[0]) == SMALL_AS_OF
    finally:
        snap.close()


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


def test_rerunning_the_same_interval_changes_nothing(world, first_run):
    before = {p: fingerprint(p) for p in (world.warehouse, world.snapshot)}
    assert any(t.startswith("forecast.forecast_volume") for t in before[world.warehouse])
    assert any(t.startswith("forecast.staffing_recommendations") for t in before[world.snapshot])
    batches = sorted(p.name for p in (world.data / "landing").rglob("*.manifest.json"))
    again = world.run(*chain(SMALL_AS_OF))
    assert all(r["state"] == "success" for r in again), again
    # nothing was fetched or landed again
    assert sorted(p.name for p in (world.data / "landing").rglob("*.manifest.json")) == batches
    for path, tables in before.items():
        assert _changed(tables, fingerprint(path)) == [], f"{path.parent.name}: tables changed by a re-run"


def _dag_failure_events(world) -> list[dict]:
    con = sqlite3.connect(world.data / "alerting" / "alerts.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in con.execute(
                "select e.kind, e.message, e.severity, i.status from alert_events e "
                "join incidents i using (key) where e.key = 'dag_failure:cs_ingest' order by e.at"
            )
        ]
    finally:
        con.close()


def test_a_failed_run_alerts_and_the_next_success_resolves(world, first_run):
    """The pipeline DAGs' failure callback for real: an ingest run asked for a platform that
    is not configured fails in `plan`, and pipeline monitoring records a critical
    `dag_failure` alert; the next successful ingest run resolves it."""
    at = SMALL_AS_OF.isoformat()
    (failed,) = world.run({"dag_id": "cs_ingest", "logical_date": at, "conf": {"platforms": ["nosuch"]}})
    assert failed["state"] == "failed" and "plan[-1]" in failed["failed"], failed
    events = _dag_failure_events(world)
    assert [(e["kind"], e["severity"], e["status"]) for e in events] == [("fired", "critical", "open")]
    assert "cs_ingest failed" in events[0]["message"]

    # the same interval again, for one platform: nothing to fetch (landed), so it is cheap
    (ok,) = world.run({"dag_id": "cs_ingest", "logical_date": at, "conf": {"platforms": ["wecom"]}})
    assert ok["state"] == "success", ok
    assert [(e["kind"], e["status"]) for e in _dag_failure_events(world)] == [
        ("fired", "resolved"),
        ("resolved", "resolved"),
    ]


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    def report():
        print(con.execute("select as_of::varchar || ' ' || (select count(*) from marts.fct_conversations) from meta.snapshot").fetchone()[0], flush=True)
    report()
    for line in sys.stdin:
        report()
    """
)


def test_readers_never_block_the_pipeline(world, first_run, _server):
    """A BI user's read-only connection stays open through the next interval's whole run
    (ingest, transform, publish): the run succeeds, the reader keeps the old consistent data,
    a new connection sees the new data."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(world.snapshot)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        old = reader.stdout.readline().strip()
        assert old.startswith(str(SMALL_AS_OF.tz_convert("UTC"))[:16])
        _server.state.clock.set(NEXT, speed=0)  # fifteen more minutes happen on the platforms
        # the next interval of a few platforms (the others stay within their freshness budget)
        runs = world.run(
            *chain(NEXT, forecast=False, history=False, platforms=["wecom", "douyin", "zendesk"])
        )
        assert all(r["state"] == "success" for r in runs), runs
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == old
    finally:
        _server.state.clock.set(SMALL_AS_OF, speed=0)
        reader.stdin.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0, reader.stderr.read()
    fresh = duckdb.connect(str(world.snapshot), read_only=True)
    try:
        as_of, n = fresh.execute(
            "select as_of, (select count(*) from marts.fct_conversations) from meta.snapshot"
        ).fetchone()
    finally:
        fresh.close()
    assert pd.Timestamp(as_of) == NEXT
    assert n >= int(old.split()[-1])
