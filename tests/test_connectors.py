"""Connectors against the sandbox servers over real HTTP: exactness, faults, crash safety,
incremental runs, schema drift, and no secrets in logs.

Every platform connector declares how its raw message rows map back to the simulation's
message ids (`MESSAGE_ID_SQL`); the tests compare raw with what the platform can show
(`sandbox.truth.visible_messages`), never with the connector's own output.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest
import yaml
from connector_cases import cases

from connectors.cli import run_ingest
from connectors.platforms import connector_class
from sandbox.truth import visible_messages

CASES = cases()
PLATFORMS = sorted(CASES)
MESSAGE_ID_SQL = {p: c.message_id_sql for p, c in CASES.items()}
MESSAGE_TABLE = {p: c.message_table for p, c in CASES.items()}
FAULT_CASES = [(p, f) for p in PLATFORMS for f in CASES[p].faults]


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSW_CONNECTORS_CONFIG", str(tmp_path / "connectors.yaml"))
    return tmp_path


def settings(workdir, platform: str, **values) -> None:
    """Extra connector settings on top of the sandbox's (page size, timeouts)."""
    path = workdir / "connectors.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else {"platforms": {}}
    doc["platforms"].setdefault(platform, {}).update(values)
    path.write_text(yaml.safe_dump(doc))


def ingest(sandbox, platform: str, until=None, **kw) -> dict:
    return run_ingest(
        [platform],
        kw.pop("stream", None),
        None,
        until or sandbox.state.now(),
        sandbox.url,
        show_progress=False,
        **kw,
    )


_LOOKUPS: dict = {}


def connect(workdir, platform: str) -> duckdb.DuckDBPyConnection:
    """The warehouse, with the case's `id_lookup` table registered (platforms whose records
    carry no id, e.g. WeChat OA, map raw rows to message ids through it)."""
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    build = CASES[platform].notes.get("id_lookup")
    if build is not None:
        if platform not in _LOOKUPS:
            from conftest import SMALL

            from sandbox.simulation import simulate

            _LOOKUPS[platform] = build(simulate(SMALL))
        con.register("id_lookup", _LOOKUPS[platform])
    return con


def raw_message_ids(workdir, platform: str) -> pd.Series:
    con = connect(workdir, platform)
    try:
        return con.execute(
            f"select {MESSAGE_ID_SQL[platform]} as id from raw.{MESSAGE_TABLE[platform]}"
        ).df()["id"]
    finally:
        con.close()


def visible(sim_data, platform: str, as_of) -> pd.DataFrame:
    """What the platform's message stream can show (a case may narrow `visible_messages`:
    Zendesk comments carry no system events)."""
    narrow = CASES[platform].notes.get("visible")
    return narrow(sim_data, as_of) if narrow else visible_messages(sim_data, platform, as_of)


def truth_ids(sim_data, platform: str, as_of) -> set[int]:
    return set(visible(sim_data, platform, as_of)["message_id"].astype(int))


def assert_exact(workdir, sim_data, platform, *as_ofs) -> dict:
    """Raw holds exactly what the platform showed at each of `as_ofs` (a union: data that
    left a retention window stay in the warehouse). Returns the counts compared."""
    counts = exactness(workdir, sim_data, platform, *as_ofs)
    assert not counts["duplicates"], f"{counts['duplicates']} message(s) landed twice"
    assert not counts["missing"] and not counts["extra"], (
        f"{counts['missing']} missing, {counts['extra']} unexpected"
    )
    return counts


def exactness(workdir, sim_data, platform, *as_ofs) -> dict:
    """Raw's message ids against the platform's visible truth, counted."""
    ids = raw_message_ids(workdir, platform)
    expected = set().union(*(truth_ids(sim_data, platform, t) for t in as_ofs))
    got = set(ids)
    return {
        "expected": len(expected),
        "loaded": len(ids),
        "duplicates": int(ids.duplicated().sum()),
        "missing": len(expected - got),
        "extra": len(got - expected),
    }


@pytest.mark.parametrize("platform", PLATFORMS)
def test_raw_equals_visible_truth(workdir, sandbox, sim_data, as_of, platform):
    summary = ingest(sandbox, platform, as_of)
    assert not summary["failures"]
    assert_exact(workdir, sim_data, platform, as_of)
    # UTC times: the raw record time equals the simulation's send time (to the second)
    con = connect(workdir, platform)
    got = (
        con.execute(
            f"select {MESSAGE_ID_SQL[platform]} as id, epoch(_record_time) as t from raw.{MESSAGE_TABLE[platform]}"
        )
        .df()
        .set_index("id")["t"]
    )
    con.close()
    truth = visible(sim_data, platform, as_of).set_index("message_id")["sent_at"]
    expected = truth.loc[got.index].map(lambda t: t.timestamp())
    diff = (got - expected).abs()
    assert (diff < 1.0).all()


FAULTS = {
    "rate_limit": {"rate_limit": 3, "retry_after_s": 0},
    "error_codes": {"error_codes": 3},
    "server_errors": {"server_errors": 3},
    "hang": {"hang": 1, "hang_s": 3},
    "token_expiry": {"expire_tokens_after": 2},
    "duplicate_rows": {"duplicate_rows": 40},
}


