"""The main job on the embedded default (`make demo`): simulate a company, serve its
platforms on 127.0.0.1, and run the pipeline for real through Airflow.

1. simulate the sandbox company (all platforms, 5 weeks, ~50k conversations, promotions);
2. serve its platform APIs and admin consoles on 127.0.0.1;
3. start Airflow (api-server, scheduler, dag-processor; LocalExecutor, SQLite metadata
   under `data/airflow`);
4. trigger `cs_ingest` for one data interval: the sandbox's history up to its clock
   (a first install); the scheduler runs the mapped extract tasks in parallel and the
   loader in the one-slot writer pool;
5. `cs_transform` starts from the `csw_raw` Asset (dbt build, then the mart gate);
6. `cs_forecast` is triggered on demand for the same `as_of`;
7. `cs_publish` starts from the `csw_marts`/`csw_forecast` Assets and rebuilds the
   read-only snapshot;
8. a summary read from the snapshot.

The sandbox's clock is fixed (the end of the simulated five weeks), so the demo triggers
its intervals through the REST API instead of waiting for wall-clock ticks (the DAGs'
cron schedules are switched to manual for this Airflow instance only). Re-running the
demo re-runs the same interval: nothing is fetched or loaded twice.
"""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
from rich.console import Console
from rich.table import Table

from csw.settings import data_dir, warehouse_path
from sandbox.cli import default_dataset_dir, summary_table
from sandbox.config import SimConfig
from sandbox.simulation import SimData, simulate

console = Console()

DAG_IDS = ("cs_ingest", "cs_transform", "cs_forecast", "cs_publish")


class DemoFailed(Exception):
    """A pipeline run failed; the summary is printed, the exit code is 1."""


def _dataset(cfg: SimConfig) -> SimData:
    """Reuse the data set on disk when it was made by the same config."""
    out = default_dataset_dir()
    if (out / "meta.json").exists():
        data = SimData.read(out)
        if (
            data.config.get("seed") == cfg.seed
            and data.config.get("start") == cfg.start.isoformat()
            and data.config.get("days") == cfg.days
            and data.config.get("conversations_per_day") == cfg.conversations_per_day
        ):
            return data
    data = simulate(cfg)
    data.write(out)
    return data


def served_table(server) -> Table:
    from sandbox.server.app import API_PLATFORMS, CONSOLE_ONLY

    table = Table(title=f"Sandbox platforms on {server.url} (clock {server.state.now():%Y-%m-%d %H:%M} UTC)")
    table.add_column("platform")
    table.add_column("API")
    table.add_column("admin console")
    served = set(server.state.data.config["channels"])
    for p in API_PLATFORMS + CONSOLE_ONLY:
        if p in served:
            api = f"{server.url}/{p}/" if p in API_PLATFORMS else "none (console only)"
            table.add_row(p, api, f"{server.url}/console/{p}/login")
    return table


def _server_log():
    """The sandbox servers' own log (uvicorn: errors the platforms answered with) goes to a
    file, not between the demo's tables."""
    import logging

    path = data_dir() / "sandbox" / "server.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    return path


def _iso(ts) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _watch(api, dag_id: str, run_id: str, label: str, timeout_s: float = 1200) -> dict:
    """Wait for a run, showing its task states; returns the finished run."""
    deadline = time.monotonic() + timeout_s
    with console.status(f"{label} ...") as status:
        while True:
            run = api.dag_run(dag_id, run_id)
            tis = api.task_instances(dag_id, run_id)
            counts: dict[str, int] = {}
            for ti in tis:
                counts[ti["state"] or "none"] = counts.get(ti["state"] or "none", 0) + 1
            detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            status.update(f"{label}: {run['state']} ({detail})")
            if run["state"] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"{dag_id} run {run_id} not finished after {timeout_s:.0f} s")
            time.sleep(2)
    failed = [
        f"{ti['task_id']}{'[' + (ti.get('rendered_map_index') or str(ti['map_index'])) + ']' if ti['map_index'] >= 0 else ''}"
        for ti in tis
        if ti["state"] in ("failed", "upstream_failed")
    ]
    took = ""
    if run.get("start_date") and run.get("end_date"):
        took = (
            f" in {(pd.Timestamp(run['end_date']) - pd.Timestamp(run['start_date'])).total_seconds():.0f} s"
        )
    colour = "green" if run["state"] == "success" else "red"
    console.print(f"{label}: [{colour}]{run['state']}[/]{took} (run {run_id})")
    if failed:
        console.print(f"  [red]failed tasks:[/] {', '.join(failed)}")
    return run


