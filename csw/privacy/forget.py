"""`csw privacy forget`: remove one person from every store, then rebuild what derives (PIPL).

1. resolve the person through the CRM mapping feed (raw and landed `crm.identities`): a
   platform id or a CRM id becomes every platform id of that person and their CRM id;
2. add their salted keys to the suppression list first, so a load running next cannot
   bring them back;
3. find their conversations (records naming them carry the conversation id) in raw tables,
   landing and quarantine;
4. remove their records: raw tables, `raw._quarantine`, `ops.events`, landed and
   quarantined batch files (rewritten, `batches.rewrite`), the alert store, and the rows
   of the dbt snapshots (tier history) with their keys; add their conversations to the
   suppression list;
5. rebuild dbt with `--full-refresh` as of the marts' own `as_of` (incremental marts and
   their history are recomputed from what is left) and republish the serving snapshot
   when one exists.

The request is logged (and appended to `<data>/privacy/requests.jsonl`) with the salted
hash of the person only; the identifiers themselves are never written anywhere.
Run it while no other process writes the warehouse (pause `cs_ingest`, or let the one-slot
writer pool be free): DuckDB refuses a second writer, and the command says so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from connectors.core.landing import landing_root, quarantine_root
from csw.pipeline import iso
from csw.privacy import batches, suppress
from csw.privacy.identity import (
    CRM,
    Person,
    PrivacyError,
    label,
    parse_customer,
    platform_of,
    resolve,
    rule,
)
from csw.settings import data_dir, warehouse_path

log = logging.getLogger("csw.privacy")


@dataclass
class ForgetResult:
    person: str  # salted hash: the person key, else the customer key
    identifiers: int
    conversations: int
    removed: dict[str, int] = field(default_factory=dict)
    rebuilt_as_of: str | None = None
    published: bool = False
    seconds: float = 0.0


def requests_log() -> Path:
    return data_dir() / "privacy" / "requests.jsonl"


def _connect() -> duckdb.DuckDBPyConnection | None:
    path = warehouse_path()
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        raise PrivacyError(
            f"the warehouse {path} is in use by another process ({str(exc).splitlines()[0]}); "
            "pause cs_ingest/cs_transform (or wait for the duckdb_writer pool) and run the command again"
        ) from exc
    con.execute("set timezone = 'UTC'")
    return con


def _tables(con, schema: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' order by 1",
            [schema],
        ).fetchall()
    ]


def _raw_streams(con) -> list[str]:
    return [t for t in _tables(con, "raw") if not t.startswith("_")]


def _identity_records(con) -> list[dict]:
    rows = []
    if con is not None and "crm__identities" in _tables(con, "raw"):
        rows += [
            json.loads(p)
            for (p,) in con.execute("select payload::varchar from raw.crm__identities").fetchall()
        ]
    for root in (landing_root(), quarantine_root()):
        for directory, manifest in batches.batches(root):
            if (manifest.platform, manifest.stream) == (CRM, "identities"):
                rows += [r for _, r in batches.load(directory, manifest, verify=False) or []]
    return rows


def _contains_any(column: str, n: int) -> str:
    return "(" + " or ".join([f"contains({column}, ?)"] * n) + ")"


def _raw_candidates(con, table: str, tokens: list[str]) -> list[tuple[int, dict]]:
    """Rows whose JSON text contains an identifier (then checked value by value)."""
    rows = con.execute(
        f'select rowid, payload::varchar from raw."{table}" where {_contains_any("payload::varchar", len(tokens))}',
        tokens,
    ).fetchall()
    return [(rowid, json.loads(payload)) for rowid, payload in rows]


def _batch_rows(directory, manifest, needles: list[bytes]) -> list[tuple[bytes, dict]] | None:
    data = batches.body(directory, manifest, verify=False)
    if data is None or not any(n in data for n in needles):
        return None
    return batches.parse(data)


def _needles(person: Person, platform: str, tokens: list[str]) -> list[bytes]:
    return [t.encode() for t in tokens] + [c.encode() for c in person.conversations.get(platform, ())]


def _find_conversations(con, person: Person, tokens: list[str]) -> None:
    if con is not None:
        for table in _raw_streams(con):
            fields = rule(table)
            if fields and fields.conversation:
                for _, record in _raw_candidates(con, table, tokens):
                    if person.matches(table, record):
                        person.note_conversation(table, record)
    for root in (landing_root(), quarantine_root()):
        for directory, manifest in batches.batches(root):
            table = f"{manifest.platform}__{manifest.stream}"
            fields = rule(table)
            if fields and fields.conversation:
                for _, record in _batch_rows(directory, manifest, [t.encode() for t in tokens]) or []:
                    if person.matches(table, record):
                        person.note_conversation(table, record)


def _forget_raw(con, person: Person, tokens: list[str]) -> tuple[int, int, int]:
    """(raw rows, raw._quarantine rows, ops.events rows) removed."""
    raw = 0
    for table in _raw_streams(con):
        rowids = {
            rowid for rowid, record in _raw_candidates(con, table, tokens) if person.matches(table, record)
        }
        fields = rule(table)
        convs = sorted(person.conversations.get(platform_of(table), ()))
        if fields and fields.conversation and convs:
            rowids |= {
                r[0]
                for r in con.execute(
                    f"select rowid from raw.\"{table}\" where json_extract_string(payload, '$.{fields.conversation}') in (select unnest(?::varchar[]))",
                    [convs],
                ).fetchall()
            }
        if rowids:
            con.execute(
                f'delete from raw."{table}" where rowid in (select unnest(?::bigint[]))', [sorted(rowids)]
            )
            raw += len(rowids)
    quarantined = 0
    if "_quarantine" in _tables(con, "raw"):
        rows = con.execute("select rowid, platform, stream, record::varchar from raw._quarantine").fetchall()
        gone = [rid for rid, p, s, rec in rows if person.matches(f"{p}__{s}", json.loads(rec))]
        if gone:
            con.execute("delete from raw._quarantine where rowid in (select unnest(?::bigint[]))", [gone])
            quarantined = len(gone)
    events = 0
    if "events" in _tables(con, "ops"):
        where = _contains_any("coalesce(message, '') || coalesce(details::varchar, '')", len(tokens))
        events = con.execute(f"select count(*) from ops.events where {where}", tokens).fetchone()[0]
        con.execute(f"delete from ops.events where {where}", tokens)
    return raw, quarantined, events


def _forget_files(root: Path, person: Person, tokens: list[str]) -> int:
    removed = 0
    for directory, manifest in list(batches.batches(root)):
        table = f"{manifest.platform}__{manifest.stream}"
        rows = _batch_rows(directory, manifest, _needles(person, manifest.platform, tokens))
        if rows:
            removed += batches.rewrite(directory, manifest, rows, lambda r, t=table: person.matches(t, r))
    return removed


def _forget_snapshots(con, person: Person) -> int:
    """dbt snapshots keep history a full refresh never rewrites: drop the person's rows."""
    keys = sorted(person.keys())
    removed = 0
    for table in _tables(con, "snapshots"):
        columns = {r[0] for r in con.execute(f'describe snapshots."{table}"').fetchall()}
        for column in ("person_key", "customer_key") if keys else ():
            if column in columns:
                where = f'"{column}" in (select unnest(?::varchar[]))'
                removed += con.execute(
                    f'select count(*) from snapshots."{table}" where {where}', [keys]
                ).fetchone()[0]
                con.execute(f'delete from snapshots."{table}" where {where}', [keys])
    return removed


