"""What the Airflow DAGs do, as plain functions (the DAG files in `dags/` only wire them).

Every function takes the run's interval or `as_of` explicitly and never reads the clock,
so a re-run of the same interval repeats exactly (DESIGN §7, CONVENTIONS "Airflow"):

- `extract_stream` lands one platform stream for the data interval `[start, end]` (plus the
  stream's look-back) and records that it did; re-running the interval returns the record
  instead of calling the platform again (`refetch=True` forces a new pull, which the
  loader de-duplicates anyway);
- `load_landed`, `transform`, `mart_gate`, `forecast` and `publish` write the DuckDB
  warehouse (or read it): the DAGs run them in the one-slot pool `duckdb_writer`, because
  DuckDB allows one writing process and a reader blocks a writer;
- `as_of_from_context` turns an Airflow run into its `as_of`: an explicit param, the
  `as_of` carried by the Asset events that triggered the run, or the data interval end.

This module is imported when DAG files are parsed: keep its top level light (no pandas,
DuckDB or connector imports here).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from csw.settings import data_dir, warehouse_path

log = logging.getLogger("csw.pipeline")

WRITER_POOL = "duckdb_writer"
"""One-slot Airflow pool for every task that opens the DuckDB warehouse."""

OWNER = "cs-data-eng"
TAGS = ["cs-warehouse"]

# The Assets that chain the DAGs: name -> URI.
ASSETS = {
    "csw_raw": "csw://warehouse/raw",  # cs_ingest.load -> cs_transform
    "csw_marts": "csw://warehouse/marts",  # cs_transform (gate passed) -> cs_publish
    "csw_forecast": "csw://warehouse/forecast",  # cs_forecast -> cs_publish
    "csw_snapshot": "csw://serving/warehouse",  # cs_publish -> BI users, reports
}

DEFAULT_INGEST_SCHEDULE = "*/15 * * * *"
DEFAULT_FORECAST_SCHEDULE = "30 1 * * *"  # Asia/Shanghai: after the night's last transform
FIRST_SYNC_DAYS = 7


class PipelineError(Exception):
    """A pipeline step cannot run; the message says why and what to do."""


class MartGateFailed(PipelineError):
    """The mart quality gate failed: nothing downstream may publish these marts."""


# -- schedules and defaults ---------------------------------------------------------------


def schedule_from_env(var: str, default: str) -> str | None:
    """A DAG's cron expression from the environment (`manual`/`none` = no time schedule).

    Read at parse time from `os.environ` only (no Airflow Variable, no network)."""
    value = os.environ.get(var, default).strip()
    return None if value.lower() in ("", "none", "manual", "off") else value


def default_args() -> dict[str, Any]:
    return {
        "owner": OWNER,
        "retries": int(os.environ.get("CSW_TASK_RETRIES", "2")),
        "retry_delay": dt.timedelta(seconds=int(os.environ.get("CSW_RETRY_DELAY_S", "60"))),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=15),
    }


START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def on_dag_failure(context) -> None:
    """Every DAG's `on_failure_callback`: a failed run becomes a `dag_failure` alert
    (alerting's pipeline monitoring). Imported lazily: `alerting.jobs` pulls in pandas,
    which DAG parsing must not."""
    from alerting.jobs import dag_failure_callback

    dag_failure_callback(context)


def on_dag_success(context) -> None:
    """Every DAG's `on_success_callback`: resolves that DAG's open failure incident."""
    from alerting.jobs import dag_success_callback

    dag_success_callback(context)


DAG_CALLBACKS = {"on_failure_callback": on_dag_failure, "on_success_callback": on_dag_success}
"""Spread into every `@dag(...)`: one place decides how runs report their outcome."""


def asset(name: str):
    """The `airflow.sdk.Asset` called `name` (one definition shared by every DAG file)."""
    from airflow.sdk import Asset

    return Asset(name=name, uri=ASSETS[name])


# -- time helpers -------------------------------------------------------------------------


def utc(value) -> dt.datetime:
    """Any datetime-like (datetime, pendulum, ISO string) as an aware UTC datetime."""
    if value is None:
        raise PipelineError("a time is required here (got None)")
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        value = dt.datetime.fromisoformat(text)
    if not isinstance(value, dt.datetime):
        raise PipelineError(f"not a time: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)


def iso(value) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_of_from_context(context: Mapping[str, Any]) -> str:
    """The `as_of` of an Airflow run (ISO UTC).

    1. the `as_of` param, when a user set one (on-demand runs);
    2. the latest `as_of` carried by the Asset events that triggered the run (an
       Asset-triggered transform computes as of the ingest interval it consumes);
    3. the data interval end (scheduled and manual runs), else the logical date.
    """
    params = context.get("params") or {}
    if params.get("as_of"):
        return iso(params["as_of"])
    events = context.get("triggering_asset_events") or {}
    stamps = []
    for asset in events:
        for event in events[asset]:
            extra = getattr(event, "extra", None) or {}
            if extra.get("as_of"):
                stamps.append(utc(extra["as_of"]))
    if stamps:
        return iso(max(stamps))
    for key in ("data_interval_end", "logical_date"):
        if context.get(key) is not None:
            return iso(context[key])
    raise PipelineError(
        "this run has no data interval, no triggering Asset event with an as_of and no "
        "`as_of` param: trigger it with conf {'as_of': '2026-11-21T16:00:00Z'}"
    )


# -- ingest -------------------------------------------------------------------------------


def _connector_configs() -> dict:
    """Connector configs; in the sandbox every account points at `CSW_SANDBOX_URL`."""
    from connectors.core.config import load_config, sandbox_overrides
    from connectors.core.http import install_redaction

    install_redaction()
    url = os.environ.get("CSW_SANDBOX_URL")
    return load_config(overrides=sandbox_overrides(url) if url else None)


def ingest_plan(platforms: list[str] | None = None) -> list[str]:
    """`platform.stream` for every configured platform's streams (one mapped task each),
    interleaved across platforms: the streams of one account run one at a time
    (`platform_lock`), so neighbours in the plan should be different platforms."""
    from connectors.platforms import available, connector_class

    configs = _connector_configs()
    chosen = [p for p in available() if p in configs and (not platforms or p in platforms)]
    unknown = sorted(set(platforms or []) - set(chosen))
    if unknown:
        raise PipelineError(
            f"platform(s) {unknown} have no connector or no configuration; configured: {sorted(configs)}"
        )
    queues = [[f"{p}.{s}" for s in connector_class(p).streams] for p in chosen]
    plan = []
    for i in range(max((len(q) for q in queues), default=0)):
        plan += [q[i] for q in queues if i < len(q)]
    return plan


@contextlib.contextmanager
def platform_lock(platform: str):
    """One extraction at a time per platform account (across task processes).

    Platforms tie a token to the account and revoke the previous one when a new one is
    issued (Sobot), or refuse concurrent calls (WeCom errcode 45033); the streams of one
    platform therefore take turns, while different platforms run in parallel."""
    import fcntl

    path = data_dir() / "pipeline" / "locks" / f"{platform}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        started = time.monotonic()
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited %.1f s for the %s account", waited, platform)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _marker(platform: str, stream: str, start: dt.datetime, end: dt.datetime) -> Path:
    name = f"{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}.json"
    return data_dir() / "pipeline" / "extracted" / platform / stream / name


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, default=str, indent=1))
    os.replace(tmp, path)


def extract_stream(
    key: str,
    interval_start,
    interval_end,
    *,
    history_from=None,
    first_sync_days: int = FIRST_SYNC_DAYS,
    refetch: bool = False,
) -> dict:
    """Land one stream (`platform.stream`) for the data interval; returns a summary.

    - time windows: `[start − look-back, end]` (late updates are re-read);
    - server cursors: resume from the newest landed cursor; the first sync starts at the
      interval start;
    - a first sync (nothing landed yet) reaches back `first_sync_days`, or to
      `history_from` when given (a first install, or a re-load of history);
    - history older than the API keeps (WeCom: 3 days) comes once from the admin console
      export (the scraper), as a real first install does.
    """

    started = time.monotonic()
    platform, _, stream_name = key.partition(".")
    start, end = utc(interval_start), utc(interval_end)
    marker = _marker(platform, stream_name, start, end)
    if marker.exists() and not refetch:
        done = json.loads(marker.read_text())
        log.info(
            "%s: interval %s..%s already landed (%s rows); not fetched again", key, start, end, done["rows"]
        )
        return {**done, "skipped": True}

    with platform_lock(platform):
        summary = _extract_locked(key, platform, stream_name, start, end, history_from, first_sync_days)
    summary["seconds"] = round(time.monotonic() - started, 1)
    _write_json_atomic(marker, summary)
    return {**summary, "skipped": False}


def _extract_locked(key, platform, stream_name, start, end, history_from, first_sync_days) -> dict:
    from connectors.core.landing import latest_manifest
    from connectors.core.runner import extract
    from connectors.platforms import connector_class

    configs = _connector_configs()
    if platform not in configs:
        raise PipelineError(
            f"no connector configuration for {platform}: set it in connectors.yaml, as "
            f"AIRFLOW_CONN_CSW_{platform.upper()}, or point CSW_SANDBOX_URL at the sandbox"
        )
    connector = connector_class(platform)(configs[platform])
    if stream_name not in connector.streams:
        raise PipelineError(f"{platform} has no stream {stream_name!r}; streams: {sorted(connector.streams)}")
    stream = connector.streams[stream_name]
    latest = latest_manifest(platform, stream_name)

    since = start - stream.lookback if stream.cursor == "time_window" else start
    if history_from:
        since = min(since, utc(history_from))
    if latest is None:
        since = min(since, end - dt.timedelta(days=first_sync_days))

    backfilled = 0
    if (
        latest is None
        and stream.retention is not None
        and since < end - stream.retention
        and connector.scraper() is not None
    ):
        from connectors.scrapers import backfill

        older = backfill(platform, stream_name, since, end - stream.retention, config=configs[platform])
        backfilled = older.rows
        log.info(
            "%s: %s rows older than the API's %s read from the console", key, older.rows, stream.retention
        )

    if stream.cursor == "server_cursor":
        # resume from the landed cursor; only a first sync starts at a time
        arg_since = since if (latest is None and not backfilled) else None
    else:
        arg_since = since
    result = extract(connector, stream, until=end, since=arg_since)
    summary = {
        "key": key,
        "platform": platform,
        "stream": stream_name,
        "interval": [iso(start), iso(end)],
        "since": iso(since),
        "rows": result.rows + backfilled,
        "console_backfill_rows": backfilled,
        "batches": result.batches,
        "source": result.source,
        "events": [e.get("kind") for e in result.events],
    }
    return summary


def load_landed(as_of) -> dict:
    """Validate and load every landed, unloaded batch into DuckDB `raw` (the single writer).

    A batch the gate rejects moves whole to `data/quarantine/` (the others load). The same
    path as `csw ingest`: the loader has the gate validate every pending batch up front
    (one GX run per stream) and asks it per batch only when something failed."""
    from dataclasses import asdict

    from connectors.core.loader import Loader
    from connectors.platforms import all_streams
    from expectations.batch_gate import BatchGate

    started = time.monotonic()
    gate = BatchGate(as_of=utc(as_of))
    with Loader(warehouse_path(), all_streams(), validator=gate) as loader:
        result = loader.load_pending()
    out = asdict(result)
    out.update(as_of=iso(as_of), seconds=round(time.monotonic() - started, 1))
    if gate is not None:
        verdict = gate.finish()
        out["batch_gate"] = {"success": verdict.success, "summary": verdict.summary}
        log.info("%s", verdict.summary)
    else:
        out["batch_gate"] = None
    return out


# -- transform, gate, forecast, publish ---------------------------------------------------


def transform(as_of) -> dict:
    """`dbt build` as one process, as of `as_of`."""
    from dataclasses import asdict

    from csw.transform import transform as run_transform

    return asdict(run_transform(iso(as_of)))


def gate_record_path() -> Path:
    return data_dir() / "pipeline" / "mart_gate.json"


def _gate_passed(result) -> tuple[bool, str]:
    if result is None:
        return True, "passed"
    for attr in ("success", "passed", "ok"):
        if isinstance(result, Mapping) and attr in result:
            return bool(result[attr]), json.dumps(result, default=str)[:2000]
        if hasattr(result, attr):
            return bool(getattr(result, attr)), str(result)[:2000]
    if isinstance(result, bool):
        return result, "passed" if result else "failed"
    return True, str(result)[:2000]


def mart_gate(as_of) -> dict:
    """Run the mart quality gate (`expectations.mart_gate.run_mart_gate`) and record its
    verdict for `publish`; raises `MartGateFailed` when the marts must not be published."""
    as_of = iso(as_of)
    try:
        from expectations.mart_gate import run_mart_gate
    except ImportError as exc:
        record = {"as_of": as_of, "status": "unavailable", "detail": f"no mart gate installed ({exc})"}
        _write_json_atomic(gate_record_path(), record)
        log.warning("mart gate not installed: marts are published unchecked (%s)", exc)
        return record
    try:
        ok, detail = _gate_passed(run_mart_gate(as_of))
    except Exception as exc:  # the gate's own failure is a failed gate, recorded
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    record = {"as_of": as_of, "status": "passed" if ok else "failed", "detail": detail}
    _write_json_atomic(gate_record_path(), record)
    if not ok:
        raise MartGateFailed(
            f"mart gate failed as of {as_of}: {detail[:1000]}. The snapshot keeps the last good "
            "marts; fix the data or model, then re-run cs_transform."
        )
    return record


def last_gate() -> dict | None:
    path = gate_record_path()
    return json.loads(path.read_text()) if path.exists() else None


def forecast(as_of) -> dict:
    """Forecasts, backtest and staffing tables from `as_of` (`forecasting.job`), published
    to the warehouse's `forecast` schema as one versioned run."""
    try:
        from forecasting.job import forecast_warehouse
    except ImportError as exc:
        log.warning("forecasting is not installed: forecast skipped (%s)", exc)
        return {"as_of": iso(as_of), "status": "unavailable", "detail": str(exc)}
    import pandas as pd

    started = time.monotonic()
    staffed = forecast_warehouse(as_of=pd.Timestamp(utc(as_of)))
    return {
        "as_of": iso(as_of),
        "status": "published",
        "run_id": str(staffed.run_id),
        "series": len(staffed.run.series),
        "tables": {name: len(frame) for name, frame in staffed.tables.items()},
        "seconds": round(time.monotonic() - started, 1),
    }


def publish(as_of) -> dict:
    """Rebuild the read-only serving snapshot for BI users. The snapshot records the
    marts' own `as_of` (a forecast-triggered publish republishes the same marts)."""
    from dataclasses import asdict

    from csw.publish import publish_snapshot

    result = json.loads(json.dumps(asdict(publish_snapshot()), default=str))
    result["run_as_of"] = iso(as_of)
    return result
