"""Baselines, rolling-origin backtests and the choice of the published model.

Baselines (weekly, on the same 30-minute grid)
    ``seasonal_naive``  the same interval one week before the origin's week (MASE's reference);
    ``last_week``, ``mean_4w``, ``median_4w``  last week, and the mean and median of the same
    interval over the last four weeks. A baseline cannot know the calendar, so on days
    with a calendar event for the channel (or whose source days had one) these three use
    Prophet's value, which knows the event; ``seasonal_naive`` stays raw.
Combinations
    ``prophet+median_4w`` and ``prophet+mean_4w``: the mean of the two.

Backtest
    Rolling origins one day apart, each forecasting ``H`` = the run's horizon (at least one
    day, at most seven). The latest ``held_out`` origins (4) are held out; the ``selection``
    origins (3) before them end where the held-out ones start, so the two never share a
    scored interval. For every series the model with the lowest MAE on the selection
    origins is published and its held-out score is the published score.
Metrics (open intervals with a known actual only)
    ``MAE``; ``sMAPE`` = mean of 200·|y − f| / (|y| + |f|), in %, 0 where both are 0;
    ``MASE`` = MAE / (MAE of the weekly seasonal naive *in sample*, i.e. on the training
    history of that origin), averaged over origins (Hyndman & Koehler 2006);
    ``rel_mae`` = MAE / MAE of ``seasonal_naive`` on the same intervals.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.volume import SeriesData

BASELINES = ("last_week", "mean_4w", "median_4w")
COMBINATIONS = {"prophet+median_4w": "median_4w", "prophet+mean_4w": "mean_4w"}
CANDIDATES = ("prophet", *BASELINES, *COMBINATIONS)
REFERENCE = "seasonal_naive"
REPORTED = (*CANDIDATES, REFERENCE)


@dataclass(frozen=True)
class BacktestConfig:
    held_out: int = 4
    selection: int = 3
    step: str = "1D"
    min_train: str = "21D"
    min_horizon: str = "1D"
    max_horizon: str = "7D"


DEFAULT_BACKTEST = BacktestConfig()


def horizon_steps(config: BacktestConfig, horizon: pd.Timedelta, step: pd.Timedelta) -> int:
    h = min(max(horizon, pd.Timedelta(config.min_horizon)), pd.Timedelta(config.max_horizon))
    return int(np.ceil(h / step))


def plan_origins(n: int, h: int, step: pd.Timedelta, config: BacktestConfig) -> tuple[list[int], list[int]]:
    """(selection, held-out) origin positions for a series of ``n`` positions."""
    s = int(pd.Timedelta(config.step) / step)
    min_train = int(pd.Timedelta(config.min_train) / step)
    held = [n - h - k * s for k in range(config.held_out)]
    held = [e for e in held if e >= min_train]
    if not held:
        return [], []
    first = min(held)
    sel = [first - h - k * s for k in range(config.selection)]
    sel = [e for e in sel if e >= min_train]
    return sorted(sel), sorted(held)


# ------------------------------------------------------------------------- baselines


def source_positions(end: int, h: int, period: int, weeks: int) -> np.ndarray:
    """Positions of the same interval 1..``weeks`` weeks back, never at or after ``end``."""
    j = np.arange(h)
    k0 = j // period + 1
    return (end + j)[:, None] - (k0[:, None] + np.arange(weeks)[None, :]) * period


def baselines(y: np.ndarray, end: int, h: int, period: int, weeks: int = 4) -> dict[str, np.ndarray]:
    """Raw weekly baselines for positions ``end .. end + h`` from ``y[:end]``."""
    src = source_positions(end, h, period, weeks)
    vals = np.where(src >= 0, y[np.clip(src, 0, None)], np.nan)
    vals = np.where(src < end, vals, np.nan)
    with _quiet():
        mean = np.nanmean(vals, axis=1)
        median = np.nanmedian(vals, axis=1)
    first = np.full(h, np.nan)
    for k in range(weeks - 1, -1, -1):  # the most recent known week
        first = np.where(np.isnan(vals[:, k]), first, vals[:, k])
    return {"seasonal_naive": vals[:, 0], "last_week": first, "mean_4w": mean, "median_4w": median}


@contextmanager
def _quiet():
    """All-NaN slices are expected (gaps); their mean is NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def candidates(
    data: SeriesData, end: int, h: int, period: int, prophet: np.ndarray, open_: np.ndarray
) -> dict[str, np.ndarray]:
    """Every reported model for positions ``end .. end + h`` (0 where closed)."""
    raw = baselines(data.y, end, h, period)
    idx = np.arange(end, end + h)
    event = data.calendar.is_event_day(data.local(idx))
    src = source_positions(end, h, period, 4)
    src_event = data.calendar.is_event_day(data.local(np.clip(src.ravel(), 0, None))).reshape(src.shape)
    touched = event | src_event[:, 0]
    touched_4w = event | src_event.any(axis=1)
    out = {"prophet": prophet, REFERENCE: np.nan_to_num(raw[REFERENCE], nan=0.0)}
    for name, mask in (("last_week", touched), ("mean_4w", touched_4w), ("median_4w", touched_4w)):
        base = np.where(np.isnan(raw[name]), prophet, raw[name])
        out[name] = np.where(mask, prophet, base)
    for name, base in COMBINATIONS.items():
        out[name] = 0.5 * (prophet + out[base])
    return {k: np.where(open_, v, 0.0) for k, v in out.items()}


