"""Airflow on one machine, the embedded default: everything under `<data>/airflow`.

- `AIRFLOW_HOME` = `<data>/airflow` (`airflow.cfg`, `airflow.db`, logs), SQLite metadata,
  LocalExecutor, the example DAGs off, the DAGs folder = `<project>/dags`;
- the pool `duckdb_writer` with ONE slot: every task that opens the DuckDB warehouse
  runs in it, so writers (and the readers that would block them) go one at a time;
- the execution API (task processes report to it) on the api-server at
  `http://127.0.0.1:<port>/execution/` (`AIRFLOW__CORE__EXECUTION_API_SERVER_URL`);
- a login `admin` with a password generated once into `<data>/airflow/passwords.json`.

`AirflowStack` starts api-server, scheduler and dag-processor as child processes (the
demo and the scheduler test); `AirflowApi` talks to the REST API (trigger runs with
explicit data intervals, wait for them, read task instances). `csw airflow` runs
`airflow standalone` with the same settings and the sandbox in live mode.

Environment is applied to child processes only, before Airflow is imported there:
Airflow reads its configuration once, at import.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import typer

from csw.settings import PROJECT_ROOT, data_dir

DAGS_DIR = PROJECT_ROOT / "dags"
WRITER_POOL = "duckdb_writer"
ADMIN_USER = "admin"


# Cron DAGs switch to manual with `manual_schedules` (a sandbox with a fixed clock).
MANUAL_SCHEDULE_VARS = (
    "CSW_INGEST_SCHEDULE",
    "CSW_FORECAST_SCHEDULE",
    "CSW_REALTIME_SCHEDULE",
    "CSW_REPORT_SCHEDULE",
)


class AirflowStartError(RuntimeError):
    """An Airflow component did not start; the message names its log file."""


def airflow_home() -> Path:
    return Path(os.environ.get("CSW_AIRFLOW_HOME") or data_dir() / "airflow").resolve()


def airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


def _generated(path: Path, make) -> dict:
    """A small JSON file of generated secrets, created once (mode 600)."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return value


def admin_password(home: Path | None = None) -> str:
    """The admin password, generated once (SimpleAuthManager reads the same file)."""
    path = (home or airflow_home()) / "passwords.json"
    return _generated(path, lambda: {ADMIN_USER: secrets.token_urlsafe(12)})[ADMIN_USER]


def _instance_secrets(home: Path) -> dict:
    """Secrets every component must share: the JWT key the api-server signs task tokens
    with (each process would otherwise generate its own and reject the others' tokens)."""
    return _generated(
        home / "instance_secrets.json",
        lambda: {"jwt_secret": secrets.token_urlsafe(64), "secret_key": secrets.token_urlsafe(32)},
    )


def airflow_env(
    port: int = 8080,
    *,
    base: Mapping[str, str] | None = None,
    parallelism: int = 6,
    manual_schedules: bool = False,
    extra: Mapping[str, str] | None = None,
    log_port: int | None = None,
    data_root: Path | None = None,
) -> dict[str, str]:
    """Environment for Airflow processes (api-server, scheduler, dag-processor, tasks).

    `manual_schedules` turns the cron schedules of cs_ingest/cs_forecast off (the demo
    replays the sandbox's fixed clock by triggering each interval through the API); the
    Asset chain works either way. `data_root` moves the whole data directory (tests)."""
    data = Path(data_root).resolve() if data_root else data_dir()
    home = data / "airflow" if data_root else airflow_home()
    shared = _instance_secrets(home)
    env = dict(os.environ if base is None else base)
    pythonpath = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    # `airflow standalone` starts its components as `airflow ...` from PATH
    path = [str(Path(sys.executable).parent)] + [
        p for p in env.get("PATH", os.defpath).split(os.pathsep) if p
    ]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": shared["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": shared["secret_key"],
            # the scheduler's task-log server; a free port so that stacks can coexist
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port or free_port()),
            # pick DAG file changes up quickly on one machine
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
            "CSW_DATA_DIR": str(data),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
            "PATH": os.pathsep.join(dict.fromkeys(path)),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    if manual_schedules:
        for var in MANUAL_SCHEDULE_VARS:
            env[var] = "manual"
    env.update(extra or {})
    return env


# Modules every pipeline task needs. The scheduler imports them once (through
# `airflow_local_settings`, written below); the LocalExecutor's workers are forked from the
# scheduler and every task process from a worker, so tasks start warm instead of paying
# seconds of imports each (43 mapped extract tasks per ingest run).
PRELOAD = (
    "numpy",
    "pandas",
    "duckdb",
    "requests",
    "orjson",
    "connectors.core.config",
    "connectors.core.runner",
    "connectors.core.loader",
    "connectors.scrapers",
    "sandbox.server.state",
    "csw.pipeline",
    "csw.transform",
    "csw.publish",
    "expectations.batch_gate",
    "expectations.mart_gate",
    "forecasting.job",
    "alerting.jobs",
)

