"""`csw privacy`: forget, the suppression list, retention and the raw-identifier scan.

One normal pipeline run on the small sandbox (ingest every platform and the CRM through the
batch gate, dbt build, mart gate, publish, interval alerts, daily report) is shared by the
module. Then:

- the scan is clean on it, and finds an identifier planted in each kind of output;
- two persons are forgotten (one by CRM id, one by a Zendesk id resolved through the CRM
  feed); the test searches every store itself for their identifiers and keys, and compares
  every mart, row for row, with a warehouse built from landing files from which the test
  itself removed their records; a re-ingest of the old window does not bring them back;
- retention deletes exactly the rows and batches older than the cut, never an unloaded
  batch or a stream's newest one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path

import duckdb
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from alerting.realtime import hash_customer, label
from alerting.store import AlertStore
from connectors.cli import run_ingest
from connectors.core.landing import MANIFEST_SUFFIX, Manifest, write_batch
from connectors.core.loader import Loader
from connectors.platforms import all_streams, available
from csw import pipeline
from csw.cli import app
from csw.privacy import identity, retention
from csw.privacy.scan import Needles
from csw.publish import publish_snapshot

TZ = "Asia/Shanghai"
SALT_NS_PERSON = "crm_person"
# the test's own view of where each platform's records name their conversation
CONVERSATION = {
    "taobao": "session_id",
    "jd": "sid",
    "meiqia": "conv_id",
    "sobot": "cid",
    "douyin": "session_id",
    "pinduoduo": "session_id",
    "zendesk": "ticket_id",
}
runner = CliRunner()


def _env(mp: pytest.MonkeyPatch, work: Path) -> None:
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    mp.delenv("CSW_SERVING_DIR", raising=False)
    mp.delenv("CSW_ALERT_STORE", raising=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory, sim_data, _server, as_of):
    """A normal pipeline run on the small sandbox, in a data dir of its own."""
    from alerting.jobs import run_interval
    from alerting.reports import build_report
    from csw.transform import transform

    work = tmp_path_factory.mktemp("privacy")
    mp = pytest.MonkeyPatch()
    _env(mp, work)
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    start = pd.Timestamp(sim_data.config["start"]).tz_localize(TZ).tz_convert("UTC")
    summary = run_ingest(available(), None, start, as_of, _server.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    transform(as_of)
    pipeline.mart_gate(as_of)
    publish_snapshot()
    run_interval(as_of)
    build_report("daily", as_of)
    yield {"dir": work, "start": start}
    mp.undo()


def _copy(src: Path, dst: Path, mp: pytest.MonkeyPatch) -> Path:
    shutil.copytree(src, dst)
    _env(mp, dst)
    return dst


# -- the scan -------------------------------------------------------------------------------


def test_scan_is_clean_after_a_normal_run(run):
    result = runner.invoke(app, ["privacy", "scan", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["clean"] and out["findings"] == []
    assert out["identifiers"] > 1000
    # every kind of output was read
    assert {"marts", "serving", "reports", "alerts", "data_docs", "logs"} <= set(out["scanned"])


def test_scan_finds_a_planted_identifier_in_each_kind_of_output(run, sim_data, tmp_path, monkeypatch):
    work = _copy(run["dir"], tmp_path / "planted", monkeypatch)
    ids = sim_data["identities"].set_index("channel")["platform_user_id"]
    openid, external, buyer = ids["wechat_oa"].iloc[0], ids["wecom"].iloc[0], ids["jd"].iloc[0]
    union_id = sim_data["customers"]["union_id"].iloc[0]
    con = duckdb.connect(str(work / "warehouse" / "warehouse.duckdb"))
    con.execute(
        "update marts.dim_customers set person_key = ? where person_key = (select min(person_key) from marts.dim_customers)",
        [openid],
    )
    con.close()
    snap = duckdb.connect(str(work / "serving" / "warehouse.duckdb"))
    snap.execute(
        "update marts.fct_conversations set conversation_id = ? where rowid = 0", [f"wecom:{external}"]
    )
    snap.execute(
        f"copy (select 'vip ' || ? as note) to '{work / 'serving' / 'parquet' / 'marts.leak.parquet'}' (format parquet)",
        [buyer],
    )
    snap.close()
    report = next((work / "reports").glob("*.html"))
    report.write_text(report.read_text().replace("</body>", f"<p>客户 {union_id}</p></body>"))
    with AlertStore() as store:
        store.record_event(
            pd.Timestamp("2026-11-11", tz="UTC"),
            "vip_waiting",
            "k",
            "warning",
            "fired",
            f"customer {openid} waits",
        )
    docs = work / "quality" / "data_docs" / "validations" / "planted.html"
    docs.write_text(f"<td>unexpected: {external}</td>")
    log = work / "airflow" / "logs" / "dag_id=cs_ingest" / "attempt=1.log"
    log.parent.mkdir(parents=True)
    log.write_text("[2026-11-11] INFO loaded\n[2026-11-11] INFO record for " + buyer + " loaded\n")

    result = runner.invoke(app, ["privacy", "scan", "--json"])
    assert result.exit_code == 1, result.output
    for clear in (openid, external, buyer, union_id):
        assert clear not in result.output, "a finding must never show the identifier in clear"
    found = {(f["store"], f["location"], f["column"]) for f in json.loads(result.stdout)["findings"]}
    assert ("marts", "marts.dim_customers", "person_key") in found
    assert ("serving", "warehouse.duckdb:marts.fct_conversations", "conversation_id") in found
    assert ("serving", "parquet/marts.leak.parquet", "note") in found
    assert any(store == "reports" and loc == f"reports/{report.name}" for store, loc, _ in found)
    assert ("alerts", "alert_events", "message") in found
    assert ("data_docs", "quality/data_docs/validations/planted.html", "line 1") in found
    assert ("logs", "airflow/logs/dag_id=cs_ingest/attempt=1.log", "line 2") in found
    assert len(found) == 7


def test_names_and_other_non_token_identifiers_are_found_inside_text():
    needles = Needles(["朱娟娟", "wmAbCdEf0123456789", "li.na@example.com", "C01"])
    assert needles.find("客户朱娟娟来电") == {"朱娟娟"}
    assert needles.find("key=wecom|wmAbCdEf0123456789;x") == {"wmAbCdEf0123456789"}
    assert needles.find("mail li.na@example.com.") == {"li.na@example.com"}
    assert needles.find("wmAbCdEf01234567890 C01") == set()  # a longer token, and too short to look for


# -- forget -------------------------------------------------------------------------------


def _person_ids(sim_data, crm_id: str) -> dict[str, set[str]]:
    ids = sim_data["identities"]
    mine = ids[ids["customer_id"] == crm_id]
    out: dict[str, set[str]] = {"crm": {crm_id}}
    for channel, value in zip(mine["channel"], mine["platform_user_id"], strict=True):
        out.setdefault(channel, set()).add(str(value))
    return out


def _choose_people(sim_data, as_of) -> tuple[str, str, str]:
    """A CRM customer with conversations on the most platforms, and a Zendesk requester
    with a CRM mapping (another person)."""
    conv = sim_data["conversations"]
    conv = conv[conv["started_at"] < as_of]
    busiest = conv.groupby("customer_id")["channel"].nunique().sort_values(ascending=False, kind="stable")
    first = busiest.index[0]
    zendesk = conv[(conv["channel"] == "zendesk") & (conv["customer_id"] != first)]
    second = zendesk.groupby("customer_id").size().sort_values(ascending=False, kind="stable").index[0]
    requester = zendesk.loc[zendesk["customer_id"] == second, "platform_user_id"].iloc[0]
    return first, second, str(requester)


def _tokens(people: list[dict[str, set[str]]]) -> set[str]:
    out = set()
    for ids in people:
        for platform, values in ids.items():
            for v in values:
                out |= {v, f"cntaobao{v}"} if platform == "taobao" else {v}
    return out


def _keys(people: list[dict[str, set[str]]]) -> set[str]:
    return {
        hash_customer(SALT_NS_PERSON if p == "crm" else p, v)
        for ids in people
        for p, values in ids.items()
        for v in values
    }


def _values(obj) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_values(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_values(v) for v in obj)) if obj else set()
    return set() if obj is None or isinstance(obj, bool) else {str(obj)}


def _strip_landing(landing: Path, tokens: set[str]) -> int:
    """The test's own removal: records naming the people, and records of their conversations;
    each batch keeps its id, file name and cursor, with its row count and checksum redone."""
    batches = []
    convs: dict[str, set[str]] = {}
    for path in sorted(landing.glob(f"*/*/*{MANIFEST_SUFFIX}")):
        m = Manifest.read(path)
        records = [
            orjson.loads(x) for x in gzip.decompress((path.parent / m.file).read_bytes()).splitlines() if x
        ]
        field = "id" if (m.platform, m.stream) == ("zendesk", "tickets") else CONVERSATION.get(m.platform)
        batches.append((path, m, records, field))
        for r in records:
            if _values(r) & tokens and field and r.get(field) is not None:
                convs.setdefault(m.platform, set()).add(str(r[field]))
    removed = 0
    for path, m, records, field in batches:
        keep = [
            r
            for r in records
            if not _values(r) & tokens and not (field and str(r.get(field)) in convs.get(m.platform, ()))
        ]
        if len(keep) < len(records):
            removed += len(records) - len(keep)
            payload = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in keep))
            (path.parent / m.file).write_bytes(payload)
            m.row_count, m.sha256 = len(keep), hashlib.sha256(payload).hexdigest()
            path.write_text(json.dumps(asdict(m), ensure_ascii=False))
    return removed


def _texts(con, schemas: tuple[str, ...] | None = None) -> str:
    """Every value of every column of every table (optionally in some schemas), as text."""
    parts = []
    for schema, table in con.execute(
        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
    ).fetchall():
        if schemas is None or schema in schemas:
            cols = [r[0] for r in con.execute(f'describe "{schema}"."{table}"').fetchall()]
            expr = " || '|' || ".join(f"coalesce(\"{c}\"::varchar, '')" for c in cols)
            parts += [r[0] for r in con.execute(f'select {expr} from "{schema}"."{table}"').fetchall()]
    return "\n".join(parts)


def _tokens_in(text: str) -> set[str]:
    import re

    return set(re.findall(r"[0-9A-Za-z_\-]+", text))


def _marts(path: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        ]
        out = {}
        for name in names:
            df = con.execute(f"select * from marts.{name}").df()
            for col in df.columns:
                if pd.api.types.is_float_dtype(df[col]):
                    df[col] = df[col].round(6)
            df = df.astype(str)
            out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def forgotten(run, sim_data, _server, as_of, tmp_path_factory):
    """Forget two persons in the run's data dir; build a second warehouse from landing files
    the test stripped of them itself."""
    work = run["dir"]
    first, second, requester = _choose_people(sim_data, as_of)
    people = [_person_ids(sim_data, first), _person_ids(sim_data, second)]
    tokens, keys = _tokens(people), _keys(people)
    platform = sorted(p for p in people[0] if p != "crm")[0]
    wecom_key = hash_customer(platform, sorted(people[0][platform])[0])
    # plant the first person in quarantine (a batch and a record) and in the alert store
    con = duckdb.connect(str(work / "warehouse" / "warehouse.duckdb"))
    record = con.execute(
        "select payload::varchar from raw.crm__identities where payload->>'customer_id' = ? limit 1", [first]
    ).fetchone()[0]
    con.execute(
        "insert into raw._quarantine values ('b-planted', 'crm', 'identities', 1, 'planted', ?::json, now(), null)",
        [record],
    )
    con.close()
    quarantined = write_batch("crm", "identities", [json.loads(record)], root=work / "quarantine")
    (work / "quarantine" / "crm" / "identities" / f"{quarantined.batch_id}.reason.json").write_text(
        '{"reason": "planted"}'
    )
    with AlertStore() as store:
        store.replace_vips([(platform, wecom_key), ("jd", "someone-else")], pd.Timestamp(as_of))
        event = store.record_event(
            as_of,
            "vip_waiting",
            f"vip_waiting:wecom:{wecom_key[:16]}:1",
            "warning",
            "fired",
            f"WeCom: VIP customer {label(wecom_key)} has waited 45 s",
        )
        store.record_delivery(event, "wecom", 1, True, None)
    stripped = tmp_path_factory.mktemp("never_had_them")
    shutil.copytree(work / "landing", stripped / "landing")
    stripped_records = _strip_landing(stripped / "landing", tokens)

    logs = []
    handler = logging.Handler()
    handler.emit = lambda rec: logs.append(rec.getMessage())
    logging.getLogger("csw.privacy").addHandler(handler)
    logging.getLogger("csw.privacy").setLevel(logging.INFO)
    try:
        from csw.privacy.forget import forget

        by_platform = forget(customer=f"zendesk:{requester}", rebuild=False)
        cli = runner.invoke(app, ["privacy", "forget", "--crm-id", first, "--json"])
    finally:
        logging.getLogger("csw.privacy").removeHandler(handler)
    assert cli.exit_code == 0, cli.output
    by_crm = json.loads(cli.stdout)

    # the second warehouse, from landing files that never had them (same batch gate and as_of)
    mp = pytest.MonkeyPatch()
    _env(mp, stripped)
    try:
        loaded = pipeline.load_landed(as_of)
        from csw.transform import transform

        transform(as_of)
    finally:
        mp.undo()
    return {
        "work": work,
        "people": people,
        "tokens": tokens,
        "keys": keys,
        "by_platform": by_platform,
        "by_crm": by_crm,
        "cli_output": cli.output,
        "logs": logs,
        "stripped": stripped,
        "stripped_records": stripped_records,
        "stripped_load": loaded,
        "second_requester": requester,
    }


def test_forget_reports_what_it_removed_per_store(forgotten):
    a, b = forgotten["by_platform"], forgotten["by_crm"]
    assert a.identifiers >= 3  # the Zendesk id resolved through the CRM feed: CRM id and other platforms
    assert b["identifiers"] >= 3 and b["conversations"] >= 3
    assert b["removed"]["raw"] > 0 and b["removed"]["landing"] > 0
    assert b["removed"]["raw_quarantine"] == 1 and b["removed"]["quarantine_files"] == 1
    assert b["removed"]["alert_store"] == 3  # the VIP key, the alert event, its delivery
    assert b["removed"]["tier_snapshot"] >= 1
    assert a.removed["tier_snapshot"] >= 1 and a.removed["raw"] > 0
    assert b["rebuilt_as_of"] == "2026-11-11T08:00:00Z" and b["published"]
    # the landing records removed are exactly those the test removed itself
    assert b["removed"]["landing"] + a.removed["landing"] == forgotten["stripped_records"]


def test_no_trace_of_them_in_any_store(forgotten):
    work, tokens, keys = forgotten["work"], forgotten["tokens"], forgotten["keys"]
    # landing and quarantine files, uncompressed
    for path in sorted((work / "landing").rglob("*.jsonl.gz")) + sorted(
        (work / "quarantine").rglob("*.jsonl.gz")
    ):
        text = gzip.decompress(path.read_bytes()).decode()
        assert not _tokens_in(text) & tokens, path
    # every table of the warehouse: raw, raw._quarantine, ops, marts, snapshots, forecast ...
    con = duckdb.connect(str(work / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        found = _tokens_in(_texts(con))
        assert not found & tokens
        assert not found & keys
        for key in keys:  # the conversation rows carry their customer key too
            assert (
                con.execute(
                    "select count(*) from marts.fct_conversations where customer_key = ? or person_key = ?",
                    [key, key],
                ).fetchone()[0]
                == 0
            )
        assert (
            con.execute(
                "select count(*) from snapshots.snp_customer_tiers where person_key in (select unnest(?))",
                [sorted(keys)],
            ).fetchone()[0]
            == 0
        )
    finally:
        con.close()
    # the serving snapshot and its Parquet files
    snap = duckdb.connect(str(work / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        found = _tokens_in(_texts(snap))
        for parquet in (work / "serving" / "parquet").glob("*.parquet"):
            found |= _tokens_in(
                "\n".join(map(str, snap.execute(f"select * from read_parquet('{parquet}')").fetchall()))
            )
    finally:
        snap.close()
    assert not found & (tokens | keys)
    # the alert store: no key, short key, label or id; someone else's VIP row stays
    db = sqlite3.connect(work / "alerting" / "alerts.sqlite")
    dump = "\n".join(db.iterdump())
    db.close()
    for key in keys:
        assert key[:16] not in dump and label(key) not in dump
    assert not _tokens_in(dump) & tokens
    assert "someone-else" in dump


def test_marts_equal_a_build_from_data_that_never_had_them(forgotten):
    assert forgotten["stripped_load"]["quarantined_batches"] == []
    a = _marts(forgotten["work"] / "warehouse" / "warehouse.duckdb")
    b = _marts(forgotten["stripped"] / "warehouse" / "warehouse.duckdb")
    assert set(a) == set(b) and len(a) >= 9
    for name in sorted(a):
        assert len(a[name]) == len(b[name]), name
        pd.testing.assert_frame_equal(a[name], b[name], obj=f"marts.{name}")
    # and raw holds exactly what the stripped landing files load
    ca = duckdb.connect(str(forgotten["work"] / "warehouse" / "warehouse.duckdb"), read_only=True)
    cb = duckdb.connect(str(forgotten["stripped"] / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        for table in all_streams():
            na = ca.execute(f'select count(*) from raw."{table}"').fetchone()[0]
            nb = cb.execute(f'select count(*) from raw."{table}"').fetchone()[0]
            assert na == nb, table
    finally:
        ca.close()
        cb.close()


def test_the_forget_log_holds_no_identifier_in_clear(forgotten):
    logs = forgotten["logs"] + [forgotten["cli_output"]]
    logs += (forgotten["work"] / "privacy" / "requests.jsonl").read_text().splitlines()
    tokens = forgotten["tokens"] | {forgotten["second_requester"]}
    assert logs and any(forgotten["by_crm"]["person"] in line for line in logs)
    for line in logs:
        assert not _tokens_in(line) & tokens, "the forget log must name the person by a salted hash only"
    suppressed = (forgotten["work"] / "privacy" / "suppressed.json").read_text()
    assert not _tokens_in(suppressed) & tokens
    assert forgotten["by_crm"]["person"] in suppressed


def test_a_reingest_of_the_old_window_does_not_bring_them_back(
    forgotten, run, _server, as_of, monkeypatch, caplog
):
    _env(monkeypatch, forgotten["work"])
    caplog.set_level(logging.INFO, logger="csw.privacy")
    platforms = sorted(
        {p for ids in forgotten["people"] for p in ids} & {"zendesk", "meiqia", "sobot", "jd", "crm"}
    )
    summary = run_ingest(platforms, None, run["start"], as_of, _server.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    dropped = [r.getMessage() for r in caplog.records if "forgotten customers dropped" in r.getMessage()]
    assert dropped, "the re-read window held their records again: the loader's filter must have dropped them"
    con = duckdb.connect(str(forgotten["work"] / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        assert not _tokens_in(_texts(con, ("raw",))) & forgotten["tokens"]
    finally:
        con.close()
    for path in sorted((forgotten["work"] / "landing").rglob("*.jsonl.gz")):
        assert not _tokens_in(gzip.decompress(path.read_bytes()).decode()) & forgotten["tokens"], path


def test_forget_says_what_is_wrong_with_a_bad_request(run):
    for args, words in (
        (["--customer", "wecom"], "<platform>:<id>"),
        (["--customer", "myspace:abc"], "unknown platform"),
        ([], "exactly one of"),
        (["--customer", "wecom:x", "--crm-id", "C1"], "exactly one of"),
    ):
        result = runner.invoke(app, ["privacy", "forget", *args])
        assert result.exit_code == 2, (args, result.output)
        assert words in " ".join(result.output.split()), result.output


# -- declarations, retention, the DAG -------------------------------------------------------


def test_every_declared_stream_says_where_it_keeps_the_customer():
    assert set(identity.STREAMS) == set(all_streams())


def test_retention_deletes_only_old_loaded_data(run, tmp_path, monkeypatch, as_of):
    work = _copy(run["dir"], tmp_path / "retained", monkeypatch)
    db = work / "warehouse" / "warehouse.duckdb"
    cut = pd.Timestamp(as_of) - pd.Timedelta(days=3)
    con = duckdb.connect(str(db), read_only=True)
    before = {
        t: con.execute(
            f'select count(*), count(*) filter (where coalesce(_record_time, _extracted_at) < ?) from raw."{t}"',
            [cut],
        ).fetchone()
        for t in all_streams()
    }
    con.close()
    old = {"since": "2026-11-01T00:00:00+00:00", "until": "2026-11-02T00:00:00+00:00"}
    unloaded = write_batch("jd", "ratings", [], window=old, root=work / "landing")
    recent = {
        "since": (pd.Timestamp(as_of) - pd.Timedelta(hours=1)).isoformat(),
        "until": pd.Timestamp(as_of).isoformat(),
    }
    newest_unloaded = write_batch("jd", "ratings", [], window=recent, root=work / "landing")
    policy = {t: retention.Retention(landing_days=3, raw_days=3) for t in all_streams()}
    policy["crm__orders"] = retention.Retention(landing_days=None, raw_days=None)
    result = retention.apply_retention(as_of, policy=policy)

    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, (total, older) in before.items():
            after = con.execute(f'select count(*) from raw."{table}"').fetchone()[0]
            expected = total if table == "crm__orders" else total - older
            assert after == expected, table
            assert result.raw_rows.get(table, 0) == (0 if table == "crm__orders" else older)
    finally:
        con.close()
    assert sum(result.raw_rows.values()) > 1000
    manifests = [Manifest.read(p) for p in (work / "landing").glob(f"*/*/*{MANIFEST_SUFFIX}")]
    newest = {}
    for m in manifests:
        newest[(m.platform, m.stream)] = max(newest.get((m.platform, m.stream), ""), m.batch_id)
    had = {
        (m.platform, m.stream)
        for m in map(Manifest.read, (run["dir"] / "landing").glob(f"*/*/*{MANIFEST_SUFFIX}"))
    }
    assert set(newest) == had, "every stream keeps its newest batch"
    assert unloaded.batch_id in {m.batch_id for m in manifests}, "an unloaded batch is never deleted"
    assert result.kept_unloaded == 1 and sum(result.landing_batches.values()) > 0
    for m in manifests:  # what is left is recent, unloaded, kept forever or the newest of its stream
        ended = pd.Timestamp((m.window or {}).get("until") or m.created_at)
        assert (
            ended >= cut
            or m.batch_id in (unloaded.batch_id, newest[(m.platform, m.stream)])
            or m.stream == "orders"
        )
    # the loader still works on what is left (it loads the unloaded batch)
    with Loader(db, all_streams()) as loader:
        assert [m.batch_id for _, m in loader.pending()] == [unloaded.batch_id, newest_unloaded.batch_id]
        assert loader.load_pending().batches == 2


def test_retention_config_is_checked(tmp_path):
    assert retention.load_policy()["wechat_oa__queue"] == retention.Retention(landing_days=7, raw_days=30)
    assert retention.load_policy()["crm__orders"].raw_days is None
    bad = tmp_path / "retention.yaml"
    for text, words in (
        ("streams:\n  myspace.messages: {raw_days: 3}\n", "unknown stream 'myspace.messages'"),
        ("defaults: {raw_days: -1}\n", "not a number of days"),
        ("defaults: {raw_dayz: 3}\n", "expected a mapping"),
    ):
        bad.write_text(text)
        with pytest.raises(identity.PrivacyError, match=words):
            retention.load_policy(bad)


def test_retention_dag_structure(tmp_path_factory):
    import datetime as dt
    import os

    from csw.airflow_env import DAGS_DIR, airflow_env

    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(8080, base={}, data_root=home)
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW") or k.startswith("CSW_")})
    try:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAGS_DIR / "cs_retention.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert bag.import_errors == {}
    dag = bag.dags["cs_retention"]
    assert "cs-warehouse" in dag.tags and dag.doc_md and len(dag.doc_md) > 200
    assert dag.catchup is False and dag.max_active_runs == 1
    (task,) = dag.tasks
    assert task.pool == pipeline.WRITER_POOL and task.owner == "cs-data-eng"
    assert task.retries >= 2 and task.retry_delay >= dt.timedelta(seconds=30)
