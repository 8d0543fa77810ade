"""The Postgres path for real: Airflow's metadata database on PostgreSQL, with the settings
docker/compose.yaml gives its Airflow services, run through the image's entrypoint.

1. a throwaway PostgreSQL (tests/pg.py) with the role and database the compose file's
   postgres service creates;
2. the compose environment of each Airflow service, with docker/.env filled in from the
   example, and only what is different on this machine translated: container hosts and
   ports -> 127.0.0.1 and free ports, /opt/csw -> the repository, /opt/airflow -> a temp
   AIRFLOW_HOME holding the cluster policy as the Dockerfile installs it, /data -> a temp
   data directory, and the sandbox as the connectors' platforms;
3. `docker/entrypoint.sh init` (wait for the DB, migrate, writer pool), then
   `entrypoint.sh api-server | scheduler | dag-processor | triggerer` as processes;
4. cs_ingest triggered for one platform and one interval through the REST API: the
   LocalExecutor runs extract and the `duckdb_writer` load, the rows reach DuckDB `raw`, the
   run and its task instances are in PostgreSQL, the writer task carries the writer queue;
5. docker/healthcheck.py reports every component healthy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import requests
from pg import SKIP_REASON, PostgresServer, find_pg_bin, free_port
from test_docker_static import filled_env, raw_compose, resolve, service_env

from csw.airflow_env import AirflowApi, stop_process_groups

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_pg_bin() is None, reason=SKIP_REASON)]

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
PLATFORM = "zendesk"


def _compose_values(sandbox_url: str) -> dict[str, str]:
    """docker/.env as an operator fills it in (generated secrets), plus the sandbox."""
    from cryptography.fernet import Fernet

    values = filled_env()
    values.update(
        AIRFLOW_FERNET_KEY=Fernet.generate_key().decode(),
        AIRFLOW_ADMIN_PASSWORD="pg-path-admin",
        CSW_SANDBOX_URL=sandbox_url,
        # the test triggers its own interval; no clock-driven runs meanwhile
        CSW_INGEST_SCHEDULE="manual",
        CSW_FORECAST_SCHEDULE="manual",
    )
    return values


def _local_env(service_environment: dict, *, pg, home: Path, data: Path, ports: dict) -> dict[str, str]:
    """A compose service's environment, translated to this machine."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CSW_"))}
    replacements = [
        ("@postgres:5432/", f"@{pg.host}:{pg.port}/"),
        ("http://airflow-apiserver:8080", f"http://127.0.0.1:{ports['api']}"),
        ("/opt/csw", str(ROOT)),
        ("/opt/airflow", str(home)),
    ]
    env = dict(base)
    for key, value in service_environment.items():
        for old, new in replacements:
            value = value.replace(old, new)
        env[key] = value
    assert env["CSW_DATA_DIR"] == "/data"
    env.update(
        # what the Dockerfile sets (ENV) ...
        AIRFLOW_HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        DBT_PROFILES_DIR=str(ROOT / "dbt_project"),
        CSW_DATA_DIR=str(data),
        # ... and the ports docker maps: free ports here, on 127.0.0.1 only
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(ports["api"]),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{ports['api']}",
        AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(ports["scheduler_health"]),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(ports["worker_logs"]),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(ports["trigger_logs"]),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


class Stack:
    """The entrypoint's Airflow components as child processes (own process groups)."""

    def __init__(self, envs: dict[str, dict], logs: Path):
        self.envs, self.logs, self.procs = envs, logs, {}

    def start(self) -> None:
        for service, component in COMPONENTS.items():
            with open(self.logs / f"{component}.log", "ab") as log:
                self.procs[component] = subprocess.Popen(
                    ["bash", str(ENTRYPOINT), component],
                    env=self.envs[service],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=str(ROOT),
                )

    def tail(self, component: str) -> str:
        return (self.logs / f"{component}.log").read_text(errors="replace")[-3000:]

    def wait_healthy(self, url: str, timeout_s: float = 240) -> dict:
        deadline, last = time.monotonic() + timeout_s, "no answer"
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            for component, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{component} exited with {proc.returncode}:\n{self.tail(component)}"
                    )
            try:
                health = session.get(f"{url}/api/v2/monitor/health", timeout=5).json()
                states = {k: (v or {}).get("status") for k, v in health.items()}
                last = str(states)
                if all(
                    states.get(k) == "healthy"
                    for k in ("metadatabase", "scheduler", "dag_processor", "triggerer")
                ):
                    return health
            except (requests.RequestException, ValueError, AttributeError):
                pass
            time.sleep(1)
        raise AssertionError(f"not healthy after {timeout_s:.0f} s: {last}\n{self.tail('scheduler')}")

    def stop(self) -> None:
        stop_process_groups(self.procs.values())


