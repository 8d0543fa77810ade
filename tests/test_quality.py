"""The batch gate (GX on landed batches, DESIGN §6) over real ingests from the sandbox.

One run for the module: WeCom and Douyin are extracted and landed, six corruptions are
injected into six landed batches (each into its own batch), then `run_ingest` loads
everything through the gate. Each corrupted batch must be quarantined whole with a reason,
recorded in `ops.events`, and every clean batch of the same run must load. Then: a single
record without a key stays record-grain (the batch loads), Data Docs hold no raw customer
identifier, a fixed batch re-released loads exactly once, and `csw quality` reports.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from connectors.cli import run_ingest
from connectors.core.landing import MANIFEST_SUFFIX, Manifest, manifests, read_records


def _rewrite(directory: Path, manifest: Manifest, records: list[dict]) -> Manifest:
    """Write `records` as the batch's content, in place, with a matching manifest."""
    payload = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records), mtime=0)
    (directory / manifest.file).write_bytes(payload)
    manifest.sha256 = hashlib.sha256(payload).hexdigest()
    manifest.row_count = len(records)
    (directory / f"{manifest.batch_id}{MANIFEST_SUFFIX}").write_text(json.dumps(asdict(manifest)))
    return manifest


def _batches(root: Path, platform: str, stream: str) -> list[tuple[Path, Manifest]]:
    return [(d, m) for d, m in manifests(platform, stream, root=root) if m.row_count >= 20]


# corruption name -> (platform, stream, what the gate's reason must say)
EXPECTED = {
    "all_keys_null": ("wecom", "messages", ["record key (msgid) is present"]),
    "future_timestamp": ("wecom", "messages", ["`send_time` is not in the future"]),
    "unknown_enum": ("wecom", "messages", ["`origin` is a known code", "1 of 200 rows fail (e.g. '9' x1)"]),
    "wrong_type": ("wecom", "messages", ["`send_time` has JSON type int", "(e.g. 'VARCHAR' x1)"]),
    "duplicated_key": ("wecom", "messages", ["record key (msgid) is unique within the batch"]),
    "negative_duration": ("douyin", "sessions", ["`wait_s` is a number >= 0", "(e.g. -5 x1)"]),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, _server, as_of):
    """Land, corrupt, then load through the gate, once for the module."""
    work = tmp_path_factory.mktemp("quality")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    # set, not deleted: `csw.transform` writes CSW_WAREHOUSE into os.environ, undo restores it
    mp.setenv("CSW_WAREHOUSE", str(work / "warehouse" / "warehouse.duckdb"))
    # small WeCom pages: one batch per 200 messages
    (work / "connectors.yaml").write_text(yaml.safe_dump({"platforms": {"wecom": {"page_size": 200}}}))
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    landed = run_ingest(["wecom", "douyin"], None, None, as_of, _server.url, load=False, show_progress=False)
    assert not landed["failures"], landed["failures"]

    landing = work / "landing"
    wecom = _batches(landing, "wecom", "messages")
    sessions = _batches(landing, "douyin", "sessions")
    assert len(wecom) >= 7 and sessions, "not enough batches to corrupt"
    corrupted: dict[str, str] = {}

    def corrupt(name: str, item: tuple[Path, Manifest], change) -> None:
        directory, manifest = item
        records = read_records(directory, manifest)
        _rewrite(directory, manifest, change(records))
        corrupted[name] = manifest.batch_id

    def set_field(field: str, value, index: int = 3):
        def change(records):
            records[index][field] = value
            return records

        return change

    future = int((as_of + pd.Timedelta(days=1)).timestamp())
    corrupt("all_keys_null", wecom[0], lambda rs: [{**r, "msgid": None} for r in rs])
    corrupt("future_timestamp", wecom[1], set_field("send_time", future))
    corrupt("unknown_enum", wecom[2], set_field("origin", 9))
    # a time sent as text: the loader would even parse it, only the gate sees the type changed
    corrupt(
        "wrong_type",
        wecom[3],
        lambda rs: [{**r, "send_time": str(r["send_time"])} if i == 3 else r for i, r in enumerate(rs)],
    )
    corrupt("duplicated_key", wecom[4], lambda rs: [*rs, dict(rs[0])])
    corrupt(
        "negative_duration",
        sessions[0],
        lambda rs: [{**r, "wait_s": -5} if i == 1 else r for i, r in enumerate(rs)],
    )
    # a single record without its key is record grain: the batch loads, the record is quarantined
    single = wecom[5]
    corrupt("single_null_key", single, set_field("msgid", None))
    pending_before = {m.batch_id for _, m in manifests(root=landing)}

    summary = run_ingest(["wecom", "douyin"], None, None, as_of, _server.url, show_progress=False)
    yield {
        "work": work,
        "summary": summary,
        "corrupted": corrupted,
        "pending_before": pending_before,
        "as_of": as_of,
        "url": _server.url,
    }
    mp.undo()


