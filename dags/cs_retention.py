"""### cs_retention: delete landed batches and raw rows past their retention

Daily at 03:00 Asia/Shanghai (`CSW_RETENTION_SCHEDULE`; `manual` switches it off). The
run's data interval end is its `as_of`, so a re-run deletes exactly the same things; param
`as_of` applies retention as of another time.

- `apply_retention` (pool `duckdb_writer`: it deletes raw rows and reads `raw._batches`):
  per stream (`csw/privacy/retention.yaml`, `CSW_RETENTION_CONFIG`), raw rows older than
  `raw_days` go; landed batch files older than `landing_days` go once loaded, except each
  stream's newest batch (extraction resumes from it). The same as
  `csw privacy retain --as-of ...`. Marts keep only aggregates and salted keys and are
  not aged. See docs/privacy.md.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from csw import pipeline

CRON = pipeline.schedule_from_env("CSW_RETENTION_SCHEDULE", "0 3 * * *")


@dag(
    dag_id="cs_retention",
    schedule=CronDataIntervalTimetable(CRON, timezone="Asia/Shanghai") if CRON else None,
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    tags=[*pipeline.TAGS, "privacy", "retention"],
    doc_md=__doc__,
    **pipeline.DAG_CALLBACKS,
    params={
        "as_of": Param(
            None, type=["null", "string"], description="Apply retention as of this time (ISO 8601)."
        )
    },
)
def cs_retention():
    @task(pool=pipeline.WRITER_POOL)
    def apply_retention() -> dict:
        from dataclasses import asdict

        from airflow.sdk import get_current_context

        from csw.privacy.retention import apply_retention as apply

        return asdict(apply(pipeline.as_of_from_context(get_current_context())))

    apply_retention()


cs_retention()
