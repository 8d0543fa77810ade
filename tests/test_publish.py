"""`csw publish`: the read-only serving snapshot (atomic rename, readers never block, the mart
gate's veto), on a small hand-made warehouse."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from csw.publish import PublishRefused, publish_snapshot


def _warehouse(path: Path, as_of: str = "2026-11-21 16:00:00+00", rows: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("set timezone = 'UTC'")
        con.execute(
            "create schema if not exists marts; create schema if not exists forecast; create schema if not exists raw"
        )
        con.execute("drop table if exists marts.fct_conversations")
        con.execute(
            f"""
            create table marts.fct_conversations as
            select 'c' || i as conversation_id, 'wecom' as channel, i * 10.0 as frt_s,
                   timestamptz '{as_of}' as as_of
            from range({rows}) t(i)
            """
        )
        con.execute(
            f"""
            create or replace table marts.mart_sla_daily as
            select 'wecom' as channel, 'chat' as medium, date '2026-11-21' as local_date,
                   {rows} as conversations, {rows} as queued, {rows} as answered, 0 as abandoned,
                   {rows} as sla_judged, {rows} as sla_met, 12.5 as frt_mean_s,
                   timestamptz '{as_of}' as as_of
            """
        )
        con.execute("create or replace table raw.secret_stuff as select 'phone 13800000000' as payload")
        # forecasting publishes versioned runs behind views: the snapshot materialises the current run
        con.execute(
            """
            create or replace table forecast.staffing_actions_runs as
            select * from (values ('r1', 1, 'old run'), ('r2', 1, 'Fri 15:00-17:00 douyin: add 2 agents'))
                t(run_id, rank, sentence)
            """
        )
        con.execute("create or replace table forecast.current_run as select 'r2' as run_id")
        con.execute(
            """
            create or replace view forecast.staffing_actions as
            select * from forecast.staffing_actions_runs
            where run_id = (select run_id from forecast.current_run)
            """
        )
    finally:
        con.close()


@pytest.fixture()
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CSW_WAREHOUSE", raising=False)
    monkeypatch.delenv("CSW_SERVING_DIR", raising=False)
    _warehouse(tmp_path / "warehouse" / "warehouse.duckdb")
    return tmp_path


def test_snapshot_holds_marts_forecast_views_and_a_data_dictionary(data):
    result = publish_snapshot()
    snap = data / "serving" / "warehouse.duckdb"
    assert result.path == str(snap)
    assert result.tables == {
        "forecast.staffing_actions": 1,
        "marts.fct_conversations": 3,
        "marts.mart_sla_daily": 1,
    }
    assert result.as_of == "2026-11-21T16:00:00Z"
    assert "bi.sla_by_channel" in result.views and "bi.staffing_actions" in result.views
    con = duckdb.connect(str(snap), read_only=True)
    try:
        schemas = {
            r[0]
            for r in con.execute("select distinct table_schema from information_schema.tables").fetchall()
        }
        assert "raw" not in schemas  # BI users see marts, forecast, bi, meta only
        assert con.execute("select sentence from bi.staffing_actions").fetchall() == [
            ("Fri 15:00-17:00 douyin: add 2 agents",)
        ]
        assert con.execute("select sla_share from bi.sla_by_channel").fetchone()[0] == 1.0
        kinds = dict(
            con.execute("select table_schema || '.' || table_name, kind from meta.tables").fetchall()
        )
        assert kinds["marts.fct_conversations"] == "table" and kinds["bi.sla_by_channel"] == "view"
        assert (
            con.execute(
                "select count(*) from meta.columns where table_name = 'fct_conversations'"
            ).fetchone()[0]
            == 4
        )
        described = con.execute(
            "select description from meta.tables where table_name = 'staffing_actions' and table_schema = 'forecast'"
        ).fetchone()[0]
        assert "staffing actions" in described.lower()
    finally:
        con.close()
    parquet = sorted(p.name for p in (data / "serving" / "parquet").iterdir())
    assert parquet == [
        "forecast.staffing_actions.parquet",
        "marts.fct_conversations.parquet",
        "marts.mart_sla_daily.parquet",
    ]
    assert (
        duckdb.sql(
            f"select count(*) from '{data}/serving/parquet/marts.fct_conversations.parquet'"
        ).fetchone()[0]
        == 3
    )
    leftovers = [
        p.name
        for p in (data / "serving").rglob("*")
        if p.name.startswith(".") or p.suffix in (".tmp", ".wal")
    ]
    assert leftovers == []


def test_publishing_twice_gives_the_same_snapshot(data):
    def content():
        con = duckdb.connect(str(data / "serving" / "warehouse.duckdb"), read_only=True)
        try:
            return {
                t: con.execute(f"select * from {t} order by all").fetchall()
                for (t,) in con.execute(
                    "select table_schema || '.' || table_name from information_schema.tables order by 1"
                ).fetchall()
            }
        finally:
            con.close()

    publish_snapshot()
    first = content()
    publish_snapshot()
    assert content() == first


def test_a_failed_mart_gate_keeps_the_previous_snapshot(data):
    from csw.pipeline import gate_record_path

    publish_snapshot()
    before = (data / "serving" / "warehouse.duckdb").stat().st_ino
    gate_record_path().parent.mkdir(parents=True, exist_ok=True)
    gate_record_path().write_text(
        json.dumps({"as_of": "2026-11-21T16:00:00Z", "status": "failed", "detail": "mart.freshness"})
    )
    with pytest.raises(PublishRefused, match="mart gate failed"):
        publish_snapshot()
    assert (data / "serving" / "warehouse.duckdb").stat().st_ino == before
    # an operator can override (not for production)
    assert publish_snapshot(require_gate=False).tables


def test_no_warehouse_is_a_clear_refusal(tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CSW_WAREHOUSE", raising=False)
    with pytest.raises(PublishRefused, match="no warehouse"):
        publish_snapshot()


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    def report():
        n = con.execute("select count(*) from marts.fct_conversations").fetchone()[0]
        print(n, flush=True)
    report()
    for line in sys.stdin:
        if line.strip() == "again":
            report()
        else:
            break
    """
)


def test_a_reader_holding_the_snapshot_never_blocks_a_publish(data):
    """Another process keeps a read-only connection open; the publish still replaces the file,
    the reader keeps its consistent old data, a new connection sees the new data."""
    publish_snapshot()
    snap = data / "serving" / "warehouse.duckdb"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(snap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "3"
        _warehouse(data / "warehouse" / "warehouse.duckdb", as_of="2026-11-21 16:15:00+00", rows=5)
        result = publish_snapshot()  # does not wait for, or fail because of, the reader
        assert result.tables["marts.fct_conversations"] == 5
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "3"  # the old snapshot, whole
        fresh = duckdb.connect(str(snap), read_only=True)
        try:
            assert fresh.execute("select count(*) from marts.fct_conversations").fetchone()[0] == 5
        finally:
            fresh.close()
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0, reader.stderr.read()
