"""### cs_publish: rebuild the read-only serving snapshot for BI users

Scheduled on `csw_marts | csw_forecast`: after each transform whose mart gate passed and
after each forecast. Rebuilds `data/serving/warehouse.duckdb` (marts, forecast and staffing
tables, documented `bi.*` views, the `meta.*` data dictionary) in a temp file and renames
it into place, plus one Parquet file per table. BI tools keep reading the old file until
they reconnect; they never block this DAG. Refuses to publish when the last mart gate
failed (the previous snapshot stays).

- `publish` (pool `duckdb_writer`: it reads the warehouse, and a reader blocks a writer);
  updates the `csw_snapshot` Asset.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from csw import pipeline

MARTS = pipeline.asset("csw_marts")
FORECAST = pipeline.asset("csw_forecast")
SNAPSHOT = pipeline.asset("csw_snapshot")


@dag(
    dag_id="cs_publish",
    schedule=(MARTS | FORECAST),
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "publish", "bi"],
    doc_md=__doc__,
    params={"as_of": Param(None, type=["null", "string"], description="Record this as_of (ISO 8601).")},
)
def cs_publish():
    @task(pool=pipeline.WRITER_POOL, outlets=[SNAPSHOT])
    def publish(outlet_events=None) -> dict:
        from airflow.sdk import get_current_context

        as_of = pipeline.as_of_from_context(get_current_context())
        result = pipeline.publish(as_of)
        outlet_events[SNAPSHOT].extra = {"as_of": as_of, "path": result["path"]}
        return result

    publish()


cs_publish()
