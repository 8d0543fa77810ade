"""### cs_alerts: interval alert rules and pipeline monitoring after each transform

Scheduled on the `csw_marts` Asset: it starts when `cs_transform` has built the marts and
their gate passed, and evaluates as of the `as_of` the Asset event carries.

- `evaluate` (pool `duckdb_writer`, read-only warehouse connection): channel FRT, SLA
  attainment, volume against forecast or the usual level, topic-share jumps (each with a
  root-cause hint), stream freshness and `ops.events` (fallback, quarantine, retention);
  notifies through the configured WeCom / DingTalk robots and SMTP with de-duplication and
  cool-down, records everything in the alert store (`<data>/alerting/alerts.sqlite`), and
  copies the VIP customer keys the minute rules use. A failing notifier never fails the task.

Rules: `alerting/rules.yaml` (or `CSW_ALERT_RULES`). Param `as_of` runs it on demand.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from csw import pipeline

MARTS = pipeline.asset("csw_marts")


@dag(
    dag_id="cs_alerts",
    schedule=[MARTS],
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "alerts"],
    doc_md=__doc__,
    params={
        "as_of": Param(None, type=["null", "string"], description="Evaluate as of this time (ISO 8601).")
    },
)
def cs_alerts():
    @task(pool=pipeline.WRITER_POOL)
    def evaluate() -> dict:
        from airflow.sdk import get_current_context

        from alerting.jobs import run_interval

        return run_interval(pipeline.as_of_from_context(get_current_context()))

    evaluate()


cs_alerts()
