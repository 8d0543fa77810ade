"""`csw publish`: the read-only serving snapshot for BI users (DESIGN §10).

The pipeline's warehouse (`data/warehouse/warehouse.duckdb`) has one writer at a time, and
a DuckDB reader in another process would block it. BI tools therefore never open it: they
open the serving snapshot `data/serving/warehouse.duckdb`, which holds

- `marts.*`     every dbt mart (tables), with the dbt descriptions as table/column comments;
- `forecast.*`  the forecast, backtest and staffing tables of the current forecast run
                (the warehouse's views over every kept run, materialised), and `forecast.runs`;
- `bi.*`        documented views for the common questions (SLA per channel and day, ...);
- `meta.*`      `meta.snapshot` (as_of, mart gate verdict), `meta.tables`, `meta.columns`:
                a data dictionary any SQL tool can query;

plus one Parquet file per table in `data/serving/parquet/`.

The snapshot is built in a temporary file next to the target and renamed into place
(`os.replace`, atomic on one file system). A BI user holding the old file open keeps
reading the old, consistent data (the old inode lives until they close it); a new
connection sees the new data. Nobody ever sees a half-built snapshot, and a reader never
stops a publish. The snapshot content is a pure function of the warehouse: publishing
twice gives the same tables.

The file is written with DuckDB's default storage compatibility (readable by DuckDB 1.x,
which DBeaver, Metabase's and Superset's drivers bundle). See `docs/bi.md`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import typer

from csw.settings import data_dir, dbt_target_dir, warehouse_path

log = logging.getLogger("csw.publish")

PUBLISHED_SCHEMAS = ("marts", "forecast")

# Descriptions of tables dbt does not document (forecasting writes these itself).
TABLE_DOCS = {
    "forecast.forecast_volume": "Forecast contact volume per channel and 30-minute interval, with lower/upper bounds and the model used.",
    "forecast.forecast_backtest": "Backtest of the volume forecasts on rolling origins: MAE, sMAPE, MASE against the weekly seasonal naive, per model and channel.",
    "forecast.staffing_recommendations": "Required agents and headcount per channel and interval from Erlang staffing on the forecast, with forecast service level, ASA and occupancy.",
    "forecast.staffing_actions": "Plain-language staffing actions for managers (which channel, when, how many agents to add or remove).",
}


@dataclass(frozen=True)
class View:
    name: str
    description: str
    sql: str
    requires: tuple[str, ...]


# Views for BI users: built only when the tables they read are in the snapshot. Shares
# are 0..1 (as in the marts), NPS is -100..100.
VIEWS = (
    View(
        "bi.sla_by_channel",
        "Per channel and medium over the whole snapshot: conversations, queued for a human, answered, "
        "abandoned, share of SLA-judged conversations within target, FRT mean seconds, abandonment rate.",
        """
        select
            channel,
            medium,
            sum(conversations)::bigint as conversations,
            sum(queued)::bigint as queued,
            sum(answered)::bigint as answered,
            sum(abandoned)::bigint as abandoned,
            sum(sla_met) / nullif(sum(sla_judged), 0) as sla_share,
            sum(frt_mean_s * answered) / nullif(sum(case when frt_mean_s is not null then answered end), 0) as frt_mean_s,
            sum(abandoned) / nullif(sum(queued), 0) as abandon_rate,
            min(local_date) as first_day,
            max(local_date) as last_day
        from marts.mart_sla_daily
        group by 1, 2
        """,
        ("marts.mart_sla_daily",),
    ),
    View(
        "bi.satisfaction_by_channel",
        "Per channel: rated conversations, response rate, CSAT (share of ratings 4-5), mean CSAT score, "
        "NPS (% promoters 9-10 minus % detractors 0-6, where the platform asks it).",
        """
        select
            channel,
            sum(rated)::bigint as rated,
            sum(rated) / nullif(sum(eligible), 0) as response_rate,
            sum(csat_satisfied) / nullif(sum(rated), 0) as csat_share,
            sum(csat_sum) / nullif(sum(rated), 0) as csat_mean,
            sum(nps_responses)::bigint as nps_responses,
            100.0 * (sum(nps_promoters) - sum(nps_detractors)) / nullif(sum(nps_responses), 0) as nps
        from marts.mart_satisfaction
        group by 1
        """,
        ("marts.mart_satisfaction",),
    ),
    View(
        "bi.satisfaction_by_wait",
        "How satisfaction falls as waiting grows: CSAT share and mean score per medium and first-response-time band.",
        """
        select
            medium,
            frt_band,
            min(frt_band_order) as band_order,
            sum(rated)::bigint as rated,
            sum(csat_satisfied) / nullif(sum(rated), 0) as csat_share,
            sum(csat_sum) / nullif(sum(rated), 0) as csat_mean
        from marts.mart_satisfaction
        group by 1, 2
        """,
        ("marts.mart_satisfaction",),
    ),
    View(
        "bi.customers_by_tier",
        "Customers per value tier: count, repeat complainers, mean lifetime value and orders in the last 365 days.",
        """
        select
            value_tier,
            count(*) as customers,
            count(*) filter (where is_repeat_complainer) as repeat_complainers,
            avg(lifetime_value) as lifetime_value_mean,
            avg(orders_365d) as orders_365d_mean
        from marts.dim_customers
        group by 1
        """,
        ("marts.dim_customers",),
    ),
    View(
        "bi.staffing_actions",
        "The published staffing actions, as the latest forecast run wrote them (forecast.staffing_actions).",
        "select * from forecast.staffing_actions",
        ("forecast.staffing_actions",),
    ),
)


class PublishRefused(Exception):
    """The snapshot was not published (no warehouse, failed mart gate, ...)."""


@dataclass
class PublishResult:
    path: str
    as_of: str | None
    tables: dict[str, int] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    skipped_views: dict[str, str] = field(default_factory=dict)
    parquet_dir: str = ""
    gate: str = "unknown"
    seconds: float = 0.0


def serving_dir() -> Path:
    return Path(os.environ.get("CSW_SERVING_DIR", data_dir() / "serving")).resolve()


def snapshot_path() -> Path:
    return serving_dir() / "warehouse.duckdb"


def _dbt_docs() -> dict[str, dict]:
    """`schema.table` -> {"description", "columns": {name: description}} from dbt's manifest."""
    manifest = dbt_target_dir() / "manifest.json"
    try:
        nodes = json.loads(manifest.read_text()).get("nodes", {})
    except (OSError, ValueError):
        return {}
    out = {}
    for node in nodes.values():
        if node.get("resource_type") not in ("model", "snapshot", "seed"):
            continue
        name = f"{node.get('schema')}.{node.get('alias') or node.get('name')}"
        out[name] = {
            "description": node.get("description") or "",
            "columns": {c: (v.get("description") or "") for c, v in (node.get("columns") or {}).items()},
        }
    return out


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _gate_status(require_gate: bool) -> str:
    from csw.pipeline import last_gate

    record = last_gate()
    if record is None:
        return "not run"
    if record["status"] == "failed" and require_gate:
        raise PublishRefused(
            f"the mart gate failed as of {record['as_of']}: {record.get('detail', '')[:500]}. "
            "The previous snapshot stays in place; fix the marts and re-run the transform (and gate)."
        )
    return f"{record['status']} (as of {record['as_of']})"