def _forget_alerts(person: Person, tokens: list[str]) -> int:
    """Alert store rows naming the person: their keys, the short key and label alerts use."""
    from alerting.store import AlertStore, store_path

    if not store_path().exists():
        return 0
    keys = person.keys()
    needles = sorted(set(tokens) | keys | {k[:16] for k in keys} | {label(k) for k in keys})
    removed = 0
    with AlertStore() as store:
        tables = [
            r["name"] for r in store.query("select name from alerting.sqlite_master where type = 'table'")
        ]
        gone_events: set[str] = set()
        for table in tables:
            columns = [r["name"] for r in store.query(f"pragma alerting.table_info('{table}')")]
            text = " || ".join(f"coalesce(cast(\"{c}\" as text), '')" for c in columns)
            where = "(" + " or ".join([f"instr({text}, ?) > 0"] * len(needles)) + ")"
            if table == "alert_events":
                gone_events = {
                    r["event_id"]
                    for r in store.query(f"select event_id from alerting.alert_events where {where}", needles)
                }
            removed += store.query(f'select count(*) as n from alerting."{table}" where {where}', needles)[0][
                "n"
            ]
            store.execute(f'delete from alerting."{table}" where {where}', needles)
        if gone_events and "deliveries" in tables:
            marks = ", ".join("?" * len(gone_events))
            removed += store.query(
                f"select count(*) as n from alerting.deliveries where event_id in ({marks})",
                list(gone_events),
            )[0]["n"]
            store.execute(f"delete from alerting.deliveries where event_id in ({marks})", list(gone_events))
    return removed


