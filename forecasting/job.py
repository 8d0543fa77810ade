"""The forecast job: history from the warehouse → forecasts and backtest → staffing →
actions → one atomic publish. ``csw forecast`` and the forecast DAG call
``forecast_warehouse``.

The warehouse is opened read-only to read the history, closed during the (long) fitting,
and opened for writing only for the publish, so the job holds the single-writer slot for
a moment.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from csw.settings import data_dir, warehouse_path
from forecasting.actions import staffing_actions
from forecasting.backtest import DEFAULT_BACKTEST, BacktestConfig
from forecasting.pipeline import ForecastRun, run_forecasts
from forecasting.publish import publish_to
from forecasting.series import (
    SeriesKey,
    SeriesParams,
    estimate_concurrency,
    estimate_params,
    latest_interval,
    load_history,
)
from forecasting.staffing import StaffingConfig, recommend
from forecasting.volume import ForecastConfig, floor_origin

log = logging.getLogger(__name__)

HISTORY_WINDOW = "91D"  # 13 weeks: enough for weekly patterns and the backtest, fast to fit


@dataclass
class StaffedRun:
    run: ForecastRun
    params: dict[SeriesKey, SeriesParams]
    tables: dict[str, pd.DataFrame]
    run_id: str
    path: Path | None = None


def build_tables(
    run: ForecastRun,
    params: Mapping[SeriesKey, SeriesParams],
    staffing: StaffingConfig | None = None,
    measured_concurrency: Mapping[str, int] | None = None,
    roster: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The four published tables of a run (without ``run_id``; ``publish`` adds it)."""
    stamp = {"model_version": run.model_version, "generated_at": run.generated_at}
    volume = run.volume.assign(**stamp)
    interval_s = run.config.step.total_seconds()
    rec = recommend(run.volume, params, staffing, measured_concurrency, roster, interval_s)
    rec = rec.assign(**stamp) if len(rec) else rec
    actions = staffing_actions(rec, interval_minutes=interval_s / 60) if len(rec) else staffing_actions(rec)
    backtest = run.backtest
    backtest = backtest.assign(**stamp) if len(backtest) else backtest
    return {
        "forecast_volume": volume,
        "forecast_backtest": backtest,
        "staffing_recommendations": rec,
        "staffing_actions": actions,
    }


def run_meta(run: ForecastRun, staffing: StaffingConfig | None) -> dict:
    return {
        "run_id": run.run_id,
        "generated_at": run.generated_at,
        "origin": run.origin,
        "horizon": run.config.horizon,
        "freq": run.config.freq,
        "model_version": run.model_version,
        "series": len(run.series),
        "config": {
            "forecast": dataclasses.asdict(run.config),
            "backtest": dataclasses.asdict(run.backtest_config) if run.backtest_config else None,
            "staffing": dataclasses.asdict(staffing) if staffing else None,
        },
        "notes": {k.label: r.note for k, r in run.series.items() if r.note},
    }


def save_models(run: ForecastRun, root: Path | None = None) -> Path | None:
    """Write each series' fitted Prophet model (JSON) under ``<data>/forecast/models/<run_id>/``."""
    models = {k: r.model_json for k, r in run.series.items() if r.model_json}
    if not models:
        return None
    folder = (root or data_dir() / "forecast" / "models") / run.run_id
    folder.mkdir(parents=True, exist_ok=True)
    for key, text in models.items():
        tmp = folder / f".{key.channel}__{key.medium}.json.tmp"
        tmp.write_text(text)
        tmp.rename(folder / f"{key.channel}__{key.medium}.json")
    return folder


def forecast_warehouse(
    path: Path | str | None = None,
    as_of: pd.Timestamp | None = None,
    config: ForecastConfig | None = None,
    staffing: StaffingConfig | None = None,
    backtest: BacktestConfig | None = DEFAULT_BACKTEST,
    roster: pd.DataFrame | None = None,
    workers: int | None = None,
    window: str = HISTORY_WINDOW,
    keep_models: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> StaffedRun:
    """Forecast every series in the warehouse from ``as_of`` (default: the end of the
    data), staff it and publish the run."""
    path = Path(path or warehouse_path())
    config = config or ForecastConfig()
    origin = floor_origin(as_of, config) if as_of is not None else None
    con = duckdb.connect(str(path), read_only=True)
    try:
        end = origin
        if end is None:
            end = latest_interval(con)
            end = end + config.step if end is not None else None
        since = end - pd.Timedelta(window) if end is not None else None
        history = load_history(con, since=since, until=origin)
        concurrency = estimate_concurrency(con)
    finally:
        con.close()
    params = estimate_params(history)
    run = run_forecasts(
        history,
        config,
        origin=origin,
        backtest=backtest,
        workers=workers,
        keep_models=keep_models,
        progress=progress,
    )
    tables = build_tables(run, params, staffing, concurrency, roster)
    if keep_models:
        save_models(run)
    run_id = publish_to(path, run_meta(run, staffing), tables)
    log.info("published forecast run %s (%d series) to %s", run_id, len(run.series), path)
    return StaffedRun(run, params, tables, run_id, path)