def publish_snapshot(
    as_of=None,
    *,
    warehouse: Path | None = None,
    out_dir: Path | None = None,
    require_gate: bool = True,
) -> PublishResult:
    """Build the snapshot from `warehouse` in a temp file and rename it into place.

    Refuses (PublishRefused) when there is no warehouse or the last mart gate failed."""
    import duckdb

    started = time.monotonic()
    src = Path(warehouse or warehouse_path())
    out_dir = Path(out_dir or serving_dir())
    if not src.exists():
        raise PublishRefused(f"no warehouse at {src}: run ingest and transform first")
    gate = _gate_status(require_gate)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "parquet").mkdir(exist_ok=True)
    token = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp = out_dir / f".warehouse.duckdb.{token}.tmp"
    target = out_dir / "warehouse.duckdb"
    docs = _dbt_docs()
    result = PublishResult(path=str(target), as_of=None, gate=gate, parquet_dir=str(out_dir / "parquet"))
    parquet_tmp: list[tuple[Path, Path]] = []
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("set timezone = 'UTC'")
            con.execute(f"attach {_sql_str(str(src))} as src (read_only)")
            tables = con.execute(
                """
                select table_schema, table_name from information_schema.tables
                where table_catalog = 'src' and table_schema in (select unnest(?))
                  and table_name not like '%\\_runs' escape '\\' and table_name <> 'current_run'
                order by 1, 2
                """,
                [list(PUBLISHED_SCHEMAS)],
            ).fetchall()
            if not tables:
                raise PublishRefused(f"{src} has no tables in {PUBLISHED_SCHEMAS}: run the transform first")
            for schema, table in tables:
                name = f"{schema}.{table}"
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(f'create table "{schema}"."{table}" as select * from src."{schema}"."{table}"')
                result.tables[name] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
                doc = docs.get(name, {})
                description = doc.get("description") or TABLE_DOCS.get(name, "")
                if description:
                    con.execute(f'comment on table "{schema}"."{table}" is {_sql_str(description)}')
                for column, text in (doc.get("columns") or {}).items():
                    if text:
                        # a documented column the model no longer has is skipped
                        with contextlib.suppress(duckdb.Error):
                            con.execute(
                                f'comment on column "{schema}"."{table}"."{column}" is {_sql_str(text)}'
                            )
            con.execute("detach src")
            result.as_of = _as_of(con, as_of)
            con.execute("create schema if not exists bi")
            for view in VIEWS:
                missing = [t for t in view.requires if t not in result.tables]
                if missing:
                    result.skipped_views[view.name] = f"needs {', '.join(missing)}"
                    continue
                try:
                    con.execute(f"create view {view.name} as {view.sql}")
                    con.execute(f"comment on view {view.name} is {_sql_str(view.description)}")
                    result.views.append(view.name)
                except duckdb.Error as exc:
                    result.skipped_views[view.name] = str(exc).splitlines()[0]
            _write_meta(con, result, docs)
            for name in result.tables:
                final = out_dir / "parquet" / f"{name}.parquet"
                part = out_dir / "parquet" / f".{name}.parquet.{token}.tmp"
                schema, table = name.split(".", 1)
                con.execute(f'copy "{schema}"."{table}" to {_sql_str(str(part))} (format parquet)')
                parquet_tmp.append((part, final))
            con.execute("checkpoint")
        finally:
            con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        for part, final in parquet_tmp:
            os.replace(part, final)
    finally:
        for leftover in [tmp, tmp.with_name(tmp.name + ".wal")] + [p for p, _ in parquet_tmp]:
            leftover.unlink(missing_ok=True)
    result.seconds = round(time.monotonic() - started, 1)
    log.info(
        "published %s tables to %s as of %s in %s s", len(result.tables), target, result.as_of, result.seconds
    )
    return result


