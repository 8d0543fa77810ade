"""Landing and the exactly-once loader, on hand-made batches (no HTTP needed here)."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest

from connectors.core import landing
from connectors.core.loader import Loader
from connectors.core.quarantine import entries, release
from connectors.core.streams import Stream

STREAM = Stream(
    platform="demo",
    name="messages",
    primary_key=("msgid",),
    time_field="send_time",
    time_format="unix_s",
    cursor="server_cursor",
    doc="test",
    required=("origin",),
)
STREAMS = {STREAM.table: STREAM}


@pytest.fixture()
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    return tmp_path


def _rec(i: int, **extra) -> dict:
    return {
        "msgid": f"m{i}",
        "send_time": 1762848000 + i,
        "origin": 3,
        "text": {"content": f"hi {i}"},
        **extra,
    }


def _rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_batches_load_exactly_once(dirs):
    landing.write_batch("demo", "messages", [_rec(i) for i in range(5)], cursor_after="c1")
    landing.write_batch("demo", "messages", [_rec(i) for i in range(3, 8)], cursor_after="c2")  # overlap 3,4
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        first = loader.load_pending()
        again = loader.load_pending()
        for d, m in landing.manifests():
            loader.load_batch(d, m)  # forcing a reload changes nothing either
    assert first.batches == 2 and first.rows == 8 and first.duplicates == 2
    assert again.batches == 0
    assert _rows(db, 'select count(*), count(distinct _record_key) from raw."demo__messages"') == [(8, 8)]
    assert _rows(db, "select cursor from raw._sync_state") == [('"c2"',)]
    (t,) = _rows(db, "select min(_record_time) from raw.demo__messages")[0]
    assert t.timestamp() == 1762848000


def test_changed_record_is_a_new_version(dirs):
    landing.write_batch("demo", "messages", [_rec(1)])
    landing.write_batch("demo", "messages", [_rec(1, status="edited")])
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        loader.load_pending()
    assert _rows(db, "select count(*) from raw.demo__messages where _record_key = 'm1'") == [(2,)]


def test_bad_records_are_quarantined_good_ones_load(dirs):
    bad_time = _rec(2, send_time="yesterday")
    no_key = {k: v for k, v in _rec(3).items() if k != "msgid"}
    no_origin = {k: v for k, v in _rec(4).items() if k != "origin"}
    landing.write_batch("demo", "messages", [_rec(1), bad_time, no_key, no_origin, _rec(5)])
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        res = loader.load_pending()
        listed = entries(loader)
    assert res.rows == 2 and res.quarantined_rows == 3
    reasons = sorted(e.reason for e in listed)
    assert reasons[0].startswith("missing key field msgid")
    assert "missing required field origin" in reasons
    assert any(r.startswith("unparseable send_time") for r in reasons)
    kinds = _rows(db, "select kind from ops.events")
    assert ("rows_quarantined",) in kinds


def test_unreadable_batch_is_quarantined_whole_and_released_after_fix(dirs):
    good = landing.write_batch("demo", "messages", [_rec(1)])
    broken = landing.write_batch("demo", "messages", [_rec(2), _rec(3)])
    path = dirs / "landing" / "demo" / "messages" / broken.file
    original = path.read_bytes()
    path.write_bytes(gzip.compress(b'{"msgid": "m2"'))  # truncated / altered after landing
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        res = loader.load_pending()
        assert res.quarantined_batches == [broken.batch_id] and res.rows == 1
        listed = entries(loader)
        assert [(e.grain, e.batch_id) for e in listed] == [("batch", broken.batch_id)]
        assert "checksum mismatch" in listed[0].reason
        # fix: restore the file in quarantine, then release; it loads exactly once
        (dirs / "quarantine" / "demo" / "messages" / broken.file).write_bytes(original)
        release(loader, broken.batch_id)
        res2 = loader.load_pending()
        res3 = loader.load_pending()
    assert res2.rows == 2 and res3.batches == 0
    assert _rows(db, "select count(*) from raw.demo__messages") == [(3,)]
    assert good.batch_id < broken.batch_id


def test_released_records_load_after_the_declaration_is_fixed(dirs):
    landing.write_batch("demo", "messages", [_rec(1), _rec(2, send_time="1762848002.5x")])
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        loader.load_pending()
        bad = [e for e in entries(loader) if e.grain == "record"]
        assert len(bad) == 1
        out = release(loader, bad[0].batch_id)  # still bad: stays quarantined
        assert out["released"] == 0 and out["still_quarantined"] == 1
        loader.con.execute(
            "update raw._quarantine set record = json_object('msgid','m2','send_time',1762848002,'origin',3)"
        )
        out = release(loader, bad[0].batch_id)
        assert out["released"] == 1
        assert not [e for e in entries(loader) if e.grain == "record"]
    assert _rows(db, "select count(*) from raw.demo__messages") == [(2,)]


def test_validator_rejects_batch(dirs):
    landing.write_batch("demo", "messages", [_rec(1)])
    db = dirs / "w.duckdb"

    def gate(manifest, records):
        return ["too few rows"] if len(records) < 2 else []

    with Loader(db, STREAMS, validator=gate) as loader:
        res = loader.load_pending()
    assert len(res.quarantined_batches) == 1
    reason = json.loads(next((dirs / "quarantine").rglob("*.reason.json")).read_text())["reason"]
    assert reason == "too few rows"


def test_empty_batch_loads(dirs):
    landing.write_batch("demo", "messages", [], cursor_after="c0")
    with Loader(dirs / "w.duckdb", STREAMS) as loader:
        res = loader.load_pending()
    assert res.batches == 1 and res.rows == 0


def test_row_number_is_the_line_in_the_landed_file(dirs):
    """`_row_number` is each record's line in its batch file, also when DuckDB scans large
    batches in parallel (dbt breaks ties between records of equal time by it)."""
    for b in range(3):
        landing.write_batch("demo", "messages", [_rec(b * 100_000 + i) for i in range(60_000)])
    db = dirs / "w.duckdb"
    with Loader(db, STREAMS) as loader:
        assert loader.load_pending().rows == 180_000
    ((misplaced,),) = _rows(
        db,
        "select count(*) from raw.demo__messages "
        "where _row_number <> cast(substr(_record_key, 2) as integer) % 100000 + 1",
    )
    assert misplaced == 0
