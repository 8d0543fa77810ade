"""### cs_transform: dbt build, then the mart gate

Scheduled on the `csw_raw` Asset: it starts when `cs_ingest` has loaded new batches, and
computes everything that depends on "now" as of the ingest interval end carried by the
Asset event (`as_of`; several pending events collapse into one run as of the latest).

- `dbt_build` (pool `duckdb_writer`): `dbt build` as ONE child process (staging,
  intermediate, marts, snapshots and dbt tests), the single writer of the DuckDB file;
- `mart_gate` (pool `duckdb_writer`): the Great Expectations mart suites on the marts
  (read-only connection). Only when it passes is the `csw_marts` Asset updated, which
  triggers `cs_publish`; a failed gate also makes `csw publish` refuse to publish.

Param `as_of` (ISO time) runs it on demand for a given time.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from csw import pipeline

RAW = pipeline.asset("csw_raw")
MARTS = pipeline.asset("csw_marts")


@dag(
    dag_id="cs_transform",
    schedule=[RAW],
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "transform", "dbt"],
    doc_md=__doc__,
    params={"as_of": Param(None, type=["null", "string"], description="Compute as of this time (ISO 8601).")},
)
def cs_transform():
    @task
    def resolve_as_of() -> str:
        from airflow.sdk import get_current_context

        return pipeline.as_of_from_context(get_current_context())

    @task(pool=pipeline.WRITER_POOL)
    def dbt_build(as_of: str) -> dict:
        return pipeline.transform(as_of)

    @task(pool=pipeline.WRITER_POOL, outlets=[MARTS])
    def mart_gate(as_of: str, outlet_events=None) -> dict:
        verdict = pipeline.mart_gate(as_of)
        outlet_events[MARTS].extra = {"as_of": as_of, "gate": verdict["status"]}
        return verdict

    as_of = resolve_as_of()
    dbt_build(as_of) >> mart_gate(as_of)


cs_transform()