def _as_of(con, as_of) -> str | None:
    if as_of is not None:
        from csw.pipeline import iso

        return iso(as_of)
    try:
        value = con.execute("select max(as_of) from marts.fct_conversations").fetchone()[0]
    except Exception:
        return None
    if value is None:
        return None
    from csw.pipeline import iso

    return iso(value)


def _write_meta(con, result: PublishResult, docs: dict) -> None:
    con.execute("create schema if not exists meta")
    con.execute(
        "create table meta.snapshot as select ?::timestamptz as as_of, ? as mart_gate, ? as duckdb_version, ? as note",
        [
            result.as_of,
            result.gate,
            con.execute("select version()").fetchone()[0],
            "Read-only snapshot of the customer-service warehouse; rebuilt after each transform and forecast.",
        ],
    )
    con.execute(
        """
        create table meta.tables as
        select table_schema, table_name, lower(table_type) as kind, comment as description
        from (
            select schema_name as table_schema, table_name, 'table' as table_type, comment
            from duckdb_tables() where database_name = current_database()
            union all
            select schema_name, view_name, 'view', comment
            from duckdb_views() where database_name = current_database() and not internal
        )
        where table_schema in ('marts', 'forecast', 'bi')
        order by 1, 2
        """
    )
    con.execute(
        """
        create table meta.columns as
        select schema_name as table_schema, table_name, column_name, data_type, comment as description,
               column_index
        from duckdb_columns()
        where database_name = current_database() and schema_name in ('marts', 'forecast', 'bi')
        order by 1, 2, column_index
        """
    )
    comment = "Data dictionary: every published table and view with its description."
    con.execute(f"comment on table meta.tables is {_sql_str(comment)}")
    con.execute(
        f"comment on table meta.columns is {_sql_str('Every published column with its type and description.')}"
    )


# -- command line ---------------------------------------------------------------------------


def publish_command(
    as_of: str = typer.Option(None, help="Record this as_of (default: the marts' as_of)."),
    skip_gate: bool = typer.Option(
        False, "--skip-gate", help="Publish even if the last mart gate failed (not for production)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Rebuild the read-only serving snapshot (data/serving/warehouse.duckdb + Parquet) for BI tools."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    try:
        result = publish_snapshot(as_of=as_of, require_gate=not skip_gate)
    except PublishRefused as exc:
        console.print(f"[red]not published:[/] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(asdict(result), default=str))
        return
    table = Table(title=f"Serving snapshot as of {result.as_of} (mart gate: {result.gate})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(name, f"{rows:,}")
    for name in result.views:
        table.add_row(name, "view")
    console.print(table)
    console.print(f"{result.path} (+ Parquet in {result.parquet_dir}) in {result.seconds} s")
