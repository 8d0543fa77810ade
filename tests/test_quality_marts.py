"""The mart gate (GX on marts read through a read-only connection, after dbt).

One dbt build for the module (WeCom and Douyin ingested through the batch gate, then the
whole dbt project); each test works on its own copy of the warehouse. A mart made wrong
on purpose fails the gate and the serving snapshot is not replaced; the suites in
`expectations/gx/` are the ones the specs generate.
"""

from __future__ import annotations

import hashlib
import shutil

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from connectors.cli import run_ingest
from csw.transform import transform
from expectations.mart_gate import MartGateFailed, publish_if_clean, row_counts_path, run_mart_gate
from expectations.mart_suites import MARTS


@pytest.fixture(scope="module")
def built(tmp_path_factory, sim_data, _server, as_of):
    work = tmp_path_factory.mktemp("marts")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    # set, not deleted: `csw.transform` writes CSW_WAREHOUSE into os.environ, undo restores it
    mp.setenv("CSW_WAREHOUSE", str(work / "warehouse" / "warehouse.duckdb"))
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    start = pd.Timestamp(sim_data.config["start"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    summary = run_ingest(["wecom", "douyin"], None, start, as_of, _server.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    assert summary["quality"]["success"], summary["quality"]["summary"]
    transform(as_of)
    mp.undo()
    return work / "warehouse" / "warehouse.duckdb"


@pytest.fixture()
def warehouse(built, tmp_path, monkeypatch):
    """A private copy of the built warehouse, in a fresh data directory."""
    target = tmp_path / "warehouse" / "warehouse.duckdb"
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSW_WAREHOUSE", str(target))
    target.parent.mkdir(parents=True)
    shutil.copy2(built, target)
    return target


def _sql(path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for s in statements:
            con.execute(s)
    finally:
        con.close()


def test_clean_marts_pass_and_docs_are_built(warehouse, as_of):
    result = run_mart_gate(as_of)
    assert result.success, result.summary
    assert "mart(s) checked" in result.summary and "PASSED" in result.summary
    assert result.docs_path is not None and result.docs_path.exists()
    assert result.checked == sorted(m.name for m in MARTS)
    assert row_counts_path().exists()
    # no customer key (hashed) nor conversation id reaches the docs
    con = duckdb.connect(str(warehouse), read_only=True)
    keys = [
        r[0]
        for r in con.execute("select distinct customer_key from marts.fct_conversations limit 50").fetchall()
    ]
    con.close()
    blob = "\n".join(p.read_text(errors="ignore") for p in result.docs_path.parent.rglob("*.html"))
    assert not [k for k in keys if k and k in blob]


def test_a_mart_that_does_not_exist_yet_is_skipped_with_a_note(warehouse, as_of):
    _sql(warehouse, "drop table marts.mart_value_tier")
    result = run_mart_gate(as_of)
    assert result.success, result.summary
    assert "mart_value_tier" not in result.checked
    assert "note: mart.mart_value_tier: skipped, marts.mart_value_tier does not exist yet" in result.summary


def test_wrong_mart_fails_the_gate_and_the_snapshot_is_not_replaced(warehouse, as_of):
    published = []

    def publish():
        published.append(True)

    # a good run publishes (the colleague's publish step, when present, else a callback)
    try:
        from csw.pipeline import mart_gate as pipeline_gate
        from csw.publish import PublishRefused, publish_snapshot, snapshot_path
    except ImportError:  # pragma: no cover - publishing not in this build
        publish_snapshot = None
    publish_if_clean(as_of, publish)
    assert published == [True]
    if publish_snapshot is not None:
        pipeline_gate(as_of)
        publish_snapshot(as_of)
        before = hashlib.sha256(snapshot_path().read_bytes()).hexdigest()

    # the mart made wrong on purpose
    _sql(
        warehouse,
        "update marts.fct_conversations set frt_s = -30 where conversation_id in "
        "(select conversation_id from marts.fct_conversations where frt_s is not null limit 3)",
        "update marts.fct_conversations set csat = 9 where conversation_id in "
        "(select conversation_id from marts.fct_conversations where csat is not null limit 2)",
    )
    result = run_mart_gate(as_of)
    assert not result.success
    reasons = "\n".join(r for f in result.failures for r in f.reasons)
    assert "`frt_s` is not negative: 3 of" in reasons, result.summary
    assert "`csat` is within 1-5: 2 of" in reasons, result.summary
    assert "FAILED" in result.summary and "do not publish" in result.summary

    with pytest.raises(MartGateFailed):
        publish_if_clean(as_of, publish)
    assert published == [True]  # not called again
    if publish_snapshot is not None:
        with pytest.raises(Exception, match="mart gate failed"):
            pipeline_gate(as_of)
        with pytest.raises(PublishRefused):
            publish_snapshot(as_of)
        assert hashlib.sha256(snapshot_path().read_bytes()).hexdigest() == before


def test_row_counts_must_not_collapse(warehouse, as_of):
    assert run_mart_gate(as_of).success  # records the row counts of a passing run
    _sql(warehouse, "delete from marts.fct_conversations where hash(conversation_id) % 10 < 7")
    result = run_mart_gate(as_of)
    assert not result.success
    assert any("rows do not collapse (last passing run:" in r for f in result.failures for r in f.reasons)


def test_stale_data_fail_freshness(warehouse, as_of):
    later = as_of + pd.Timedelta(hours=6)
    result = run_mart_gate(later)
    assert not result.success
    fresh = [f for f in result.failures if f.name == "mart.freshness"]
    assert fresh, result.summary
    assert any(
        "wecom.messages: newest loaded batch ends 6.0 h before as_of (budget 2 h, real_time)" in r
        for r in fresh[0].reasons
    )
    # and the marts were built for another as_of
    assert any("built as of the gate's as_of" in r for f in result.failures for r in f.reasons)


def test_csw_quality_exits_non_zero_on_a_failing_mart(warehouse, as_of):
    from csw.cli import app

    ok = CliRunner().invoke(app, ["quality", "--no-batches", "--as-of", as_of.isoformat()])
    assert ok.exit_code == 0, ok.output
    _sql(
        warehouse,
        "update marts.fct_conversations set channel = 'fax' where conversation_id in "
        "(select conversation_id from marts.fct_conversations limit 1)",
    )
    bad = CliRunner().invoke(app, ["quality", "--no-batches", "--as-of", as_of.isoformat()])
    assert bad.exit_code == 1
    assert "`channel` is a known code (seed: channels): 1 of" in bad.output
    assert "'fax'" in bad.output


def test_committed_gx_project_matches_the_specs():
    from expectations.build import differences

    assert differences() == [], "expectations/gx is stale: run `csw quality build-suites` and review the diff"
