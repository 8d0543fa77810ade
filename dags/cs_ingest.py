"""### cs_ingest: extract every platform, land batches, load DuckDB `raw`

Every 15 minutes (`CSW_INGEST_SCHEDULE`, a cron expression; `manual` turns the clock off).
Each run owns its data interval (`CronDataIntervalTimetable`): the extract tasks read only
that interval (plus each stream's look-back for late updates) and the loader stamps the
`csw://warehouse/raw` Asset event with `as_of` = the interval end, which the Asset-triggered
`cs_transform` computes against.

- `plan`: one `platform.stream` per configured platform stream;
- `extract` (mapped, parallel, network-bound): lands immutable batches under
  `data/landing/`; resumes from the newest landed manifest, never from DuckDB; falls back to
  the admin-console scraper when the API is down; a first install reads history older than
  the API keeps from the console export. Re-running an interval does not fetch again
  (param `refetch` forces it);
- `load` (pool `duckdb_writer`, 1 slot): validates and loads every pending batch exactly
  once, even when some extractions failed (their platforms catch up next run);
- `done`: fails the run when any extraction failed, after the others were loaded.

Backfill a past range: `airflow backfill create --dag-id cs_ingest --from-date ... --to-date ...`.
A first install: trigger with conf `{"history_from": "2026-10-18T00:00:00+08:00"}`.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from csw import pipeline

RAW = pipeline.asset("csw_raw")
CRON = pipeline.schedule_from_env("CSW_INGEST_SCHEDULE", pipeline.DEFAULT_INGEST_SCHEDULE)


@dag(
    dag_id="cs_ingest",
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC") if CRON else None,
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "ingest"],
    doc_md=__doc__,
    params={
        "history_from": Param(
            None,
            type=["null", "string"],
            description="First install or re-load: also land history from this time (ISO 8601).",
        ),
        "platforms": Param(
            None, type=["null", "array"], description="Only these platforms (default: every configured one)."
        ),
        "refetch": Param(False, type="boolean", description="Fetch again even if this interval was landed."),
    },
)
def cs_ingest():
    @task
    def plan(params=None) -> list[str]:
        return pipeline.ingest_plan(params.get("platforms"))

    @task(map_index_template="{{ key }}")
    def extract(key: str, data_interval_start=None, data_interval_end=None, params=None) -> dict:
        from airflow.sdk import get_current_context

        get_current_context()["key"] = key
        return pipeline.extract_stream(
            key,
            data_interval_start,
            data_interval_end,
            history_from=params.get("history_from"),
            refetch=bool(params.get("refetch")),
        )

    @task(pool=pipeline.WRITER_POOL, outlets=[RAW], trigger_rule="all_done_min_one_success")
    def load(data_interval_end=None, outlet_events=None) -> dict:
        summary = pipeline.load_landed(data_interval_end)
        outlet_events[RAW].extra = {"as_of": summary["as_of"], "rows": summary["rows"]}
        return summary

    @task
    def done() -> None:
        """Reached only when every extraction succeeded."""

    extracted = extract.expand(key=plan())
    loaded = load()
    extracted >> loaded
    [extracted, loaded] >> done()


cs_ingest()
