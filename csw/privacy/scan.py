"""`csw privacy scan`: raw customer identifiers found in any output is a failure.

The raw identifiers are the values of the customer fields `identity.STREAMS` declares (open
ids, external user ids, buyer nicks, visitor ids, requester ids, CRM ids, union ids, phone
hashes, names and e-mails where a platform sends them), read from the raw tables (or, with
no warehouse, from the landed batches). The scan then looks for them in every output:

| store      | what is read |
|------------|--------------|
| marts      | every text column of every table in the warehouse's `marts`, `forecast`, `snapshots` |
| serving    | every text column of the serving snapshot, and of each of its Parquet files |
| reports    | the report files under `<data>/reports` |
| alerts     | every text column of the alert store |
| data_docs  | GX Data Docs and validation results under `<data>/quality` |
| logs       | `<data>/logs`, Airflow logs under `<data>/airflow`, dbt logs, the privacy request log |

It is fast because it never substring-searches each identifier: outputs are split into
tokens and each token is tested for membership in the identifier set (identifiers that are
not token-shaped, such as Chinese names, go through one compiled pattern). A finding names
the store, the file or table, the column or line, and a masked sample, never the
identifier in clear.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from csw.privacy import batches
from csw.privacy.identity import STREAMS, get_path, platform_of, spellings
from csw.settings import data_dir, dbt_log_dir, warehouse_path

MIN_LENGTH = 6  # shorter values (codes, counts) would match by chance
TOKEN_PATTERNS = (
    re.compile(r"[0-9A-Za-z_\-]+"),
    re.compile(r"[0-9A-Za-z_]+"),
    re.compile(r"[0-9A-Za-z_.+\-]+@[0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*"),  # e-mail
)
MART_SCHEMAS = ("marts", "forecast", "snapshots")
TEXT_SUFFIXES = {".html", ".htm", ".json", ".jsonl", ".txt", ".log", ".csv", ".md", ".yml", ".yaml", ""}


@dataclass
class Finding:
    store: str
    location: str  # file (relative to the data dir) or table
    column: str  # column, or line number in a file
    sample: str  # masked
    identifiers: int  # distinct identifiers found there


@dataclass
class ScanResult:
    identifiers: int
    scanned: dict[str, int] = field(default_factory=dict)  # store -> tables/columns/files read
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.findings


def mask(value: str) -> str:
    """Enough to tell identifiers apart in a report, never enough to read one."""
    keep = 2 if len(value) >= 8 else 1 if len(value) >= 4 else 0
    return value[:keep] + "*" * min(len(value) - keep, 12) + f" ({len(value)} chars)"


class Needles:
    """The identifier set, split into token-shaped values (set membership) and the rest
    (one alternation pattern)."""

    def __init__(self, identifiers: Iterable[str]):
        # a name is short but never matches by chance; a short code or number would
        values = {v for v in identifiers if v and len(v) >= (MIN_LENGTH if v.isascii() else 2)}
        self.tokens = {v for v in values if any(p.fullmatch(v) for p in TOKEN_PATTERNS)}
        others = sorted(values - self.tokens, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, others))) if others else None

    def __len__(self) -> int:
        return len(self.tokens) + (len(self.pattern.pattern.split("|")) if self.pattern else 0)

    def find(self, text: str) -> set[str]:
        found = set()
        for pattern in TOKEN_PATTERNS:
            found |= self.tokens.intersection(pattern.findall(text))
        if self.pattern is not None:
            found |= set(self.pattern.findall(text))
        return found


# -- the raw identifiers ------------------------------------------------------------------


def _fields() -> Iterator[tuple[str, str]]:
    for table, fields in STREAMS.items():
        for path in (fields.ids + fields.pii) if fields else ():
            yield table, path


def raw_identifiers(con: duckdb.DuckDBPyConnection | None = None, landing: Path | None = None) -> set[str]:
    """Customer identifiers from the raw tables, else from landed batches."""
    out: set[str] = set()
    if con is not None:
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall()
        }
        for table, path in _fields():
            if table in tables:
                rows = con.execute(
                    f"select distinct json_extract_string(payload, '$.{path}') from raw.\"{table}\""
                ).fetchall()
                out |= {s for (v,) in rows if v for s in spellings(platform_of(table), v)}
        return out
    wanted: dict[str, list[str]] = {}
    for table, path in _fields():
        wanted.setdefault(table, []).append(path)
    for directory, manifest in batches.batches(landing or data_dir() / "landing"):
        table = f"{manifest.platform}__{manifest.stream}"
        for _, record in batches.load(directory, manifest, verify=False) or [] if table in wanted else []:
            for path in wanted[table]:
                value = get_path(record, path)
                if value is not None:
                    out |= spellings(manifest.platform, str(value))
    return out


# -- the outputs --------------------------------------------------------------------------


def _scan_duckdb(
    con, schemas: Iterable[str] | None, store: str, name: str, needles: Needles, result: ScanResult
) -> None:
    where = "table_type = 'BASE TABLE'"
    params: list = []
    if schemas is not None:
        where += " and table_schema in (select unnest(?))"
        params.append(list(schemas))
    for schema, table in con.execute(
        f"select table_schema, table_name from information_schema.tables where {where} order by 1, 2", params
    ).fetchall():
        source = f'"{schema}"."{table}"'
        _scan_relation(con, source, f"{name}{schema}.{table}", store, needles, result)


def _scan_relation(con, source: str, location: str, store: str, needles: Needles, result: ScanResult) -> None:
    columns = con.execute(f"select * from {source} limit 0").description
    for column, type_code, *_ in columns:
        if str(type_code) not in ("VARCHAR", "JSON") and not str(type_code).startswith(
            ("VARCHAR[", "STRUCT", "MAP")
        ):
            continue
        values = con.execute(
            f'select distinct "{column}"::varchar from {source} where "{column}" is not null'
        ).fetchall()
        found = needles.find("\n".join(v for (v,) in values))
        result.scanned[store] = result.scanned.get(store, 0) + 1
        if found:
            result.findings.append(Finding(store, location, column, mask(sorted(found)[0]), len(found)))


def _files(root: Path, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    if root.is_file():
        yield root
    elif root.is_dir():
        for path in sorted(root.rglob("*")):
            if (
                path.is_file()
                and path.suffix.lower() in TEXT_SUFFIXES
                and not any(s in path.parts for s in skip)
            ):
                yield path


def _scan_files(
    store: str, roots: Iterable[Path], needles: Needles, result: ScanResult, skip: tuple[str, ...] = ()
) -> None:
    base = data_dir()
    for root in roots:
        for path in _files(root, skip):
            text = path.read_text(encoding="utf-8", errors="replace")
            result.scanned[store] = result.scanned.get(store, 0) + 1
            found = needles.find(text)
            if found:
                first = sorted(found)[0]
                line = text[: max(text.find(first), 0)].count("\n") + 1
                where = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
                result.findings.append(Finding(store, where, f"line {line}", mask(first), len(found)))


def _scan_sqlite(path: Path, store: str, needles: Needles, result: ScanResult) -> None:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
            for column in [r[1] for r in con.execute(f"pragma table_info('{table}')").fetchall()]:
                values = con.execute(
                    f'select distinct cast("{column}" as text) from "{table}" where "{column}" is not null'
                )
                found = needles.find("\n".join(v for (v,) in values))
                result.scanned[store] = result.scanned.get(store, 0) + 1
                if found:
                    result.findings.append(Finding(store, table, column, mask(sorted(found)[0]), len(found)))
    finally:
        con.close()


def scan(identifiers: Iterable[str] | None = None) -> ScanResult:
    """Look for the raw identifiers (default: collected from raw) in every output store."""
    from alerting.store import store_path
    from csw.privacy.forget import requests_log
    from csw.publish import serving_dir

    started = time.monotonic()
    path = warehouse_path()
    con = duckdb.connect(str(path), read_only=True) if path.exists() else None
    try:
        needles = Needles(identifiers if identifiers is not None else raw_identifiers(con))
        result = ScanResult(identifiers=len(needles))
        if con is not None:
            _scan_duckdb(con, MART_SCHEMAS, "marts", "", needles, result)
    finally:
        if con is not None:
            con.close()
    serving = serving_dir()
    snapshot = serving / "warehouse.duckdb"
    if snapshot.exists():
        snap = duckdb.connect(str(snapshot), read_only=True)
        try:
            _scan_duckdb(snap, None, "serving", "warehouse.duckdb:", needles, result)
            for parquet in sorted((serving / "parquet").glob("*.parquet")):
                source = f"read_parquet('{str(parquet).replace(chr(39), chr(39) * 2)}')"
                _scan_relation(snap, source, f"parquet/{parquet.name}", "serving", needles, result)
        finally:
            snap.close()
    root = data_dir()
    _scan_files("reports", [root / "reports"], needles, result)
    if store_path().exists():
        _scan_sqlite(store_path(), "alerts", needles, result)
    _scan_files("data_docs", [root / "quality"], needles, result, skip=("static",))
    logs = [root / "logs", root / "airflow" / "logs", dbt_log_dir(), requests_log()]
    _scan_files("logs", logs, needles, result)
    result.seconds = round(time.monotonic() - started, 2)
    return result
