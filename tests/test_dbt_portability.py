"""The dbt models are portable: the same project builds on PostgreSQL (dbt-postgres, target
`postgres`) from the same raw data, and the marts match the DuckDB build row by row.

Flow: the sandbox -> connectors -> DuckDB `raw` (two days before as_of, every platform) ->
`dbt build` on DuckDB; the raw schema copied into a throwaway PostgreSQL (tests/pg.py;
`payload` as jsonb) -> `dbt build --target postgres` with the same as_of -> every mart
compared: same columns, same rows (floats to 1e-6 relative, 1e-3 absolute).

Engine differences live in dispatched macros (dbt_project/macros/portable.sql, time.sql,
json.sql, privacy.sql, marts.sql), never in the models.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import re
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pg import SKIP_REASON, PostgresServer, copy_duckdb_schema, find_pg_bin

from connectors.cli import run_ingest
from csw.transform import DBT_DIR, run_dbt, transform

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_pg_bin() is None, reason=SKIP_REASON)]

HISTORY_DAYS = 2  # enough for every platform's streams and every mart; keeps the test quick
MAIN_MARTS = ("fct_conversations", "mart_sla_daily", "mart_sla_interval", "mart_satisfaction")
REL_TOL, ABS_TOL = 1e-6, 1e-3  # round(x, 3) of a float tie may land on either side


@pytest.fixture(scope="module")
def duckdb_build(tmp_path_factory, _server, as_of):
    """Ingest every platform from the sandbox, then the DuckDB dbt build. Yields the file."""
    work = tmp_path_factory.mktemp("portable")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    started = time.monotonic()
    summary = run_ingest(
        None, None, as_of - pd.Timedelta(days=HISTORY_DAYS), as_of, _server.url, show_progress=False
    )
    assert not summary["failures"], summary["failures"]
    transform(as_of)
    print(f"\nDuckDB: ingest + dbt build in {time.monotonic() - started:.0f} s")
    yield work / "warehouse" / "warehouse.duckdb"
    mp.undo()


@pytest.fixture(scope="module")
def postgres_build(duckdb_build, tmp_path_factory, as_of):
    """The raw schema copied into a fresh PostgreSQL, then `dbt build --target postgres`."""
    started = time.monotonic()
    with PostgresServer() as pg:
        pg.create_database("warehouse")
        con = pg.connect("postgres")
        con.autocommit = True
        with con.cursor() as cur:  # the DuckDB target computes in UTC too (profiles.yml)
            cur.execute("alter database warehouse set timezone to 'UTC'")
        con.close()
        copied = copy_duckdb_schema(duckdb_build, pg, "warehouse", "raw")
        assert sum(copied.values()) > 0, copied
        out = tmp_path_factory.mktemp("dbt_postgres")
        env = {
            "CSW_PG_HOST": pg.host,
            "CSW_PG_PORT": str(pg.port),
            "CSW_PG_USER": pg.user,
            "CSW_PG_PASSWORD": "",
            "CSW_PG_DATABASE": "warehouse",
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            # its own target/log paths: the DuckDB build's artefacts stay where csw expects them
            proc = run_dbt(
                [
                    "build",
                    "--target",
                    "postgres",
                    "--target-path",
                    str(out / "target"),
                    "--log-path",
                    str(out / "logs"),
                ],
                as_of=as_of,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert proc.returncode == 0, "dbt build --target postgres failed:\n" + _failures(proc.stdout)
        print(f"PostgreSQL: copy + dbt build in {time.monotonic() - started:.0f} s")
        yield pg


def _failures(stdout: str) -> str:
    lines = stdout.splitlines()
    keep = [i for i, line in enumerate(lines) if re.search(r"ERROR|FAIL|Error", line)]
    picked = sorted({j for i in keep for j in range(i, min(i + 8, len(lines)))})
    return "\n".join(lines[j] for j in picked)[-6000:] or stdout[-4000:]


# -- comparing relations ---------------------------------------------------------------------------
def _norm(value):
    """A value as a comparable Python object, whatever engine and driver produced it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, decimal.Decimal | float | int):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return ("ts", value.isoformat())
    if isinstance(value, dt.date):
        return ("date", value.isoformat())
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def _sort_key(row):
    # floats are rounded for sorting only, so a last-digit difference cannot reorder rows
    return tuple(
        (0, "") if v is None else (1, round(v, 2)) if isinstance(v, float) else (2, str(v)) for v in row
    )


