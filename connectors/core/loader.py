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
import gzip
import hashlib
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
)
from connectors.core.streams import Stream

log = logging.getLogger("connectors.loader")

Validator = Callable[[Manifest, list[dict]], list[str]]  # returns failure reasons
"""Called with each batch's records before it loads. A validator may also have
`prepare(pending) -> bool`: `load_pending` calls it first with every pending batch, and
when it answers True (all passed, e.g. the GX gate validating a stream's batches in one
frame) the batches load without parsing their records for the validator."""

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

# No primary key: the loader's anti-join on (_record_key, _record_hash) keeps rows unique
# (one writer), and an index would cost more than the whole load.
RAW_COLUMNS = """
    _record_key varchar not null, _record_hash varchar not null, _record_time timestamptz,
    _batch_id varchar not null, _source varchar not null, _extracted_at timestamptz not null,
    _row_number integer not null, payload json not null
"""


def _json_path(field_name: str) -> str:
    return "$." + field_name


def _time_sql(stream: Stream, col: str = "j") -> str:
    """SQL turning the stream's time field into a UTC timestamptz (NULL if unparseable)."""
    if stream.time_field is None:
        return "cast(null as timestamptz)"
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
    if stream.time_field is not None:
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
        self.streams = streams  # by table name: "<platform>__<stream>"
        self.validator = validator
        self.landing = landing or landing_root()
        self.quarantine = quarantine or quarantine_root()
        # every declared stream has its raw table, empty until loaded: staging can build
        # before a platform's first batch arrives (one transaction: one commit, not one per table)
        self.con.execute("begin transaction")
        self.con.execute(DDL)
        for stream in streams.values():
            self._ensure_table(stream)
        self.con.execute("commit")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------
    def pending(self) -> list[tuple[Path, Manifest]]:
        """Unloaded batches, per stream in landing order."""
        loaded = {r[0] for r in self.con.execute("select batch_id from raw._batches").fetchall()}
        todo = [(d, m) for d, m in manifests(root=self.landing) if m.batch_id not in loaded]
        # forgotten customers (csw privacy forget) never load again, whatever window is re-read
        from csw.privacy.suppress import filter_pending

        todo = filter_pending(todo)
        return sorted(todo, key=lambda item: (item[1].platform, item[1].stream, item[1].batch_id))

    def load_pending(
        self, progress: Callable[[Manifest], None] | None = None, max_group_rows: int = 500_000
    ) -> LoadResult:
        """Load every pending batch. Consecutive batches of one stream share a transaction
        (up to `max_group_rows`): each batch still loads whole or not at all."""
        result = LoadResult()
        group: list[tuple[Path, Manifest]] = []
        rows = 0

        def flush() -> None:
            nonlocal group, rows
            if group:
                self._load_group(group, result)
                for _, m in group:
                    if progress:
                        progress(m)
            group, rows = [], 0

        pending = self.pending()
        prepare = getattr(self.validator, "prepare", None)
        validate = not (prepare is not None and pending and prepare(pending))
        for directory, manifest in pending:
            if not self._precheck(directory, manifest, result, validate):
                if progress:
                    progress(manifest)
                continue
            same = group and (group[0][1].platform, group[0][1].stream) == (
                manifest.platform,
                manifest.stream,
            )
            if group and (not same or rows + manifest.row_count > max_group_rows):
                flush()
            group.append((directory, manifest))
            rows += manifest.row_count
        flush()
        return result

    def load_batch(self, directory: Path, manifest: Manifest, result: LoadResult | None = None) -> LoadResult:
        result = result or LoadResult()
        if self._precheck(directory, manifest, result):
            self._load_group([(directory, manifest)], result)
        return result

    # -- internals ------------------------------------------------------------------------
    def _precheck(
        self, directory: Path, manifest: Manifest, result: LoadResult, validate: bool = True
    ) -> bool:
        """Structural checks and (with `validate`) the pluggable validator; a failing batch is
        quarantined."""
        reason = None
        stream = self.streams.get(f"{manifest.platform}__{manifest.stream}")
        if stream is None:
            reason = f"unknown stream {manifest.platform}.{manifest.stream}"
        else:
            try:
                payload = manifest.data_path(directory).read_bytes()
                if hashlib.sha256(payload).hexdigest() != manifest.sha256:
                    reason = "unreadable batch: checksum mismatch, the file changed after landing"
                else:
                    body = gzip.decompress(payload)
                    lines = body.count(b"\n")
                    if lines != manifest.row_count:
                        reason = f"row count {lines} differs from manifest {manifest.row_count}"
                    elif validate and self.validator is not None:
                        records = [json.loads(x) for x in body.decode("utf-8").splitlines() if x]
                        reason = "; ".join(self.validator(manifest, records)) or None
            except (OSError, ValueError, EOFError) as exc:
                reason = f"unreadable batch: {exc}"
        if reason:
            self._quarantine_batch(directory, manifest, reason)
            result.quarantined_batches.append(manifest.batch_id)
            return False
        return True

    def _ensure_table(self, stream: Stream) -> str:
        table = f'raw."{stream.table}"'
        self.con.execute(f"create table if not exists {table} ({RAW_COLUMNS})")
        return table

    def _load_group(self, items: list[tuple[Path, Manifest]], result: LoadResult) -> None:
        try:
            self._load_group_tx(items, result)
        except duckdb.Error as exc:
            if len(items) == 1:
                directory, manifest = items[0]
                self._quarantine_batch(directory, manifest, f"unreadable batch: {exc}")
                result.quarantined_batches.append(manifest.batch_id)
                return
            for item in items:  # find the bad batch: load one by one
                self._load_group([item], result)

    def _load_group_tx(self, items: list[tuple[Path, Manifest]], result: LoadResult) -> None:
        con = self.con
        first = items[0][1]
        stream = self.streams[f"{first.platform}__{first.stream}"]
        table = self._ensure_table(stream)
        files = [str(m.data_path(d)) for d, m in items]
        by_file = {str(m.data_path(d)): m for d, m in items}
        con.execute("begin transaction")
        try:
            done = {
                r[0]
                for r in con.execute(
                    "select batch_id from raw._batches where batch_id in (select unnest(?))",
                    [[m.batch_id for _, m in items]],
                ).fetchall()
            }
            if done:  # loaded meanwhile by another run: skip those
                result.skipped += len(done)
                files = [f for f in files if by_file[f].batch_id not in done]
            if not files:
                con.execute("rollback")
                return
            con.execute(
                "create or replace temp table _files (filename varchar, batch_id varchar, source varchar, extracted_at timestamptz)"
            )
            con.executemany(
                "insert into _files values (?, ?, ?, ?::timestamptz)",
                [[f, by_file[f].batch_id, by_file[f].source, by_file[f].created_at] for f in files],
            )
            nonempty = [f for f in files if by_file[f].row_count > 0]
            source_sql = (
                f"read_ndjson_objects({nonempty!r}, compression = 'gzip', filename = true) with ordinality"
                if nonempty
                else "(select null::varchar as filename, null::json as json, null::bigint as ordinality where false)"
            )
            con.execute(
                f"""
                create or replace temp table _checked as
                select f.batch_id, f.source, f.extracted_at,
                       -- the line in its file: a parallel scan yields rows out of order, ordinality does not
                       (row_number() over (partition by r.filename order by r.ordinality))::integer as _row_number,
                       r.json as j,
                       {_reason_sql(stream, "r.json")} as _reason,
                       {_key_sql(stream, "r.json")} as _key,
                       md5(r.json::varchar) as _hash,
                       {_time_sql(stream, "r.json")} as _time
                from {source_sql} r join _files f using (filename)
                """
            )
            # A row identical to a loaded one (same key, same content) has the same time, so
            # only the loaded rows of this group's time range are compared: on a long history
            # the anti-join reads a few row groups, not the whole table.
            in_range, bounds = "", []
            if stream.time_field is not None:
                bounds = list(
                    con.execute(
                        "select min(_time), max(_time) from _checked where _reason is null"
                    ).fetchone()
                )
                in_range = "and t._record_time between ? and ?"
            con.execute(
                f"""
                insert into {table}
                select _key, _hash, _time, batch_id, source, extracted_at, _row_number, j
                from _checked c
                where _reason is null and not exists (
                    select 1 from {table} t
                    where t._record_key = c._key and t._record_hash = c._hash {in_range}
                )
                qualify row_number() over (partition by _key, _hash order by batch_id, _row_number) = 1
                """,
                bounds,
            )
            con.execute(
                """
                insert into raw._quarantine
                select batch_id, ?, ?, _row_number, _reason, j, now(), null from _checked where _reason is not null
                """,
                [first.platform, first.stream],
            )
            counts = {
                b: (good, bad, new)
                for b, good, bad, new in con.execute(
                    f"""
                    select c.batch_id, count(*) filter (where c._reason is null),
                           count(*) filter (where c._reason is not null), coalesce(any_value(n.n), 0)
                    from _checked c left join (
                        select _batch_id as batch_id, count(*) n from {table}
                        where _batch_id in (select unnest(?)) group by 1
                    ) n using (batch_id)
                    group by 1
                    """,
                    [[by_file[f].batch_id for f in files]],
                ).fetchall()
            }
            for f in files:
                m = by_file[f]
                good, bad, new = counts.get(m.batch_id, (0, 0, 0))
                dups = good - new
                con.execute(
                    "insert into raw._batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::timestamptz, now(), ?)",
                    [
                        m.batch_id,
                        m.platform,
                        m.stream,
                        m.source,
                        m.row_count,
                        new,
                        dups,
                        bad,
                        json.dumps(m.cursor_after),
                        json.dumps(m.window),
                        m.created_at,
                        m.file,
                    ],
                )
                events = list(m.events)
                if bad:
                    events.append(
                        {
                            "kind": "rows_quarantined",
                            "severity": "warning",
                            "message": f"{bad} record(s) of {m.platform}.{m.stream} quarantined; see `csw quarantine list`",
                            "details": {"rows": bad},
                        }
                    )
                self._events(events, m)
                result.batches += 1
                result.rows += new
                result.duplicates += dups
                result.quarantined_rows += bad
                result.add(f"{m.platform}.{m.stream}", new, dups, bad, m.source)
            last = by_file[files[-1]]
            con.execute(
                """
                insert into raw._sync_state values (?, ?, ?, ?, now())
                on conflict (platform, stream) do update set
                    cursor = excluded.cursor, batch_id = excluded.batch_id, updated_at = excluded.updated_at
                """,
                [last.platform, last.stream, json.dumps(last.cursor_after), last.batch_id],
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise

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
