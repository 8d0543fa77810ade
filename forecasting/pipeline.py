"""Forecast every series of a history: Prophet fits in parallel processes, the backtest,
the published model per series.

One task per Prophet fit (the final fit of every series and one per backtest origin), run
by a ``ProcessPoolExecutor`` (``workers`` processes, default: the CPU count). Baselines,
scores and the choice of model are cheap numpy and run in the calling process.

A series whose Prophet fit fails (too little history, a numerical failure) is not
dropped: the error is logged and kept in the series' ``note``, and the series is published
with the median of the last four weeks.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.backtest import (
    DEFAULT_BACKTEST,
    REPORTED,
    BacktestConfig,
    OriginScore,
    baselines,
    candidates,
    choose,
    horizon_steps,
    plan_origins,
    score_origin,
    summarise,
    usual_volume,
)
from forecasting.series import SeriesKey, series_keys, validate_history
from forecasting.volume import (
    ForecastConfig,
    SeriesData,
    floor_origin,
    prepare_series,
    prophet_forecast,
    quiet_prophet,
)

log = logging.getLogger(__name__)


@dataclass
class SeriesResult:
    key: SeriesKey
    data: SeriesData
    forecast: pd.DataFrame  # one row per interval of the horizon
    backtest: pd.DataFrame  # one row per model and role (see forecasting.backtest)
    chosen: str
    scores: list[OriginScore] = field(default_factory=list)
    model_json: str | None = None
    note: str = ""


@dataclass
class ForecastRun:
    run_id: str
    generated_at: pd.Timestamp
    origin: pd.Timestamp
    config: ForecastConfig
    backtest_config: BacktestConfig | None
    model_version: str
    series: dict[SeriesKey, SeriesResult]

    @property
    def volume(self) -> pd.DataFrame:
        frames = [r.forecast for r in self.series.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def backtest(self) -> pd.DataFrame:
        frames = []
        hours = None
        if self.backtest_config is not None:
            hb = horizon_steps(self.backtest_config, self.config.horizon_td, self.config.step)
            hours = hb * self.config.step / pd.Timedelta("1h")
        for r in self.series.values():
            if len(r.backtest):
                b = r.backtest
                frames.append(
                    b.assign(
                        channel=r.key.channel,
                        medium=r.key.medium,
                        is_published=b["model"] == r.chosen,
                        first_origin=r.data.utc(b["first_origin"].to_numpy()),
                        last_origin=r.data.utc(b["last_origin"].to_numpy()),
                        horizon_hours=hours,
                    )
                )
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        first = ["channel", "medium", "model", "role", "is_published"]
        return out[first + [c for c in out.columns if c not in first]]


def new_run_id(now: pd.Timestamp) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _task(payload: tuple) -> tuple[str, object]:
    data, end, h, config, uncertainty, keep_model = payload
    try:
        return "ok", prophet_forecast(data, end, h, config, uncertainty=uncertainty, keep_model=keep_model)
    except Exception as exc:  # noqa: BLE001 - recorded in the series' note by the caller
        return "error", f"{type(exc).__name__}: {exc}"


def _run_tasks(tasks: list[tuple], workers: int | None, progress: Callable[[int, int], None] | None) -> list:
    workers = workers or os.cpu_count() or 1
    out: list = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        quiet_prophet()
        for i, t in enumerate(tasks):
            out[i] = _task(t)
            if progress:
                progress(i + 1, len(tasks))
        return out
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=quiet_prophet
    ) as pool:
        futures = [pool.submit(_task, t) for t in tasks]
        for i, fut in enumerate(futures):
            out[i] = fut.result()
            if progress:
                progress(i + 1, len(tasks))
    return out


def _event_labels(data: SeriesData, idx: np.ndarray, seen: list[str]) -> np.ndarray:
    local = data.local(idx)
    days = local.normalize()
    ev = data.calendar.events
    ev = ev[ev["date"].isin(days.unique())]
    if ev.empty:
        return np.full(len(idx), "", dtype=object)
    labels = {}
    for day, rows in ev.groupby("date"):
        parts = []
        for r in rows.itertuples():
            text = r.label
            if r.feature not in seen:
                if r.kind == "promotion" and pd.notna(r.planned_uplift):
                    text += f" (not in history: planned ×{r.planned_uplift:g})"
                else:
                    text += " (not in history)"
            parts.append(text)
        labels[day] = ", ".join(sorted(set(parts)))
    return np.asarray(pd.Series(days).map(labels).fillna("").to_numpy(), dtype=object)


def _frame(
    data: SeriesData,
    idx: np.ndarray,
    published: np.ndarray,
    prophet: dict,
    model: str,
    usual: np.ndarray,
) -> pd.DataFrame:
    local = data.local(idx)
    p = prophet["yhat"] if prophet else np.full(len(idx), np.nan)
    lo = prophet["yhat_lower"] if prophet else np.full(len(idx), np.nan)
    hi = prophet["yhat_upper"] if prophet else np.full(len(idx), np.nan)
    # a baseline's band: Prophet's band moved onto the published value
    lower = np.where(model == "prophet", lo, np.clip(published - (p - lo), 0, None))
    upper = np.where(model == "prophet", hi, published + (hi - p))
    open_ = prophet["open"] if prophet else published > 0
    planned = prophet["planned"] if prophet else np.ones(len(idx))
    seen = prophet["seen_features"] if prophet else []
    return pd.DataFrame(
        {
            "channel": data.key.channel,
            "medium": data.key.medium,
            "interval_start": data.utc(idx),
            "local_date": local.date,
            "local_time": local.strftime("%H:%M"),
            "is_open": np.asarray(open_, bool),
            "yhat": published,
            "yhat_lower": np.where(open_, lower, 0.0),
            "yhat_upper": np.where(open_, upper, 0.0),
            "yhat_prophet": p,
            "usual": np.where(open_, np.nan_to_num(usual, nan=0.0), 0.0),
            "model": model,
            "events": _event_labels(data, idx, seen),
            "planned_uplift": planned,
            "horizon_step": np.arange(1, len(idx) + 1),
        }
    )


def run_forecasts(
    history: pd.DataFrame,
    config: ForecastConfig | None = None,
    origin: pd.Timestamp | None = None,
    backtest: BacktestConfig | None = DEFAULT_BACKTEST,
    workers: int | None = None,
    calendar: pd.DataFrame | None = None,
    keep_models: bool = False,
    progress: Callable[[int, int], None] | None = None,
    now: pd.Timestamp | None = None,
) -> ForecastRun:
    """Forecast every series of ``history`` (a VolumeSeries frame) from ``origin`` (UTC;
    default: the end of the latest interval) over ``config.horizon``."""
    config = config or ForecastConfig()
    history = validate_history(history, config.freq, config.tz)
    step = config.step
    if origin is None:
        origin = history["interval_start"].max() + step
    origin = floor_origin(origin, config)
    history = history[history["interval_start"] < origin]
    now = now or pd.Timestamp.now(tz="UTC")
    hf = config.horizon_steps
    period = config.period

    datas: dict[SeriesKey, SeriesData] = {}
    plans: dict[SeriesKey, tuple[list[int], list[int], int]] = {}
    tasks: list[tuple] = []
    owners: list[tuple[SeriesKey, str, int]] = []
    for key in series_keys(history):
        data = prepare_series(history, key, config, origin, calendar)
        datas[key] = data
        tasks.append((data, data.n, hf, config, True, keep_models))
        owners.append((key, "final", data.n))
        if backtest is not None:
            hb = horizon_steps(backtest, config.horizon_td, step)
            sel, held = plan_origins(data.n, hb, step, backtest)
            plans[key] = (sel, held, hb)
            for role, ends in (("selection", sel), ("held_out", held)):
                for e in ends:
                    tasks.append((data, e, hb, config, False, False))
                    owners.append((key, role, e))
    results = _run_tasks(tasks, workers, progress)

    by_key: dict[SeriesKey, dict] = {k: {"final": None, "scores": [], "errors": []} for k in datas}
    for (key, role, end), (status, value) in zip(owners, results, strict=True):
        slot = by_key[key]
        if status == "error":
            slot["errors"].append(f"{role} origin {datas[key].utc([end])[0]:%Y-%m-%d %H:%M}: {value}")
            log.warning("%s: Prophet failed (%s at %s): %s", key.label, role, end, value)
            continue
        if role == "final":
            slot["final"] = value
        else:
            hb = plans[key][2]
            slot["scores"].append(
                score_origin(datas[key], end, hb, period, value["yhat"], value["open"], role)
            )

    series: dict[SeriesKey, SeriesResult] = {}
    for key, data in datas.items():
        slot = by_key[key]
        scores = sorted(slot["scores"], key=lambda s: s.origin)
        summary = summarise(scores, REPORTED) if scores else pd.DataFrame()
        final = slot["final"]
        idx = np.arange(data.n, data.n + hf)
        usual = usual_volume(data, data.n, hf, period)
        if final is None:
            chosen = "median_4w"
            raw = baselines(data.y, data.n, hf, period)["median_4w"]
            published = np.nan_to_num(raw, nan=0.0)
        else:
            chosen = choose(summary) if len(summary) else "prophet"
            models = candidates(data, data.n, hf, period, final["yhat"], final["open"])
            published = models[chosen]
        note = "; ".join(slot["errors"])
        if backtest is not None and not scores:
            note = "; ".join(filter(None, [note, "history too short for a backtest"]))
        frame = _frame(data, idx, published, final, chosen, usual)
        series[key] = SeriesResult(
            key=key,
            data=data,
            forecast=frame,
            backtest=summary,
            chosen=chosen,
            scores=scores,
            model_json=(final or {}).get("model_json"),
            note=note,
        )
    return ForecastRun(
        run_id=new_run_id(now),
        generated_at=now,
        origin=origin,
        config=config,
        backtest_config=backtest,
        model_version=config.version(),
        series=series,
    )
