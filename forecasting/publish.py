"""Publish a forecast run into the DuckDB warehouse, atomically and versioned.

Schema ``forecast``:

- ``forecast.runs``: one row per published run (``run_id``, times, origin, horizon,
  model version, the configuration as JSON, per-series notes);
- ``forecast.current_run``: exactly one row, the run readers see;
- ``forecast.<table>_runs``: the rows of every kept run, keyed by ``run_id``, for
  ``forecast_volume``, ``forecast_backtest``, ``staffing_recommendations`` and
  ``staffing_actions``;
- views ``forecast.forecast_volume``, ``forecast.forecast_backtest``,
  ``forecast.staffing_recommendations``, ``forecast.staffing_actions``: the current run's
  rows. Readers query these.

A publish writes the run's rows, records the run and moves the ``current_run`` pointer in
ONE transaction, so a reader sees the old run or the new one, never a mix (DuckDB's MVCC
gives each query a snapshot). Runs beyond the newest ``keep`` are pruned in the same
transaction. The caller is the single writer and opens the file only for the publish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

SCHEMA = "forecast"
TABLES = ("forecast_volume", "forecast_backtest", "staffing_recommendations", "staffing_actions")
KEEP_RUNS = 20


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Create ``forecast.<table>_runs`` from the frame's columns; add columns it lacks."""
    con.register("_publish_frame", frame)
    try:
        con.execute(
            f"create table if not exists {SCHEMA}.{table}_runs as select * from _publish_frame limit 0"
        )
        have = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [SCHEMA, f"{table}_runs"],
            ).fetchall()
        }
        types = {r[0]: r[1] for r in con.execute("describe select * from _publish_frame").fetchall()}
        for col in frame.columns:
            if col not in have:
                con.execute(f'alter table {SCHEMA}.{table}_runs add column "{col}" {types[col]}')
    finally:
        con.unregister("_publish_frame")


def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"""
        create table if not exists {SCHEMA}.runs (
            run_id varchar primary key,
            generated_at timestamptz,
            published_at timestamptz,
            origin timestamptz,
            horizon varchar,
            freq varchar,
            model_version varchar,
            series integer,
            config varchar,
            notes varchar
        )
        """
    )
    con.execute(f"create table if not exists {SCHEMA}.current_run (run_id varchar, published_at timestamptz)")


def publish(
    con: duckdb.DuckDBPyConnection,
    run: Mapping,
    tables: Mapping[str, pd.DataFrame],
    keep: int = KEEP_RUNS,
) -> str:
    """Publish one run. ``run``: run_id, generated_at, origin, horizon, freq, model_version,
    series, config (dict), notes (dict). ``tables``: frames for the names in ``TABLES``
    (without ``run_id``; it is added). Returns the run id."""
    run_id = str(run["run_id"])
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown forecast tables {sorted(unknown)}; expected {list(TABLES)}")
    con.execute("begin transaction")
    try:
        _ensure_schema(con)
        for name in TABLES:
            frame = tables.get(name)
            if frame is None:
                frame = pd.DataFrame()
            frame = frame.copy()
            frame.insert(0, "run_id", run_id)
            if len(frame.columns) > 1:
                _ensure_table(con, name, frame)
                con.execute(f"delete from {SCHEMA}.{name}_runs where run_id = ?", [run_id])
                if len(frame):
                    con.register("_publish_frame", frame)
                    con.execute(f"insert into {SCHEMA}.{name}_runs by name select * from _publish_frame")
                    con.unregister("_publish_frame")
            exists = con.execute(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                [SCHEMA, f"{name}_runs"],
            ).fetchone()[0]
            if not exists:
                con.execute(f"create table {SCHEMA}.{name}_runs (run_id varchar)")
            con.execute(
                f"""
                create or replace view {SCHEMA}.{name} as
                select t.* from {SCHEMA}.{name}_runs as t
                inner join {SCHEMA}.current_run as c on c.run_id = t.run_id
                """
            )
        con.execute(f"delete from {SCHEMA}.runs where run_id = ?", [run_id])
        con.execute(
            f"insert into {SCHEMA}.runs values (?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                pd.Timestamp(run["generated_at"]).to_pydatetime(),
                pd.Timestamp(run["origin"]).to_pydatetime(),
                str(run.get("horizon", "")),
                str(run.get("freq", "")),
                str(run.get("model_version", "")),
                int(run.get("series", 0)),
                json.dumps(run.get("config", {}), default=str, sort_keys=True),
                json.dumps(run.get("notes", {}), default=str, sort_keys=True, ensure_ascii=False),
            ],
        )
        con.execute(f"delete from {SCHEMA}.current_run")
        con.execute(f"insert into {SCHEMA}.current_run values (?, now())", [run_id])
        keep_ids = [
            r[0]
            for r in con.execute(
                f"select run_id from {SCHEMA}.runs order by published_at desc, run_id desc limit ?",
                [max(keep, 1)],
            ).fetchall()
        ]
        if run_id not in keep_ids:
            keep_ids.append(run_id)
        placeholders = ", ".join("?" for _ in keep_ids)
        for name in TABLES:
            con.execute(f"delete from {SCHEMA}.{name}_runs where run_id not in ({placeholders})", keep_ids)
        con.execute(f"delete from {SCHEMA}.runs where run_id not in ({placeholders})", keep_ids)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return run_id


def publish_to(
    path: Path | str, run: Mapping, tables: Mapping[str, pd.DataFrame], keep: int = KEEP_RUNS
) -> str:
    """Open the warehouse file, publish, close (the single-writer step)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        return publish(con, run, tables, keep)
    finally:
        con.close()


def current_run(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        row = con.execute(f"select run_id from {SCHEMA}.current_run").fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None
