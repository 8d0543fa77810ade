"""Shared fixtures: a small simulated company and its platform servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest
import requests

from sandbox.config import SimConfig
from sandbox.server.app import RunningServer
from sandbox.server.state import DEFAULT_CREDENTIALS, SandboxState
from sandbox.simulation import SimData, simulate

# A week around Double 11 (a member day, the festival), small enough for fast tests.
SMALL = SimConfig(seed=11, start=dt.date(2026, 11, 5), days=7, conversations_per_day=400)
SMALL_AS_OF = pd.Timestamp("2026-11-11 16:00", tz="Asia/Shanghai").tz_convert("UTC")


@pytest.fixture(scope="session")
def small_config() -> SimConfig:
    return SMALL


@pytest.fixture(scope="session")
def sim_data() -> SimData:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def as_of() -> pd.Timestamp:
    """The default clock of the test servers: mid-afternoon on Double 11."""
    return SMALL_AS_OF


@pytest.fixture(scope="session")
def _server(sim_data) -> RunningServer:
    server = RunningServer(SandboxState(sim_data, as_of=SMALL_AS_OF)).start()
    yield server
    server.stop()


@pytest.fixture()
def sandbox(_server) -> RunningServer:
    """The running sandbox, reset for each test: no faults, clock at `as_of`, frozen."""
    state = _server.state
    state.faults.clear()
    state.clock.set(SMALL_AS_OF, speed=0)
    # a test that renewed a session key (Taobao, JD) must not leave it renewed for the next
    state.credentials = {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
    yield _server
    state.faults.clear()
    state.clock.set(SMALL_AS_OF, speed=0)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A private data dir, warehouse and connectors config (no Airflow connections leak in)."""
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSW_CONNECTORS_CONFIG", str(tmp_path / "connectors.yaml"))
    monkeypatch.setenv("CSW_WAREHOUSE", str(tmp_path / "warehouse" / "warehouse.duckdb"))
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_CSW_")]:
        monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture()
def console(sandbox):
    """The sandbox with console settings, sessions and faults reset before and after."""
    requests.delete(f"{sandbox.url}/console/_settings", timeout=10).raise_for_status()
    yield sandbox
    requests.delete(f"{sandbox.url}/console/_settings", timeout=10).raise_for_status()


# -- the fault matrix (issue #5): tests/test_connectors.py records one row per platform x fault,
# printed at the end of the run; the assertions stay in each case
FAULT_MATRIX = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def fault_matrix(request) -> dict:
    """(platform, fault) -> {"expected", "loaded", "duplicates", "missing", "extra"}."""
    return request.config.stash.setdefault(FAULT_MATRIX, {})


def pytest_terminal_summary(terminalreporter, config) -> None:
    rows = config.stash.get(FAULT_MATRIX, {})
    if not rows:
        return
    head = ("platform", "fault", "rows expected", "rows loaded", "duplicates", "missing", "extra", "ok")
    lines = [head]
    for (platform, fault), r in sorted(rows.items()):
        ok = not (r["duplicates"] or r["missing"] or r["extra"])
        lines.append(
            (platform, fault, *(str(r[k]) for k in ("expected", "loaded", "duplicates", "missing", "extra")))
            + ("yes" if ok else "NO",)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    terminalreporter.write_sep("=", "fault matrix: nothing lost, nothing duplicated")
    for i, line in enumerate(lines):
        terminalreporter.write_line(
            "  ".join(
                cell.ljust(w) if j < 2 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            terminalreporter.write_line("  ".join("-" * w for w in widths))


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    """Every DAG file parsed with this project's Airflow settings (examples off)."""
    from csw.airflow_env import DAGS_DIR, airflow_env

    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(8080, base={}, data_root=home)
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW") or k.startswith("CSW_")})
    try:
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_DIR))
    finally:
        os.environ.clear()
        os.environ.update(saved)
