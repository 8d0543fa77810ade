"""### cs_realtime: the minute rules (queue, unanswered sessions, VIP waiting)

Every minute (`CSW_REALTIME_SCHEDULE`, cron; `manual` turns it off). Reads the newest
landed batches of the real-time message streams and the platforms' live-state endpoints
(never the warehouse, so it never waits for the writer; no writer pool) and keeps its
state in the alert store (`<data>/alerting/alerts.sqlite`).

- `evaluate`: queue above N per platform, a session unanswered for 3 minutes, a VIP
  waiting beyond 30 s; one message per incident and one when it clears. Platforms that
  cannot be real time (Taobao D+1, console-only Douyin and Pinduoduo, e-mail Zendesk)
  are recorded as such in the run's notes.

The clock: the run's data interval end; with the sandbox (`CSW_SANDBOX_URL`) the
sandbox's own clock, which its live mode may run faster than wall time.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from csw import pipeline

CRON = pipeline.schedule_from_env("CSW_REALTIME_SCHEDULE", "* * * * *")


@dag(
    dag_id="cs_realtime",
    schedule=CronDataIntervalTimetable(CRON, timezone="UTC") if CRON else None,
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(minutes=5),
    default_args={**pipeline.default_args(), "retries": 2, "retry_delay": dt.timedelta(seconds=10)},
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "alerts", "realtime"],
    doc_md=__doc__,
    params={"now": Param(None, type=["null", "string"], description="Evaluate at this time (ISO 8601).")},
)
def cs_realtime():
    @task(execution_timeout=dt.timedelta(minutes=2))
    def evaluate(data_interval_end=None, params=None) -> dict:
        import os

        from alerting.jobs import run_realtime

        now = params.get("now") or (
            None if os.environ.get("CSW_SANDBOX_URL") else pipeline.iso(data_interval_end)
        )
        return run_realtime(now)

    evaluate()


cs_realtime()