def _next_run(api, dag_id: str, known: set[str], label: str, timeout_s: float = 300) -> str:
    with console.status(f"waiting for the Asset event to start {dag_id} ..."):
        run = api.wait_new_run(dag_id, known, timeout_s=timeout_s)
    console.print(f"{label}: started by the scheduler ({run['run_type']}, run {run['dag_run_id']})")
    return run["dag_run_id"]


def run_demo() -> None:
    import signal

    from csw.airflow_env import AirflowStack, airflow_env, free_port
    from sandbox.server.app import RunningServer
    from sandbox.server.state import SandboxState

    def _terminate(signum, frame):  # `kill` stops Airflow and the servers like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    cfg = SimConfig()
    console.rule("1. Simulate the sandbox company (5 weeks, all platforms, promotions)")
    with console.status("simulating ..."):
        data = _dataset(cfg)
    console.print(summary_table(data))

    console.rule("2. Serve the platforms on 127.0.0.1")
    state = SandboxState(data)
    problems: list[str] = []
    server = RunningServer(state)
    server_log = _server_log()  # after uvicorn configured its loggers
    with server:
        console.print(served_table(server))
        as_of = state.now()
        history_from = pd.Timestamp(cfg.start).tz_localize("Asia/Shanghai").tz_convert("UTC")

        console.rule("3. Start Airflow (LocalExecutor, SQLite metadata under data/airflow)")
        port = free_port()
        env = airflow_env(port, manual_schedules=True, extra={"CSW_SANDBOX_URL": server.url})
        with console.status("starting api-server, scheduler and dag-processor ..."):
            stack = AirflowStack(env, port).start()
        try:
            api = stack.api
            api.wait_for_dags(DAG_IDS)
            for dag_id in DAG_IDS:
                api.unpause(dag_id)
            from csw.airflow_env import admin_password

            console.print(
                f"Airflow UI {stack.url} (login admin / {admin_password()}), "
                f"logs in {stack.home / 'logs'}; ready in {time.monotonic() - started:.0f} s"
            )
            _pipeline(api, as_of, history_from, problems)
        finally:
            with console.status("stopping Airflow ..."):
                stack.stop()

    console.rule("Summary")
    summarize(as_of)
    console.print(f"Finished in {time.monotonic() - started:.0f} s. Sandbox server log: {server_log}")
    if problems:
        for p in problems:
            console.print(f"[red]{p}[/]")
        raise DemoFailed("; ".join(problems))


def _pipeline(api, as_of: pd.Timestamp, history_from: pd.Timestamp, problems: list[str]) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    transforms = {r["dag_run_id"] for r in api.dag_runs("cs_transform")}
    try:
        alerts = {r["dag_run_id"] for r in api.dag_runs("cs_alerts")}
    except RuntimeError:  # the alerting package is not installed
        alerts = set()

    console.rule(
        f"4. cs_ingest: every platform and stream, {history_from:%Y-%m-%d} .. {as_of:%Y-%m-%d %H:%M} UTC"
    )
    # a second demo re-runs (clears) the run that owns this interval: nothing is fetched or loaded twice
    ingest_id = api.run_interval(
        "cs_ingest", run_id=f"demo_ingest_{stamp}", interval=(_iso(history_from), _iso(as_of))
    )
    run = _watch(api, "cs_ingest", ingest_id, "cs_ingest")
    if run["state"] != "success":
        problems.append(f"cs_ingest run {ingest_id} failed (see the Airflow UI or data/airflow/logs)")
    try:
        loaded = api.xcom("cs_ingest", ingest_id, "load")
    except RuntimeError:
        loaded = None
    if isinstance(loaded, dict):
        gate = (loaded.get("batch_gate") or {}).get("summary", "batch gate off")
        console.print(
            f"Loaded {loaded.get('rows', 0):,} new rows in {loaded.get('batches', 0)} batches "
            f"({loaded.get('duplicates', 0):,} duplicates skipped, "
            f"{len(loaded.get('quarantined_batches') or [])} batches quarantined). {gate.splitlines()[0]}"
        )

    console.rule("5. cs_transform: dbt build + mart gate (Asset-triggered)")
    transform_id = _next_run(api, "cs_transform", transforms, "cs_transform")
    run = _watch(api, "cs_transform", transform_id, "cs_transform")
    if run["state"] != "success":
        problems.append(f"cs_transform run {transform_id} failed (dbt build or the mart gate)")

    console.rule("6. cs_forecast: forecasts, backtest, staffing (on demand)")
    publishes = {r["dag_run_id"] for r in api.dag_runs("cs_publish")}
    forecast_id = api.run_interval(
        "cs_forecast",
        run_id=f"demo_forecast_{stamp}",
        interval=(_iso(as_of - pd.Timedelta(days=1)), _iso(as_of)),
    )
    run = _watch(api, "cs_forecast", forecast_id, "cs_forecast")
    if run["state"] != "success":
        problems.append(f"cs_forecast run {forecast_id} failed")

    console.rule("7. cs_publish: the read-only snapshot for BI (Asset-triggered)")
    _wait_publishes(api, publishes, run, problems)

    present = {d["dag_id"] for d in api._call("GET", "/dags", params={"limit": 100})["dags"]}
    if {"cs_alerts", "cs_reports"} & present:
        console.rule("8. cs_alerts (Asset-triggered) and cs_reports (on demand)")
    if "cs_alerts" in present:
        for r in api.dag_runs("cs_alerts"):
            if r["dag_run_id"] not in alerts:
                done = _watch(api, "cs_alerts", r["dag_run_id"], "cs_alerts")
                if done["state"] != "success":
                    problems.append(f"cs_alerts run {r['dag_run_id']} failed")
    if "cs_reports" in present:
        reports_id = api.run_interval(
            "cs_reports",
            run_id=f"demo_reports_{stamp}",
            interval=(_iso(as_of - pd.Timedelta(days=1)), _iso(as_of)),
            conf={"as_of": _iso(as_of), "kinds": ["daily", "weekly"]},
        )
        if _watch(api, "cs_reports", reports_id, "cs_reports")["state"] != "success":
            problems.append(f"cs_reports run {reports_id} failed")


