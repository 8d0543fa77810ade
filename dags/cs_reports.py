"""### cs_reports: daily and weekly manager reports

Daily at 08:00 Asia/Shanghai (`CSW_REPORT_SCHEDULE`); the weekly report is added on
Mondays. Each report is one self-contained HTML file under `<data>/reports/` (charts
inline: FRT and SLA by channel, volume vs forecast, CSAT by FRT band, staffing gap, and a
"what to do" section from `forecast.staffing_actions` and the root-cause hints), mailed
through the SMTP notifiers of the rule file when `CSW_REPORT_MAIL` is `1`.

- `render` (pool `duckdb_writer`, read-only warehouse connection), mapped over the kinds
  due for the run's data interval end (`daily`, plus `weekly` on Mondays).

Param `as_of` and `kinds` render on demand.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from csw import pipeline

CRON = pipeline.schedule_from_env("CSW_REPORT_SCHEDULE", "0 8 * * *")


@dag(
    dag_id="cs_reports",
    schedule=CronDataIntervalTimetable(CRON, timezone="Asia/Shanghai") if CRON else None,
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "reports"],
    doc_md=__doc__,
    params={
        "as_of": Param(None, type=["null", "string"], description="Report as of this time (ISO 8601)."),
        "kinds": Param(
            None, type=["null", "array"], description="daily and/or weekly (default: what is due)."
        ),
    },
)
def cs_reports():
    @task
    def plan(params=None) -> list[dict]:
        import datetime as dt

        from airflow.sdk import get_current_context

        as_of = pipeline.as_of_from_context(get_current_context())
        kinds = params.get("kinds")
        if not kinds:
            local = pipeline.utc(as_of).astimezone(dt.timezone(dt.timedelta(hours=8)))
            kinds = ["daily", "weekly"] if local.weekday() == 0 else ["daily"]
        return [{"kind": k, "as_of": as_of} for k in kinds]

    @task(pool=pipeline.WRITER_POOL)
    def render(job: dict) -> dict:
        import os

        from alerting.reports import build_report, mail_report

        report = build_report(job["kind"], job["as_of"])
        mailed = mail_report(report) if os.environ.get("CSW_REPORT_MAIL") == "1" else 0
        return {"kind": report.kind, "path": str(report.path), "charts": report.charts, "mailed": mailed}

    render.expand(job=plan())


cs_reports()