def usual_volume(
    data: SeriesData, end: int, h: int, period: int, weeks: int = 4, look: int = 8
) -> np.ndarray:
    """A usual day's volume per position: median of the same interval on the last ``weeks``
    same weekdays without a calendar event (looking back up to ``look`` weeks)."""
    src = source_positions(end, h, period, look)
    flat = np.clip(src.ravel(), 0, None)
    vals = np.where(src >= 0, data.y[flat].reshape(src.shape), np.nan)
    vals = np.where(data.calendar.is_event_day(data.local(flat)).reshape(src.shape), np.nan, vals)
    rank = np.cumsum(~np.isnan(vals), axis=1)
    vals = np.where(rank <= weeks, vals, np.nan)
    with _quiet():
        return np.nanmedian(vals, axis=1)


# --------------------------------------------------------------------------- metrics


def insample_scale(y: np.ndarray, open_: np.ndarray, period: int) -> float:
    """MAE of the weekly seasonal naive on a training history (MASE's denominator)."""
    if len(y) <= period:
        return float("nan")
    d = np.abs(y[period:] - y[:-period])
    ok = ~np.isnan(d) & open_[period:]
    return float(d[ok].mean()) if ok.any() else float("nan")


def smape_terms(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    den = np.abs(y) + np.abs(f)
    return np.where(den > 0, 200.0 * np.abs(y - f) / np.where(den > 0, den, 1.0), 0.0)


@dataclass
class OriginScore:
    origin: int
    role: str  # selection | held_out
    scale: float
    y: np.ndarray  # actuals on scored positions
    forecasts: dict[str, np.ndarray]  # model -> forecasts on scored positions
    positions: np.ndarray


def score_origin(
    data: SeriesData, end: int, h: int, period: int, prophet: np.ndarray, open_: np.ndarray, role: str
) -> OriginScore:
    models = candidates(data, end, h, period, prophet, open_)
    idx = np.arange(end, min(end + h, data.n))
    y = data.y[idx]
    actual_open = data.open_at(idx, data.profile(data.n)) | open_[: len(idx)]
    ok = ~np.isnan(y) & actual_open
    train_open = data.open_at(np.arange(end), data.profile(end))
    scale = insample_scale(data.y[:end], train_open, period)
    return OriginScore(
        origin=end,
        role=role,
        scale=scale,
        y=y[ok],
        forecasts={k: v[: len(idx)][ok] for k, v in models.items()},
        positions=idx[ok],
    )


def summarise(scores: list[OriginScore], models=REPORTED) -> pd.DataFrame:
    """One row per model and role: pooled MAE and sMAPE, MASE averaged over origins."""
    rows = []
    for role in ("selection", "held_out"):
        sc = [s for s in scores if s.role == role and len(s.y)]
        if not sc:
            continue
        y = np.concatenate([s.y for s in sc])
        ref = np.concatenate([s.forecasts[REFERENCE] for s in sc])
        ref_mae = float(np.mean(np.abs(y - ref)))
        for m in models:
            f = np.concatenate([s.forecasts[m] for s in sc])
            mae = float(np.mean(np.abs(y - f)))
            mases = [float(np.mean(np.abs(s.y - s.forecasts[m])) / s.scale) for s in sc if s.scale > 0]
            rows.append(
                {
                    "model": m,
                    "role": role,
                    "origins": len(sc),
                    "intervals": int(len(y)),
                    "mae": mae,
                    "smape": float(np.mean(smape_terms(y, f))),
                    "mase": float(np.mean(mases)) if mases else float("nan"),
                    "rel_mae": mae / ref_mae if ref_mae > 0 else float("nan"),
                    "first_origin": min(s.origin for s in sc),
                    "last_origin": max(s.origin for s in sc),
                }
            )
    return pd.DataFrame(rows)


def choose(summary: pd.DataFrame, default: str = "prophet") -> str:
    """The candidate with the lowest MAE on the selection origins (Prophet when none)."""
    sel = summary[(summary["role"] == "selection") & summary["model"].isin(CANDIDATES)]
    sel = sel.dropna(subset=["mae"])
    if sel.empty:
        return default
    order = {m: i for i, m in enumerate(CANDIDATES)}
    sel = sel.assign(_o=sel["model"].map(order)).sort_values(["mae", "_o"])
    return str(sel["model"].iloc[0])
