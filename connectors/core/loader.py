"""The loader: landed batches into DuckDB `raw`, exactly once.

For each unloaded batch, oldest first, in ONE transaction:
- the batch's rows go to `raw.<platform>__<stream>` with the original JSON (`payload`)
  plus `_record_key`, `_record_time` (UTC), `_record_hash`, `_batch_id`, `_source`,
  `_extracted_at`, `_row_number`. A row identical to one already loaded (same key, same
  content: an overlapping window, a duplicate across pages) is not loaded twice; a
  changed record (a late update) is a new version, and staging keeps the latest;
- rows without a key, or with a time that does not parse, go to `raw._quarantine` with
  the reason, while the batch's good rows load;
- `raw._batches` records the batch, `raw._sync_state` the stream's cursor, `ops.events`
  the events the extraction noticed (fallback used, ...).

Loading a batch twice changes nothing (`raw._batches` is checked inside the transaction).
A batch that cannot be read (missing file, checksum mismatch, not JSON) or that the
pluggable validator rejects is moved whole to `data/quarantine/` with its reason.

Parsing is done by DuckDB over the gzip file (`read_ndjson_objects`): no Python per row.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from connectors.core.landing import (
    MANIFEST_SUFFIX,
    Manifest,
    landing_root,
    manifests,
    quarantine_root,
    read_records,
)
from connectors.core.streams import Stream

log = logging.getLogger("connectors.loader")

Validator = Callable[[Manifest, list[dict]], list[str]]  # returns failure reasons

DDL = """
create schema if not exists raw;
create schema if not exists ops;
create table if not exists raw._batches (
    batch_id varchar primary key, platform varchar, stream varchar, source varchar,
    row_count integer, loaded_rows integer, duplicate_rows integer, quarantined_rows integer,
    cursor_after json, "window" json, landed_at timestamptz, loaded_at timestamptz, file varchar
);
create table if not exists raw._sync_state (
    platform varchar, stream varchar, cursor json, batch_id varchar, updated_at timestamptz,
    primary key (platform, stream)
);
create table if not exists raw._quarantine (
    batch_id varchar, platform varchar, stream varchar, row_number integer, reason varchar,
    record json, quarantined_at timestamptz, released_at timestamptz
);
create table if not exists ops.events (
    event_id varchar primary key, occurred_at timestamptz, platform varchar, stream varchar, kind varchar,
    severity varchar, message varchar, batch_id varchar, details json
);
"""

RAW_COLUMNS = """
    _record_key varchar not null, _record_hash varchar not null, _record_time timestamptz,
    _batch_id varchar not null, _source varchar not null, _extracted_at timestamptz not null,
    _row_number integer not null, payload json not null,
    primary key (_record_key, _record_hash)
"""


def _json_path(field_name: str) -> str:
    return "$." + field_name


def _time_sql(stream: Stream, col: str = "j") -> str:
    """SQL turning the stream's time field into a UTC timestamptz (NULL if unparseable)."""
    raw = f"json_extract_string({col}, '{_json_path(stream.time_field)}')"
    if stream.time_format == "unix_s":
        return f"to_timestamp(try_cast({raw} as double))"
    if stream.time_format == "unix_ms":
        return f"to_timestamp(try_cast({raw} as double) / 1000.0)"
    if stream.time_format == "iso":
        return f"try_cast({raw} as timestamptz)"
    if stream.time_format == "local":
        return f"timezone('Asia/Shanghai', try_strptime({raw}, '%Y-%m-%d %H:%M:%S'))"
    raise ValueError(f"unknown time format {stream.time_format!r} for {stream.table}")


def _key_sql(stream: Stream, col: str = "j") -> str:
    parts = [f"json_extract_string({col}, '{_json_path(k)}')" for k in stream.primary_key]
    if len(parts) == 1:
        return parts[0]
    nulls = " or ".join(f"{p} is null" for p in parts)
    return f"case when {nulls} then null else concat_ws('|', {', '.join(parts)}) end"