def _wait_publishes(api, known: set[str], forecast_run: dict, problems: list[str]) -> None:
    """Publish runs after the marts (gate passed) and after the forecast: follow every new
    run until one has consumed the forecast's Asset event (or no forecast was published)."""
    forecast_ok = forecast_run["state"] == "success"
    deadline = time.monotonic() + 600
    grace = time.monotonic() + 60
    seen: dict[str, dict] = {}
    while True:
        new = [r for r in api.dag_runs("cs_publish") if r["dag_run_id"] not in known | set(seen)]
        for r in new:
            seen[r["dag_run_id"]] = done = _watch(api, "cs_publish", r["dag_run_id"], "cs_publish")
            if done["state"] != "success":
                problems.append(f"cs_publish run {r['dag_run_id']} failed (refused or error)")
        after_forecast = any(
            e.get("source_dag_id") == "cs_forecast" and e.get("source_run_id") == forecast_run["dag_run_id"]
            for run_id in seen
            for e in api.upstream_events("cs_publish", run_id)
        )
        if seen and not new and (after_forecast or not forecast_ok):
            return
        if not seen and time.monotonic() > grace:
            problems.append("no cs_publish run started (mart gate failed and no forecast published?)")
            return
        if time.monotonic() > deadline:
            problems.append("cs_publish did not run after the forecast within 10 minutes")
            return
        time.sleep(2)


# -- the summary --------------------------------------------------------------------------