def _async_driver_missing() -> str | None:
    """Airflow 3.3 also opens an async engine on its metadata DB: postgresql+asyncpg."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return (
            "asyncpg is not installed: Airflow 3.3 opens an async engine on a PostgreSQL metadata DB "
            "(postgresql+asyncpg), so the docker image cannot start either. Add `asyncpg>=0.30` to "
            "pyproject.toml's dependencies and `uv lock`."
        )
    return None


def test_airflow_on_postgres_runs_a_dag_with_the_compose_settings(tmp_path, _server, as_of):
    missing = _async_driver_missing()
    if missing:
        pytest.xfail(missing)
    timings = {}
    started = time.monotonic()
    values = _compose_values(_server.url)
    services = resolve(raw_compose(), values)["services"]
    with PostgresServer() as pg:
        # what the compose file's postgres service creates: POSTGRES_USER owning POSTGRES_DB
        user, db = values["POSTGRES_USER"], values["POSTGRES_DB"]
        con = pg.connect("postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"create role \"{user}\" login password '{values['POSTGRES_PASSWORD']}'")
            cur.execute(f'create database "{db}" owner "{user}"')
        con.close()

        home, data, logs = tmp_path / "airflow", tmp_path / "data", tmp_path / "logs"
        (home / "config").mkdir(parents=True)
        logs.mkdir()
        # the Dockerfile installs the cluster policy here
        (home / "config" / "airflow_local_settings.py").write_text(
            (ROOT / "docker" / "config" / "airflow_local_settings.py").read_text()
        )
        ports = {k: free_port() for k in ("api", "scheduler_health", "worker_logs", "trigger_logs")}
        envs = {
            name: _local_env(service_env(services[name]), pg=pg, home=home, data=data, ports=ports)
            for name in ("airflow-init", *COMPONENTS)
        }
        conn = envs["airflow-scheduler"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert conn == f"postgresql+psycopg2://{user}:{values['POSTGRES_PASSWORD']}@{pg.host}:{pg.port}/{db}"
        assert envs["airflow-scheduler"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"

        # 3. init: wait for the database, migrate, the writer pool
        t0 = time.monotonic()
        init = subprocess.run(
            ["bash", str(ENTRYPOINT), "init"],
            env=envs["airflow-init"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=str(ROOT),
        )
        assert init.returncode == 0, f"entrypoint init failed:\n{init.stdout[-2000:]}\n{init.stderr[-4000:]}"
        timings["migrate"] = time.monotonic() - t0
        for sub in ("landing", "warehouse", "serving"):
            assert (data / sub).is_dir(), sub
        meta = pg.connect(db)
        meta.autocommit = True
        with meta.cursor() as cur:
            cur.execute("select version_num from alembic_version")
            assert cur.fetchone(), "no Airflow schema in PostgreSQL"
            cur.execute("select slots from slot_pool where pool = 'duckdb_writer'")
            assert cur.fetchone() == (1,), "the writer pool has one slot"

        # 4. the components, then one cs_ingest run through the REST API
        t0 = time.monotonic()
        stack = Stack(envs, logs)
        stack.start()
        try:
            url = f"http://127.0.0.1:{ports['api']}"
            stack.wait_healthy(url)
            timings["start"] = time.monotonic() - t0
            api = AirflowApi(url, values["AIRFLOW_ADMIN_USER"], values["AIRFLOW_ADMIN_PASSWORD"])
            api.wait_for_dags(["cs_ingest", "cs_transform", "cs_publish"], timeout_s=180)
            api.unpause("cs_ingest")
            end = pd.Timestamp(as_of).tz_convert("UTC")
            interval = ((end - pd.Timedelta(minutes=15)).isoformat(), end.isoformat())
            t0 = time.monotonic()
            run_id = "pg_path_ingest"
            api.trigger("cs_ingest", run_id=run_id, interval=interval, conf={"platforms": [PLATFORM]})
            run = api.wait_run("cs_ingest", run_id, timeout_s=300)
            timings["run"] = time.monotonic() - t0
            ti_list = api.task_instances("cs_ingest", run_id)
            tis = {ti["task_id"]: ti for ti in ti_list}  # one per task (a mapped task: any instance)
            assert run["state"] == "success", (
                f"cs_ingest {run['state']}: {[(t, ti['state']) for t, ti in tis.items()]}\n{stack.tail('scheduler')}"
            )
            assert tis["load"]["pool"] == "duckdb_writer"
            assert tis["load"]["queue"] == values["CSW_WRITER_QUEUE"], "the cluster policy routes writers"
            assert tis["plan"]["queue"] == "default"
            assert {ti["queue"] for ti in ti_list if ti["task_id"] == "extract"} == {"default"}

            # the run lives in PostgreSQL, with an Asset event for cs_transform
            with meta.cursor() as cur:
                cur.execute("select state from dag_run where dag_id = 'cs_ingest' and run_id = %s", [run_id])
                assert cur.fetchone() == ("success",)
                cur.execute(
                    "select count(*) from task_instance where dag_id = 'cs_ingest' and run_id = %s and state = 'success'",
                    [run_id],
                )
                assert cur.fetchone()[0] == len(ti_list)
                cur.execute(
                    "select count(*) from asset_event e join asset a on a.id = e.asset_id where a.uri = 'csw://warehouse/raw'"
                )
                assert cur.fetchone()[0] >= 1, "load did not emit the csw_raw Asset event"

            # the rows reached DuckDB raw (written by the one writer)
            warehouse = data / "warehouse" / "warehouse.duckdb"
            con = duckdb.connect(str(warehouse), read_only=True)
            rows = con.execute(f"select count(*) from raw.{PLATFORM}__tickets").fetchone()[0]
            con.close()
            assert rows > 0, f"no {PLATFORM} tickets in {warehouse}"

            # 5. the compose health checks, run against these components
            for service, component in COMPONENTS.items():
                check = subprocess.run(
                    [sys.executable, str(HEALTHCHECK), component],
                    env=envs[service],
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
                assert check.returncode == 0, f"healthcheck {component}: {check.stdout}{check.stderr}"
        finally:
            stack.stop()
            meta.close()
    timings["total"] = time.monotonic() - started
    print("\nPostgres path: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