def _reason_sql(stream: Stream, col: str = "j") -> str:
    """First problem of a record, or NULL when it can load."""
    checks = [
        f"when json_type({col}) <> 'OBJECT' then 'not a JSON object'",
    ]
    for k in stream.primary_key:
        checks.append(
            f"when json_extract_string({col}, '{_json_path(k)}') is null then 'missing key field {k}'"
        )
    for r in stream.required:
        checks.append(
            f"when json_extract({col}, '{_json_path(r)}') is null then 'missing required field {r}'"
        )
    raw_time = f"json_extract_string({col}, '{_json_path(stream.time_field)}')"
    checks.append(f"when {raw_time} is null then 'missing time field {stream.time_field}'")
    checks.append(
        f"when {_time_sql(stream, col)} is null then "
        f"'unparseable {stream.time_field} (expected {stream.time_format}): ' || {raw_time}"
    )
    return "case " + " ".join(checks) + " else null end"


@dataclass
class LoadResult:
    batches: int = 0
    rows: int = 0
    duplicates: int = 0
    quarantined_rows: int = 0
    quarantined_batches: list[str] = field(default_factory=list)
    skipped: int = 0
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, stream: str, rows: int, dups: int, quarantined: int, source: str) -> None:
        s = self.per_stream.setdefault(
            stream, {"rows": 0, "duplicates": 0, "quarantined": 0, "batches": 0, "scrape": 0}
        )
        s["rows"] += rows
        s["duplicates"] += dups
        s["quarantined"] += quarantined
        s["batches"] += 1
        s["scrape"] += source == "scrape"