def _table(title: str, frame: pd.DataFrame, formats: dict[str, str] | None = None) -> Table:
    table = Table(title=title)
    formats = formats or {}
    for col in frame.columns:
        table.add_column(col, justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append("")
            elif col in formats:
                cells.append(format(value, formats[col]))
            elif isinstance(value, float):
                cells.append(f"{value:,.1f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    return table


def _query(con, sql: str) -> pd.DataFrame | None:
    import duckdb

    try:
        return con.execute(sql).df()
    except duckdb.Error:
        return None


def summarize(as_of=None) -> None:
    """Print what the pipeline produced: rows per stream (warehouse, read-only, the pipeline
    has finished), and from the serving snapshot: SLA per channel, CSAT/NPS, value tiers,
    the forecast horizon and the top staffing actions; then where everything is."""
    import duckdb

    from csw.publish import snapshot_path

    wh = warehouse_path()
    if wh.exists():
        con = duckdb.connect(str(wh), read_only=True)
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = 'raw' "
                    "and table_name not like '\\_%' escape '\\' order by 1"
                ).fetchall()
            ]
            per_platform: dict[str, list[str]] = {}
            total = 0
            for t in tables:
                n = con.execute(f'select count(*) from raw."{t}"').fetchone()[0]
                total += n
                platform, _, stream = t.partition("__")
                per_platform.setdefault(platform, []).append(f"{stream} {n:,}")
            table = Table(title=f"Rows per stream in DuckDB raw ({total:,} rows)")
            table.add_column("platform")
            table.add_column("streams")
            for platform, items in per_platform.items():
                table.add_row(platform, ", ".join(items))
            console.print(table)
            quarantined = _query(con, "select count(*) as n from raw._quarantine where released_at is null")
            if quarantined is not None and int(quarantined["n"][0]):
                console.print(f"{int(quarantined['n'][0])} records quarantined (`csw quarantine list`)")
        finally:
            con.close()

    snap = snapshot_path()
    if not snap.exists():
        console.print(f"[red]No serving snapshot at {snap}[/]")
        return
    con = duckdb.connect(str(snap), read_only=True)
    try:
        meta = _query(con, "select as_of, mart_gate from meta.snapshot")
        sla = _query(
            con,
            """
            select s.channel, s.medium, s.conversations, s.answered,
                   100 * s.sla_share as "within SLA %", s.frt_mean_s as "FRT mean s",
                   f.p50 as "FRT p50 s", f.p90 as "FRT p90 s", 100 * s.abandon_rate as "abandoned %"
            from bi.sla_by_channel s
            left join (
                select channel, quantile_cont(frt_s, 0.5) as p50, quantile_cont(frt_s, 0.9) as p90
                from marts.fct_conversations group by 1
            ) f using (channel)
            order by s.conversations desc
            """,
        )
        if sla is not None:
            console.print(_table("Service level per channel (whole period)", sla))
        sat = _query(
            con,
            """
            select channel, rated, 100 * response_rate as "response %", 100 * csat_share as "CSAT %",
                   csat_mean as "mean score", nps_responses as "NPS answers", nps as NPS
            from bi.satisfaction_by_channel order by rated desc
            """,
        )
        if sat is not None:
            console.print(_table("Satisfaction per channel (CSAT 1-5, NPS where asked)", sat))
        tiers = _query(
            con,
            """
            select value_tier as tier, customers, repeat_complainers as "repeat complainers",
                   lifetime_value_mean as "mean lifetime value"
            from bi.customers_by_tier order by "mean lifetime value" desc
            """,
        )
        if tiers is not None:
            console.print(_table("Customer value tiers", tiers))
        else:
            console.print("Value tiers: not in the snapshot (marts.dim_customers not built).")
        horizon = _query(
            con,
            """
            select count(distinct channel) as channels, min(interval_start) as first_interval,
                   max(interval_start) as last_interval, count(*) as intervals
            from forecast.forecast_volume
            """,
        )
        if horizon is not None and len(horizon) and horizon["channels"][0]:
            h = horizon.iloc[0]
            console.print(
                f"Forecast horizon: {h['first_interval']:%Y-%m-%d %H:%M} .. {h['last_interval']:%Y-%m-%d %H:%M} UTC, "
                f"{h['channels']} channels, {h['intervals']:,} series-intervals"
            )
            backtest = _query(
                con,
                """
                select channel, medium, model, mase as MASE, smape as "sMAPE %"
                from forecast.forecast_backtest where is_published and role = 'held_out'
                order by channel
                """,
            )
            if backtest is not None and len(backtest):
                console.print(_table("Backtest of the published models (held-out origins)", backtest))
        else:
            console.print("Forecast: not in the snapshot (cs_forecast did not publish).")
        actions = _query(con, "select sentence from forecast.staffing_actions order by rank limit 5")
        if actions is not None and len(actions):
            console.print("[bold]Top staffing actions[/]")
            for value in actions["sentence"]:
                console.print(f"  {value}")
        if meta is not None and len(meta):
            console.print(f"Snapshot as of {meta['as_of'][0]}, mart gate: {meta['mart_gate'][0]}")
    finally:
        con.close()

    from csw.airflow_env import airflow_home

    docs = data_dir() / "quality" / "data_docs" / "index.html"
    try:
        from expectations.context import docs_index

        docs = docs_index()
    except ImportError:
        pass
    reports = data_dir() / "reports"
    where = Table(title="Where things are", show_header=False)
    where.add_column("what")
    where.add_column("path")
    where.add_row("serving snapshot (BI, read-only)", str(snap))
    where.add_row("Parquet per table", str(snap.parent / "parquet"))
    where.add_row("warehouse (pipeline only)", str(wh))
    where.add_row("Data Docs", str(docs) if docs.exists() else f"{docs} (not built)")
    newest = (
        sorted(reports.glob("**/*.html"), key=lambda p: p.stat().st_mtime)[-2:] if reports.exists() else []
    )
    where.add_row("reports", "\n".join(str(p) for p in newest) or f"{reports} (cs_reports did not run)")
    where.add_row("landing batches", str(data_dir() / "landing"))
    where.add_row("Airflow home (SQLite, logs)", str(airflow_home()))
    where.add_row("BI connection guide", "docs/bi.md")
    console.print(where)