def _con(work: Path):
    return duckdb.connect(str(work / "warehouse" / "warehouse.duckdb"), read_only=True)


@pytest.mark.parametrize("corruption", sorted(EXPECTED))
def test_corrupted_batch_is_quarantined(run, corruption):
    platform, stream, expected = EXPECTED[corruption]
    batch_id = run["corrupted"][corruption]
    assert batch_id in run["summary"]["loaded"]["quarantined_batches"]
    reason_file = run["work"] / "quarantine" / platform / stream / f"{batch_id}.reason.json"
    assert reason_file.exists(), "the batch was not moved to quarantine whole"
    reason = json.loads(reason_file.read_text())["reason"]
    for words in expected:
        assert words in reason, reason
    page = Path(reason.rsplit("(Data Docs: ", 1)[1].rstrip(")"))
    assert page.exists() and page.suffix == ".html", "the reason names the batch's Data Docs page"
    assert batch_id in str(page)
    assert not (run["work"] / "landing" / platform / stream / f"{batch_id}{MANIFEST_SUFFIX}").exists()
    con = _con(run["work"])
    try:
        events = con.execute(
            "select kind, severity, message from ops.events where batch_id = ?", [batch_id]
        ).fetchall()
        loaded = con.execute("select count(*) from raw._batches where batch_id = ?", [batch_id]).fetchone()[0]
    finally:
        con.close()
    assert [(k, s) for k, s, _ in events] == [("batch_quarantined", "error")]
    assert expected[0] in events[0][2]
    assert loaded == 0


def test_clean_batches_of_the_same_run_load(run):
    quarantined = set(run["summary"]["loaded"]["quarantined_batches"])
    bad = {v for k, v in run["corrupted"].items() if k != "single_null_key"}
    assert quarantined == bad
    con = _con(run["work"])
    try:
        loaded = {r[0] for r in con.execute("select batch_id from raw._batches").fetchall()}
        rows = con.execute("select count(*) from raw.wecom__messages").fetchone()[0]
    finally:
        con.close()
    assert run["pending_before"] - bad <= loaded  # every clean batch landed before the run loaded
    assert rows > 1000
    quality = run["summary"]["quality"]
    assert quality is not None and not quality["success"]
    assert len(quality["failures"]) == len(bad)


def test_single_record_without_key_stays_record_grain(run):
    batch_id = run["corrupted"]["single_null_key"]
    con = _con(run["work"])
    try:
        batch = con.execute(
            "select loaded_rows, quarantined_rows from raw._batches where batch_id = ?", [batch_id]
        ).fetchone()
        reasons = con.execute("select reason from raw._quarantine where batch_id = ?", [batch_id]).fetchall()
    finally:
        con.close()
    assert batch is not None and batch[1] == 1 and batch[0] > 0
    assert reasons == [("missing key field msgid",)]