def _marts_as_of(con) -> str | None:
    try:
        value = con.execute("select max(as_of) from marts.fct_conversations").fetchone()[0]
    except duckdb.Error:
        return None
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def forget(
    customer: str | None = None, crm_id: str | None = None, as_of=None, rebuild: bool = True
) -> ForgetResult:
    """Forget one person (`customer` = `<platform>:<id>`, or `crm_id`). See the module doc."""
    from connectors.platforms import all_streams

    started = time.monotonic()
    platforms = {s.platform for s in all_streams().values()}
    target = parse_customer(customer, platforms) if customer else None
    con = _connect()
    try:
        person = resolve(_identity_records(con), customer=target, crm_id=crm_id)
        tokens = sorted(person.tokens())
        suppress.add(person)  # first: a load from now on drops them
        _find_conversations(con, person, tokens)
        removed: dict[str, int] = {}
        if con is not None:
            con.execute("begin transaction")
            raw, quarantined, events = _forget_raw(con, person, tokens)
            snapshots = _forget_snapshots(con, person)
            con.execute("commit")
            removed.update(raw=raw, raw_quarantine=quarantined, ops_events=events, tier_snapshot=snapshots)
        removed["landing"] = _forget_files(landing_root(), person, tokens)
        removed["quarantine_files"] = _forget_files(quarantine_root(), person, tokens)
        suppress.add(person)  # now with their conversations
        as_of = iso(as_of) if as_of is not None else _marts_as_of(con) if con is not None else None
    finally:
        if con is not None:
            con.close()
    removed["alert_store"] = _forget_alerts(person, tokens)
    result = ForgetResult(
        person=person.label(),
        identifiers=len(tokens),
        conversations=sum(len(c) for c in person.conversations.values()),
        removed=removed,
    )
    _record(result, "forgotten; rebuilding")
    if rebuild and as_of is not None:
        _rebuild(result, as_of)
    result.seconds = round(time.monotonic() - started, 1)
    _record(result, "done")
    return result


def _rebuild(result: ForgetResult, as_of: str) -> None:
    from csw.publish import PublishRefused, publish_snapshot, snapshot_path
    from csw.transform import TransformError, transform

    try:
        transform(as_of, full_refresh=True)
    except TransformError as exc:
        raise PrivacyError(
            f"the person's records are removed, but the rebuild failed: {exc}\n"
            f"Marts still hold their hashed keys: fix it and run `csw transform --full-refresh --as-of {as_of}`."
        ) from exc
    result.rebuilt_as_of = as_of
    if snapshot_path().exists():
        try:
            publish_snapshot()
        except PublishRefused as exc:
            raise PrivacyError(
                f"marts rebuilt, but the serving snapshot was not republished ({exc}); it still holds the "
                "person's hashed keys until `csw publish` succeeds"
            ) from exc
        result.published = True


def _record(result: ForgetResult, stage: str) -> None:
    """The request, with the person's salted hash only, in the log and the requests file."""
    log.info("privacy forget person=%s %s: removed %s", result.person, stage, result.removed)
    path = requests_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(), "request": "forget", "stage": stage, **asdict(result)}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


__all__ = ["ForgetResult", "forget", "requests_log"]