_LOCAL_SETTINGS = '''"""Written by csw.airflow_env.init_airflow: pre-import the pipeline's modules in the
scheduler so that the LocalExecutor's forked task processes inherit them."""

import sys

__all__: list[str] = []

if sys.argv[1:2] == ["scheduler"]:
    from csw.airflow_env import preload

    preload()
'''


def preload() -> None:
    import importlib
    import logging

    for name in PRELOAD + tuple(f"connectors.platforms.{p}" for p in _platform_modules()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional module must not stop the scheduler
            logging.getLogger("csw.airflow_env").warning("preload of %s failed: %s", name, exc)


def _platform_modules() -> list[str]:
    try:
        from connectors.platforms import MODULES
    except Exception:
        return []
    return list(MODULES)


_INIT = """
from airflow.utils import db
from airflow.models.pool import Pool
db.initdb()
Pool.create_or_update_pool(
    {pool!r}, slots=1, include_deferred=False,
    description="The DuckDB warehouse: one writer (or reader) at a time.",
)
"""


def init_airflow(env: Mapping[str, str]) -> None:
    """Create or migrate the metadata DB, the admin password and the writer pool."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    admin_password(home)
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(_LOCAL_SETTINGS)
    proc = subprocess.run(
        [sys.executable, "-c", _INIT.format(pool=WRITER_POOL)],
        env=dict(env),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AirflowStartError(f"airflow metadata init failed:\n{proc.stderr[-3000:]}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_groups(procs, grace_s: float = 30) -> None:
    """SIGTERM each process's group (Airflow components fork workers), SIGKILL what is
    still running after `grace_s`."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class AirflowStack:
    """api-server + scheduler + dag-processor as child processes (own process groups).

    Use as a context manager; `.api` is a logged-in `AirflowApi`. Logs go to
    `<AIRFLOW_HOME>/logs/<component>.log`."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor")

    def __init__(self, env: Mapping[str, str], port: int, start_timeout_s: float = 180):
        self.env = dict(env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.start_timeout_s = start_timeout_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.home = Path(self.env["AIRFLOW_HOME"])
        self.api: AirflowApi | None = None

    def log_path(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def start(self) -> AirflowStack:
        init_airflow(self.env)
        for component in self.COMPONENTS:
            args = [airflow_bin(), component]
            if component == "api-server":
                args += ["--port", str(self.port), "--host", "127.0.0.1", "--workers", "1"]
            with open(self.log_path(component), "ab") as log:
                self.procs[component] = subprocess.Popen(
                    args,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=str(PROJECT_ROOT),
                )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.api = AirflowApi(self.url, ADMIN_USER, admin_password(self.home))
        return self

    def _wait_healthy(self) -> None:
        import requests

        deadline = time.monotonic() + self.start_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AirflowStartError(
                        f"airflow {name} exited with {proc.returncode}; see {self.log_path(name)}:\n"
                        + self.log_path(name).read_text(errors="replace")[-2000:]
                    )
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                states = {k: (v or {}).get("status") for k, v in health.items()}
                last = str(states)
                if all(states.get(k) == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")):
                    return
            except (requests.RequestException, ValueError, AttributeError):
                pass
            time.sleep(1)
        raise AirflowStartError(
            f"Airflow not healthy after {self.start_timeout_s:.0f} s ({last}); logs in {self.home / 'logs'}"
        )

    def stop(self) -> None:
        stop_process_groups(self.procs.values())
        self.procs.clear()

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class AirflowApi:
    """A small client of Airflow's REST API (v2), logged in as the admin."""

    def __init__(self, url: str, username: str, password: str):
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        resp = self.session.post(
            f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def _call(self, method: str, path: str, **kw) -> dict:
        """One REST call. Reads are retried on timeouts: on a busy machine the api-server
        may wait for SQLite's write lock (the scheduler writes in bursts)."""
        import requests

        attempts = 4 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                resp = self.session.request(method, f"{self.url}/api/v2{path}", timeout=90, **kw)
                break
            except (requests.ConnectionError, requests.Timeout):
                if attempt == attempts - 1:
                    raise
                time.sleep(2 * (attempt + 1))
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else {}

    def wait_for_dags(self, dag_ids, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            found = {d["dag_id"] for d in self._call("GET", "/dags", params={"limit": 100})["dags"]}
            missing = [d for d in dag_ids if d not in found]
            if not missing:
                return
            time.sleep(1)
        errors = self._call("GET", "/importErrors").get("import_errors", [])
        raise AirflowStartError(f"DAGs {missing} not parsed after {timeout_s:.0f} s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        logical_date: str | None = None,
        interval: tuple[str, str] | None = None,
        conf: dict | None = None,
    ) -> dict:
        body: dict = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        if interval:
            body["data_interval_start"], body["data_interval_end"] = interval
            body["logical_date"] = logical_date or interval[1]
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def run_interval(
        self, dag_id: str, *, run_id: str, interval: tuple[str, str], conf: dict | None = None
    ) -> str:
        """Run `dag_id` for a data interval: trigger a run, or clear (re-run) the run that
        already owns that interval (Airflow keeps one run per logical date). Returns its id."""
        import datetime as dt

        def parse(text: str) -> dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

        end = parse(interval[1])
        for run in self.dag_runs(dag_id):
            if run.get("logical_date") and parse(run["logical_date"]) == end:
                self._call(
                    "POST", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/clear", json={"dry_run": False}
                )
                return run["dag_run_id"]
        self.trigger(dag_id, run_id=run_id, interval=interval, conf=conf)
        return run_id

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})[
            "dag_runs"
        ]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str = "~", run_id: str = "~", **params) -> list[dict]:
        params.setdefault("limit", 1000)
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params=params)[
            "task_instances"
        ]

    def upstream_events(self, dag_id: str, run_id: str) -> list[dict]:
        """The Asset events an (Asset-triggered) run consumed."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> object:
        out = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return out.get("value")

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 600, poll_s: float = 2) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def wait_new_run(self, dag_id: str, known: set[str], timeout_s: float = 300, poll_s: float = 2) -> dict:
        """Wait for a run of `dag_id` not in `known` (e.g. one an Asset event created)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for run in self.dag_runs(dag_id):
                if run["dag_run_id"] not in known:
                    return run
            time.sleep(poll_s)
        raise TimeoutError(f"no new {dag_id} run within {timeout_s:.0f} s")