@pytest.mark.parametrize(("platform", "fault"), FAULT_CASES)
def test_faults_lose_and_duplicate_nothing(workdir, sandbox, sim_data, as_of, platform, fault, fault_matrix):
    settings(workdir, platform, page_size=200, read_timeout_s=1)
    sandbox.state.faults.set(platform, **FAULTS[fault])
    summary = ingest(sandbox, platform, as_of)
    assert not summary["failures"], summary["failures"]
    fired = sandbox.state.faults.snapshot()["fired"].get(platform, {})
    assert fired, f"fault {fault} never fired"
    # counted first, so that the printed matrix shows a failing case too
    fault_matrix[(platform, fault)] = exactness(workdir, sim_data, platform, as_of)
    assert_exact(workdir, sim_data, platform, as_of)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_late_updates_arrive_on_a_later_run(workdir, sandbox, sim_data, as_of, platform):
    late_by_s = CASES[platform].notes.get("late_by_s", 1800)
    sandbox.state.faults.set(platform, late_updates=True, late_by_s=late_by_s)
    ingest(sandbox, platform, as_of)
    first = set(raw_message_ids(workdir, platform))
    expected = truth_ids(sim_data, platform, as_of)
    assert first < expected  # some arrive late
    later = as_of + pd.Timedelta(hours=1)
    sandbox.state.clock.set(later)
    ingest(sandbox, platform, later)
    ids = raw_message_ids(workdir, platform)
    assert not ids.duplicated().any()
    assert expected <= set(ids)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_incremental_run_fetches_only_the_new_part(workdir, sandbox, sim_data, as_of, platform):
    if "incremental" in CASES[platform].notes.get("not_applicable", ()):
        pytest.skip(CASES[platform].notes.get("incremental_reason", "the platform serves no same-day data"))
    ingest(sandbox, platform, as_of)
    later = as_of + pd.Timedelta(hours=1)
    sandbox.state.clock.set(later)
    summary = ingest(sandbox, platform, later, stream="messages")
    new = truth_ids(sim_data, platform, later) - truth_ids(sim_data, platform, as_of)
    landed = sum(r["rows"] for r in summary["extracted"])
    assert len(new) > 0
    declared = connector_class(platform).streams["messages"]
    reread = 0
    if declared.cursor == "time_window":  # the look-back re-reads its span on purpose
        sent = visible(sim_data, platform, as_of)["sent_at"]
        reread = int((sent >= as_of - pd.Timedelta(declared.lookback)).sum())
    assert landed <= (len(new) + reread) * 1.1 + 5, f"landed {landed} rows for {len(new)} new messages"
    assert_exact(workdir, sim_data, platform, as_of, later)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_schema_drift(workdir, sandbox, sim_data, as_of, platform):
    if "schema_drift" in CASES[platform].notes.get("not_applicable", ()):
        pytest.skip("on a console a new column is a layout error (ScraperLayoutError), not a kept field")
    sandbox.state.faults.set(platform, schema_drift="new_field")
    ingest(sandbox, platform, as_of, stream="messages")
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    kept = con.execute(
        f"select count(*) from raw.{MESSAGE_TABLE[platform]} where payload->>'sandbox_new_field' is not null"
    ).fetchone()[0]
    con.close()
    assert kept > 0  # a new field is kept in the raw JSON


def test_missing_required_field_is_quarantined(workdir, sandbox, sim_data, as_of):
    sandbox.state.faults.set("wecom", schema_drift="missing_field", drift_share=0.05)
    summary = ingest(sandbox, "wecom", as_of, stream="messages")
    quarantined = summary["loaded"]["quarantined_rows"]
    assert quarantined > 0
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    reasons = con.execute("select distinct reason from raw._quarantine").fetchall()
    loaded = con.execute("select count(*) from raw.wecom__messages").fetchone()[0]
    con.close()
    assert reasons == [("missing key field msgid",)]
    assert loaded + quarantined == len(visible_messages(sim_data, "wecom", as_of))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_crash_safety_sigkill_and_rerun(workdir, sandbox, sim_data, as_of, platform):
    """Kill the ingest process at random points, several times; a final run is exact."""
    settings(workdir, platform, page_size=50)
    sandbox.state.faults.set(platform, slow_s=0.01)
    env = {
        **os.environ,
        "CSW_DATA_DIR": str(workdir),
        "CSW_CONNECTORS_CONFIG": str(workdir / "connectors.yaml"),
    }
    cmd = [
        sys.executable,
        "-m",
        "csw.cli",
        "ingest",
        "-p",
        platform,
        "--sandbox",
        sandbox.url,
        "--until",
        as_of.isoformat(),
        "--json",
    ]
    rng = random.Random(7)
    killed = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.8, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 2, "the ingest finished before it could be killed; slow the sandbox down"
    sandbox.state.faults.clear()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_exact(workdir, sim_data, platform, as_of)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_logs_hold_no_secrets(workdir, sandbox, sim_data, as_of, platform, caplog):
    from connectors.core.http import RedactingFilter, install_redaction

    caplog.set_level(logging.DEBUG)
    install_redaction(logging.getLogger())
    caplog.handler.addFilter(RedactingFilter())
    sandbox.state.faults.set(platform, expire_tokens_after=2, rate_limit=1, retry_after_s=0)
    summary = ingest(sandbox, platform, as_of)
    assert not summary["failures"]
    text = caplog.text + json.dumps(summary, default=str)
    creds = sandbox.state.credentials[platform]
    secrets = [v for k, v in creds.items() if any(s in k for s in ("secret", "session", "token", "password"))]
    secrets += list(sandbox.state.tokens._tokens)
    assert "retry" in caplog.text.lower()  # the run did log
    for secret in secrets:
        assert secret not in text, "a secret reached the logs"
