"""### cs_forecast: volume forecasts, backtest and staffing tables

Daily (`CSW_FORECAST_SCHEDULE`, cron in Asia/Shanghai; default 01:30, after the night's
last transform) and on demand (trigger with param `as_of`). The run's data interval end is
its `as_of`: the forecast uses the marts' history up to then, so a re-run repeats exactly.

- `forecast` (pool `duckdb_writer`): Prophet per channel on 30-minute intervals with the
  baselines and the rolling-origin backtest, then Erlang staffing; publishes
  `forecast.forecast_volume`, `forecast.forecast_backtest`,
  `forecast.staffing_recommendations` and `forecast.staffing_actions` as one versioned
  publish, and updates the `csw_forecast` Asset (which triggers `cs_publish`).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from csw import pipeline

FORECAST = pipeline.asset("csw_forecast")
CRON = pipeline.schedule_from_env("CSW_FORECAST_SCHEDULE", pipeline.DEFAULT_FORECAST_SCHEDULE)


@dag(
    dag_id="cs_forecast",
    schedule=CronDataIntervalTimetable(CRON, timezone="Asia/Shanghai") if CRON else None,
    start_date=pipeline.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=pipeline.default_args(),
    **pipeline.DAG_CALLBACKS,
    tags=[*pipeline.TAGS, "forecast", "staffing"],
    doc_md=__doc__,
    params={
        "as_of": Param(None, type=["null", "string"], description="Forecast as of this time (ISO 8601).")
    },
)
def cs_forecast():
    @task(pool=pipeline.WRITER_POOL, outlets=[FORECAST])
    def forecast(outlet_events=None) -> dict:
        from airflow.sdk import get_current_context

        as_of = pipeline.as_of_from_context(get_current_context())
        summary = pipeline.forecast(as_of)
        outlet_events[FORECAST].extra = {"as_of": as_of, "status": summary.get("status")}
        return summary

    forecast()


cs_forecast()