def test_data_docs_hold_no_raw_customer_identifier(run):
    quality = run["work"] / "quality"
    index = quality / "data_docs" / "index.html"
    assert index.exists()
    assert run["summary"]["quality"]["docs_path"] == str(index)
    identifiers: set[str] = set()
    for root in (run["work"] / "landing", run["work"] / "quarantine"):
        for directory, manifest in manifests("wecom", "messages", root=root) + manifests(
            "douyin", "sessions", root=root
        ):
            for r in read_records(directory, manifest):
                for key in ("external_userid", "customer_id"):
                    if r.get(key):
                        identifiers.add(str(r[key]))
    assert len(identifiers) > 50
    texts = [p.read_text(errors="ignore") for p in quality.rglob("*") if p.suffix in (".html", ".json")]
    assert len(texts) > 10
    blob = "\n".join(texts)
    leaked = sorted(i for i in identifiers if i in blob)
    assert not leaked, f"raw identifiers in Data Docs or results: {leaked[:5]}"
    # the failed checks are documented, with counts
    assert "record key (msgid) is unique within the batch" in blob


def test_csw_quality_reports_pending_failures(run, monkeypatch):
    from csw.cli import app

    # a fresh corrupted batch, landed but not loaded yet
    directory, manifest = _batches(run["work"] / "landing", "douyin", "sessions")[-1]
    records = read_records(directory, manifest)
    records[0]["status"] = "escalated"
    new_dir = run["work"] / "landing" / "douyin" / "sessions"
    from connectors.core.landing import write_batch

    fresh = write_batch("douyin", "sessions", records, window=manifest.window, root=run["work"] / "landing")
    assert new_dir.exists()
    result = CliRunner().invoke(app, ["quality", "--no-marts", "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads([ln for ln in result.stdout.splitlines() if ln.startswith("{")][-1])
    assert not out["success"]
    failures = out["batches"]["failures"]
    assert [f["name"] for f in failures] == [f"douyin.sessions {fresh.batch_id}"]
    assert "`status` is a known code" in failures[0]["reasons"][0]
    assert '"escalated"' in failures[0]["reasons"][0]  # codes are shown; identifiers never are
    (new_dir / fresh.file).unlink()
    (new_dir / f"{fresh.batch_id}{MANIFEST_SUFFIX}").unlink()
    ok = CliRunner().invoke(app, ["quality", "--no-marts"])
    assert ok.exit_code == 0, ok.output


def test_fixed_batch_released_loads_exactly_once(run):
    from csw.cli import app

    work = run["work"]
    batch_id = run["corrupted"]["unknown_enum"]
    qdir = work / "quarantine" / "wecom" / "messages"
    manifest = Manifest.read(qdir / f"{batch_id}{MANIFEST_SUFFIX}")

    # released unfixed: checked again, quarantined again
    out = CliRunner().invoke(app, ["quarantine", "release", batch_id])
    assert out.exit_code == 0, out.output
    assert (qdir / f"{batch_id}.reason.json").exists()

    # fixed, then released: loads, once
    manifest = Manifest.read(qdir / f"{batch_id}{MANIFEST_SUFFIX}")
    records = read_records(qdir, manifest)
    fixed = [{**r, "origin": 3} if r.get("origin") == 9 else r for r in records]
    _rewrite(qdir, manifest, fixed)
    con = _con(work)
    before = con.execute("select count(*) from raw.wecom__messages").fetchone()[0]
    con.close()
    out = CliRunner().invoke(app, ["quarantine", "release", batch_id])
    assert out.exit_code == 0, out.output
    assert not (qdir / f"{batch_id}.reason.json").exists()
    con = _con(work)
    try:
        times = con.execute("select count(*) from raw._batches where batch_id = ?", [batch_id]).fetchone()[0]
        after = con.execute("select count(*) from raw.wecom__messages").fetchone()[0]
        new_rows = con.execute(
            "select loaded_rows from raw._batches where batch_id = ?", [batch_id]
        ).fetchone()[0]
    finally:
        con.close()
    assert times == 1
    assert after - before == new_rows == len(fixed)

    # another run and another release change nothing
    summary = run_ingest(["wecom"], "messages", None, run["as_of"], run["url"], show_progress=False)
    assert batch_id not in summary["loaded"]["quarantined_batches"]
    again = CliRunner().invoke(app, ["quarantine", "release", batch_id])
    assert again.exit_code == 1  # nothing quarantined under that id any more
    con = _con(work)
    try:
        assert (
            con.execute("select count(*) from raw._batches where batch_id = ?", [batch_id]).fetchone()[0] == 1
        )
    finally:
        con.close()