# -- `csw airflow` ------------------------------------------------------------------------------


def _live_dataset(days_back: int = 28, days_ahead: int = 7):
    """A sandbox data set whose five weeks contain today (live mode serves it as it happens)."""
    import datetime as dt

    from sandbox.config import SimConfig
    from sandbox.simulation import SimData, simulate

    today = dt.datetime.now(dt.UTC).date()
    cfg = SimConfig(start=today - dt.timedelta(days=days_back), days=days_back + days_ahead)
    out = data_dir() / "sandbox" / "live"
    if (out / "meta.json").exists():
        data = SimData.read(out)
        if data.config.get("start") == cfg.start.isoformat() and data.config.get("days") == cfg.days:
            return out
    simulate(cfg).write(out)
    return out


def airflow_command(
    port: int = typer.Option(8080, help="Port of the Airflow UI and REST API on 127.0.0.1."),
    sandbox_port: int = typer.Option(8765, help="Port of the sandbox platforms on 127.0.0.1."),
    speed: float = typer.Option(1.0, help="Sandbox clock: simulated seconds per wall second (live mode)."),
    sandbox: bool = typer.Option(
        True, help="Serve the sandbox platforms (off: the connectors use connectors.yaml / AIRFLOW_CONN_*)."
    ),
) -> None:
    """Start `airflow standalone` with these DAGs and the sandbox in live mode.

    LocalExecutor, SQLite metadata under data/airflow, the duckdb_writer pool; prints the UI
    address and login. Ctrl-C stops both."""
    import datetime as dt

    from rich.console import Console

    console = Console()
    procs: list[subprocess.Popen] = []

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    extra: dict[str, str] = {}
    home = airflow_home()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    try:
        if sandbox:
            with console.status("preparing the live sandbox data set (five weeks around today) ..."):
                dataset = _live_dataset()
            now_local = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
            with open(home / "logs" / "sandbox.log", "ab") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "csw"),
                            "sandbox",
                            "serve",
                            "--dataset",
                            str(dataset),
                            "--port",
                            str(sandbox_port),
                            "--as-of",
                            now_local.strftime("%Y-%m-%d %H:%M"),
                            "--speed",
                            str(speed),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            extra["CSW_SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}"
        env = airflow_env(port, extra=extra)
        with console.status("initialising the Airflow metadata DB and the duckdb_writer pool ..."):
            init_airflow(env)
        with open(home / "logs" / "standalone.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [airflow_bin(), "standalone"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=str(PROJECT_ROOT),
                )
            )
        import requests

        with console.status("starting Airflow (api-server, scheduler, dag-processor, triggerer) ..."):
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if procs[-1].poll() is not None:
                    raise AirflowStartError(
                        f"airflow standalone exited; see {home / 'logs' / 'standalone.log'}"
                    )
                try:
                    if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(1)
        console.print(
            f"Airflow UI: [bold]http://127.0.0.1:{port}[/]  login: [bold]{ADMIN_USER}[/] / "
            f"[bold]{admin_password(home)}[/]\n"
            + (f"Sandbox platforms (live, speed {speed}): {extra['CSW_SANDBOX_URL']}\n" if sandbox else "")
            + f"DAGs: {DAGS_DIR}; logs: {home / 'logs'}; cs_ingest runs every 15 minutes "
            "(trigger it in the UI to start now). Ctrl-C stops everything."
        )
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        raise AirflowStartError(f"a component exited; see the logs in {home / 'logs'}")
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":  # pragma: no cover - `eval "$(python -m csw.airflow_env)"`
    import shlex

    for key, value in sorted(airflow_env().items()):
        if key.startswith(("AIRFLOW", "CSW_")) or key in ("PATH", "PYTHONPATH"):
            print(f"export {key}={shlex.quote(value)}")