def _rows(cursor_rows):
    return sorted((tuple(_norm(v) for v in row) for row in cursor_rows), key=_sort_key)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def _mart_tables(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
        ).fetchall()
    ]


def test_every_mart_builds_on_postgres(duckdb_build, postgres_build):
    con = duckdb.connect(str(duckdb_build), read_only=True)
    marts = _mart_tables(con)
    con.close()
    assert set(MAIN_MARTS) & set(marts) >= {"fct_conversations"}, marts
    pg_con = postgres_build.connect("warehouse")
    with pg_con.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        )
        on_pg = [r[0] for r in cur.fetchall()]
    pg_con.close()
    assert on_pg == marts


def _compare(duckdb_path: Path, pg: PostgresServer, mart: str) -> list[str]:
    """Differences between marts.<mart> on both engines (empty when they match)."""
    con = duckdb.connect(str(duckdb_path), read_only=True)
    cur = con.execute(f"select * from marts.{mart}")
    duck_cols = [d[0] for d in cur.description]
    duck = _rows(cur.fetchall())
    con.close()
    pg_con = pg.connect("warehouse")
    with pg_con.cursor() as pcur:
        pcur.execute(f"select * from marts.{mart}")
        pg_cols = [d.name for d in pcur.description]
        rows = _rows(pcur.fetchall())
    pg_con.close()

    if pg_cols != duck_cols:
        return [f"{mart}: columns differ: duckdb {duck_cols} / postgres {pg_cols}"]
    if not duck:
        return [f"{mart} is empty on DuckDB: the comparison would prove nothing"]
    if len(rows) != len(duck):
        return [f"{mart}: {len(duck)} rows on DuckDB, {len(rows)} on PostgreSQL"]
    diffs = []
    for d_row, p_row in zip(duck, rows, strict=True):
        for col, a, b in zip(duck_cols, d_row, p_row, strict=True):
            if not _same(a, b):
                diffs.append(f"{mart}.{col}: duckdb {a!r} / postgres {b!r}")
    return diffs


@pytest.mark.parametrize("mart", MAIN_MARTS)
def test_main_mart_matches_duckdb(duckdb_build, postgres_build, mart):
    con = duckdb.connect(str(duckdb_build), read_only=True)
    exists = mart in _mart_tables(con)
    con.close()
    if not exists:
        pytest.skip(f"marts.{mart} does not exist (yet)")
    diffs = _compare(duckdb_build, postgres_build, mart)
    assert not diffs, f"{len(diffs)} differences, e.g.\n" + "\n".join(diffs[:15])


def test_other_marts_match_duckdb(duckdb_build, postgres_build):
    con = duckdb.connect(str(duckdb_build), read_only=True)
    others = [m for m in _mart_tables(con) if m not in MAIN_MARTS]
    con.close()
    diffs = [d for mart in others for d in _compare(duckdb_build, postgres_build, mart)[:5]]
    assert not diffs, f"{len(diffs)} differences, e.g.\n" + "\n".join(diffs[:20])


def test_models_hold_no_engine_specific_syntax():
    """Engine-only spellings stay in dispatched macros (dbt_project/macros/)."""
    duckdb_only = {
        r"\bjson_extract(_string)?\s*\(": "json_str()",
        r"\bjson_array_length\s*\(": "json_array_len()",
        r"\bepoch\s*\(": "epoch_s()",
        r"\btimezone\s*\(": "local_to_utc() / local_date()",
        r"\bqualify\b": "a ranked sub-query",
        r"\bstrftime\s*\(|\bstrptime\s*\(": "dbt's cross-database macros",
        r"\blist_\w+\s*\(|\bstruct_pack\s*\(|\bunnest\s*\(": "a portable macro",
        r"::": "cast(... as ...)",
        r"\bround\s*\([^()]*(\([^()]*\))*[^()]*,\s*\d+\s*\)": "round_to()",
        r"\bdouble\b(?!\s+precision)": "double precision",
    }
    offenders = []
    for path in sorted((DBT_DIR / "models").rglob("*.sql")) + sorted((DBT_DIR / "snapshots").rglob("*.sql")):
        text = re.sub(r"--[^\n]*|\{#.*?#\}", "", path.read_text(), flags=re.S)
        for pattern, instead in duckdb_only.items():
            for m in re.finditer(pattern, text, flags=re.I):
                offenders.append(f"{Path(path).relative_to(DBT_DIR)}: {m.group(0)!r} -> use {instead}")
    assert not offenders, "engine-specific SQL in models:\n" + "\n".join(offenders)