class Loader:
    """The single writer of `raw`. Use as a context manager or call `close()`."""

    def __init__(
        self,
        db_path: Path | str,
        streams: dict[str, Stream],
        validator: Validator | None = None,
        landing: Path | None = None,
        quarantine: Path | None = None,
    ):
        self.db_path = str(db_path)
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(self.db_path)
        self.con.execute("set timezone = 'UTC'")
        self.con.execute(DDL)
        self.streams = streams  # by table name: "<platform>__<stream>"
        self.validator = validator
        self.landing = landing or landing_root()
        self.quarantine = quarantine or quarantine_root()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------
    def pending(self) -> list[tuple[Path, Manifest]]:
        loaded = {r[0] for r in self.con.execute("select batch_id from raw._batches").fetchall()}
        return [(d, m) for d, m in manifests(root=self.landing) if m.batch_id not in loaded]

    def load_pending(self, progress: Callable[[Manifest], None] | None = None) -> LoadResult:
        result = LoadResult()
        for directory, manifest in self.pending():
            self.load_batch(directory, manifest, result)
            if progress:
                progress(manifest)
        return result

    def load_batch(self, directory: Path, manifest: Manifest, result: LoadResult | None = None) -> LoadResult:
        result = result or LoadResult()
        stream = self.streams.get(f"{manifest.platform}__{manifest.stream}")
        if stream is None:
            self._quarantine_batch(
                directory, manifest, f"unknown stream {manifest.platform}.{manifest.stream}"
            )
            result.quarantined_batches.append(manifest.batch_id)
            return result
        try:
            records = read_records(directory, manifest)  # checksum + JSON check
        except (OSError, ValueError) as exc:
            self._quarantine_batch(directory, manifest, f"unreadable batch: {exc}")
            result.quarantined_batches.append(manifest.batch_id)
            return result
        if len(records) != manifest.row_count:
            self._quarantine_batch(
                directory, manifest, f"row count {len(records)} differs from manifest {manifest.row_count}"
            )
            result.quarantined_batches.append(manifest.batch_id)
            return result
        if self.validator is not None:
            reasons = self.validator(manifest, records)
            if reasons:
                self._quarantine_batch(directory, manifest, "; ".join(reasons))
                result.quarantined_batches.append(manifest.batch_id)
                return result
        self._load(directory, manifest, stream, result)
        return result

    # -- internals ------------------------------------------------------------------------
    def _ensure_table(self, stream: Stream) -> str:
        table = f'raw."{stream.table}"'
        self.con.execute(f"create table if not exists {table} ({RAW_COLUMNS})")
        return table

    def _load(self, directory: Path, manifest: Manifest, stream: Stream, result: LoadResult) -> None:
        con = self.con
        table = self._ensure_table(stream)
        path = str(manifest.data_path(directory))
        extracted_at = manifest.created_at
        con.execute("begin transaction")
        try:
            if con.execute("select 1 from raw._batches where batch_id = ?", [manifest.batch_id]).fetchone():
                con.execute("rollback")
                result.skipped += 1
                return
            con.execute(
                """
                create or replace temp table _incoming as
                select row_number() over () as _row_number, json as j
                from read_ndjson_objects(?, compression = 'gzip')
                """,
                [path],
            )
            con.execute(
                f"create or replace temp table _checked as select *, {_reason_sql(stream)} as _reason from _incoming"
            )
            before = con.execute(f"select count(*) from {table}").fetchone()[0]
            con.execute(
                f"""
                insert or ignore into {table}
                select {_key_sql(stream)}, md5(j::varchar), {_time_sql(stream)},
                       ?, ?, ?::timestamptz, _row_number::integer, j
                from _checked where _reason is null
                qualify row_number() over (partition by {_key_sql(stream)}, md5(j::varchar) order by _row_number) = 1
                order by _row_number
                """,
                [manifest.batch_id, manifest.source, extracted_at],
            )
            inserted = con.execute(f"select count(*) from {table}").fetchone()[0] - before
            good, bad = con.execute(
                "select count(*) filter (where _reason is null), count(*) filter (where _reason is not null) from _checked"
            ).fetchone()
            con.execute(
                """
                insert into raw._quarantine
                select ?, ?, ?, _row_number, _reason, j, now(), null from _checked where _reason is not null
                """,
                [manifest.batch_id, manifest.platform, manifest.stream],
            )
            dups = good - inserted
            con.execute(
                "insert into raw._batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::timestamptz, now(), ?)",
                [
                    manifest.batch_id,
                    manifest.platform,
                    manifest.stream,
                    manifest.source,
                    manifest.row_count,
                    inserted,
                    dups,
                    bad,
                    json.dumps(manifest.cursor_after),
                    json.dumps(manifest.window),
                    manifest.created_at,
                    manifest.file,
                ],
            )
            con.execute(
                """
                insert into raw._sync_state values (?, ?, ?, ?, now())
                on conflict (platform, stream) do update set
                    cursor = excluded.cursor, batch_id = excluded.batch_id, updated_at = excluded.updated_at
                """,
                [manifest.platform, manifest.stream, json.dumps(manifest.cursor_after), manifest.batch_id],
            )
            events = list(manifest.events)
            if bad:
                events.append(
                    {
                        "kind": "rows_quarantined",
                        "severity": "warning",
                        "message": f"{bad} record(s) of {manifest.platform}.{manifest.stream} quarantined; "
                        "see `csw quarantine list`",
                        "details": {"rows": bad},
                    }
                )
            self._events(events, manifest)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        result.batches += 1
        result.rows += inserted
        result.duplicates += dups
        result.quarantined_rows += bad
        result.add(f"{manifest.platform}.{manifest.stream}", inserted, dups, bad, manifest.source)

    def _events(self, events: Iterable[dict], manifest: Manifest | None) -> None:
        for ev in events:
            self.con.execute(
                "insert into ops.events values (?, now(), ?, ?, ?, ?, ?, ?, ?)",
                [
                    uuid.uuid4().hex,
                    manifest.platform if manifest else ev.get("platform"),
                    manifest.stream if manifest else ev.get("stream"),
                    ev["kind"],
                    ev.get("severity", "info"),
                    ev.get("message", ""),
                    manifest.batch_id if manifest else None,
                    json.dumps(ev.get("details", {}), ensure_ascii=False, default=str),
                ],
            )

    def _quarantine_batch(self, directory: Path, manifest: Manifest, reason: str) -> None:
        """Move the whole batch out of landing, with its reason beside it."""
        target = self.quarantine / manifest.platform / manifest.stream
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{manifest.batch_id}.reason.json").write_text(
            json.dumps({"reason": reason, "at": dt.datetime.now(dt.UTC).isoformat()}, ensure_ascii=False)
        )
        for name in (manifest.file, f"{manifest.batch_id}{MANIFEST_SUFFIX}"):
            src = directory / name
            if src.exists():
                shutil.move(str(src), str(target / name))
        log.warning(
            "batch %s of %s.%s quarantined: %s", manifest.batch_id, manifest.platform, manifest.stream, reason
        )
        self.con.execute("begin transaction")
        self._events(
            [
                {
                    "kind": "batch_quarantined",
                    "severity": "error",
                    "message": f"batch {manifest.batch_id} of {manifest.platform}.{manifest.stream} "
                    f"quarantined: {reason}. Fix the cause, then `csw quarantine release {manifest.batch_id}`",
                    "details": {"reason": reason},
                }
            ],
            manifest,
        )
        self.con.execute("commit")
