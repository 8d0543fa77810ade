"""Forecasting building blocks: baselines, origins, metrics, calendar features, open hours,
configuration, promotions (learned and planned), and `csw forecast --input` on a user's
own series (business hours only, holidays missing, gaps, a level shift)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csw.cli import app
from forecasting.backtest import (
    BacktestConfig,
    baselines,
    insample_scale,
    plan_origins,
    smape_terms,
    source_positions,
)
from forecasting.pipeline import run_forecasts
from forecasting.promotions import OpenProfile, channel_calendar
from forecasting.series import HistoryError, from_csv, validate_history
from forecasting.volume import ForecastConfig, ForecastConfigError

P = 336  # 30-minute intervals per week


# ------------------------------------------------------------------------- baselines


def test_baselines_use_only_data_before_the_origin():
    y = np.arange(6 * P, dtype=float)
    end, h = 5 * P, P + 10  # a horizon longer than a week
    src = source_positions(end, h, P, 4)
    assert (src < end).all()
    b = baselines(y, end, h, P)
    assert b["seasonal_naive"][0] == y[end - P]
    assert b["seasonal_naive"][P + 3] == y[end + P + 3 - 2 * P]  # two weeks back after a week
    assert b["mean_4w"][0] == pytest.approx(np.mean([y[end - k * P] for k in range(1, 5)]))
    assert b["median_4w"][0] == pytest.approx(np.median([y[end - k * P] for k in range(1, 5)]))


def test_last_week_skips_a_gap_but_seasonal_naive_does_not():
    y = np.ones(5 * P)
    y[4 * P : 4 * P + 5] = np.nan  # last week missing for the first intervals
    y[3 * P : 3 * P + 5] = 7.0
    b = baselines(y, 5 * P, 10, P)
    assert np.isnan(b["seasonal_naive"][0])
    assert b["last_week"][0] == 7.0
    assert b["mean_4w"][0] == pytest.approx(3.0)  # mean of 7, 1, 1 (one week missing)


def test_origins_keep_selection_and_held_out_apart():
    step = pd.Timedelta("30min")
    n = 63 * 48
    sel, held = plan_origins(n, P, step, BacktestConfig())
    assert len(held) == 4 and len(sel) == 3
    assert max(held) + P == n  # the last window ends at the origin
    assert max(sel) + P <= min(held)  # no scored interval in both
    assert np.all(np.diff(held) == 48)
    short_sel, short_held = plan_origins(31 * 48, P, step, BacktestConfig())
    assert short_held and not short_sel  # too short for selection: Prophet is published


def test_metrics():
    y = np.array([0.0, 0.0, 2.0, 4.0])
    f = np.array([0.0, 1.0, 2.0, 2.0])
    assert smape_terms(y, f).tolist() == pytest.approx([0.0, 200.0, 0.0, 200 * 2 / 6])
    series = np.r_[np.zeros(P), np.full(P, 2.0)]
    open_ = np.ones(2 * P, bool)
    assert insample_scale(series, open_, P) == pytest.approx(2.0)
    open_[P:] = False
    assert np.isnan(insample_scale(series, open_, P))


# ------------------------------------------------------------------ calendar features


def test_day_types_and_stage_features():
    cal = channel_calendar("taobao")
    days = pd.DatetimeIndex(["2026-09-20", "2026-10-01", "2026-09-19", "2026-09-18"])
    assert cal.day_types(days).tolist() == ["workday", "holiday", "saturday", "workday"]
    feats = set(cal.events.loc[cal.events["promo_class"] == "double11", "feature"])
    assert feats == {"promo_double11__double_11", "promo_double11__double_11_pre_sale"}
    assert "promo_member_day" in set(cal.events["feature"])
    # the livestream is a Douyin promotion only
    assert "promo_livestream" not in set(cal.events["feature"])
    assert "promo_livestream" in set(channel_calendar("douyin").events["feature"])


def test_open_profile_learns_hours_and_falls_back_for_unseen_day_types():
    slots = np.tile(np.arange(48), 7)
    day_type = np.repeat(["workday"] * 5 + ["saturday", "sunday"], 48)
    open_ = np.tile((np.arange(48) >= 16) & (np.arange(48) < 46), 7)
    prof = OpenProfile.learn(slots, day_type, open_, 48, channel="taobao")
    assert prof.row("workday").sum() == 30
    # taobao is in the business-hours seed: holidays open 09:00-22:00
    holiday = prof.row("holiday")
    assert holiday[18] and not holiday[17] and holiday[43] and not holiday[44]
    other = OpenProfile.learn(slots, day_type, open_, 48, channel="not_in_seed")
    assert (other.row("holiday") == other.row("sunday")).all()


def test_config_validation():
    assert ForecastConfig(horizon="30min").horizon_steps == 1
    assert ForecastConfig(horizon="72h").horizon_steps == 144
    assert ForecastConfig(horizon="2w").horizon_steps == 672
    for bad in ("15d", "10min", "soon"):
        with pytest.raises(ForecastConfigError):
            ForecastConfig(horizon=bad)
    with pytest.raises(ForecastConfigError):
        ForecastConfig(freq="7min")


def test_history_contract_errors_name_the_fix():
    with pytest.raises(HistoryError, match="volume"):
        validate_history(
            pd.DataFrame({"channel": ["a"], "interval_start": [pd.Timestamp("2026-01-01", tz="UTC")]})
        )
    naive = pd.DataFrame({"channel": ["a"], "interval_start": [pd.Timestamp("2026-01-01")], "volume": [1]})
    with pytest.raises(HistoryError, match="time zone"):
        validate_history(naive)
    off = naive.assign(interval_start=[pd.Timestamp("2026-01-01 00:10", tz="UTC")])
    with pytest.raises(HistoryError, match="grid"):
        validate_history(off)


# --------------------------------------------------------------------- promotions


def _synthetic(days: int, start: str, effects: dict[str, float], seed: int = 0) -> pd.DataFrame:
    """Shop-like 30-minute series 08:00-23:00 local, level 20 at the peak, with multiplicative
    day effects; Poisson noise."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=days * 48, freq="30min", tz="Asia/Shanghai")
    hour = idx.hour + idx.minute / 60
    shape = np.where((hour >= 8) & (hour < 23), 8 + 10 * np.exp(-(((hour - 20.5) / 2.0) ** 2)), 0.0)
    day = idx.tz_localize(None).normalize()
    factor = np.ones(len(idx))
    for d, f in effects.items():
        factor[day == pd.Timestamp(d)] = f
    factor *= np.where(idx.weekday >= 5, 1.2, 1.0)
    y = rng.poisson(shape * factor)
    return pd.DataFrame(
        {
            "channel": "shop",
            "interval_start": idx.tz_convert("UTC"),
            "volume": y.astype(float),
            "is_open": shape > 0,
        }
    )


def _calendar(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["event_date", "kind", "name", "promo_class", "planned_uplift", "channels"]
    )
    frame["event_date"] = pd.to_datetime(frame["event_date"]).dt.date
    return frame


def test_seen_promotion_is_learned_and_unseen_uses_the_planned_uplift():
    effects = {"2026-03-10": 1.6, "2026-03-24": 1.6, "2026-04-07": 1.6, "2026-04-21": 1.6}
    history = _synthetic(56, "2026-03-02", effects)
    cal = _calendar(
        [(d, "promotion", "Flash sale", "flash", 1.2, "*") for d in [*effects, "2026-04-28"]]
        + [("2026-04-29", "promotion", "Brand day", "brand_day", 2.0, "*")]
    )
    run = run_forecasts(history, ForecastConfig(horizon="7d"), backtest=None, workers=1, calendar=cal)
    f = next(iter(run.series.values())).forecast
    daily = f.groupby("local_date")["yhat"].sum()
    plain = daily[dt.date(2026, 4, 30)]  # a Thursday without events
    assert daily[dt.date(2026, 4, 28)] / plain == pytest.approx(1.6, rel=0.12)  # learned, not the planned 1.2
    assert daily[dt.date(2026, 4, 29)] / plain == pytest.approx(2.0, rel=0.08)  # planned uplift
    events = f.set_index("local_date")["events"]
    assert "planned ×2" in events[dt.date(2026, 4, 29)].iloc[0]
    assert events[dt.date(2026, 4, 28)].iloc[0] == "flash"


# -------------------------------------------------------- a user's own CSV series


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    """Weekdays 07:00-21:00 only, no rows on public holidays, a 2.5-day gap, a level shift
    of +50 % in the last four weeks, three months of history."""
    rng = np.random.default_rng(1)
    rows = []
    holidays = {dt.date(2026, 4, 6), dt.date(2026, 5, 1), dt.date(2026, 5, 4), dt.date(2026, 5, 5)}
    for day in pd.date_range("2026-03-02", "2026-05-29", freq="D"):
        if day.weekday() >= 5 or day.date() in holidays:
            continue
        for k in range(28):
            t = day + pd.Timedelta(hours=7) + k * pd.Timedelta("30min")
            h = t.hour + t.minute / 60
            lam = 6 + 8 * np.exp(-(((h - 10.5) / 1.5) ** 2)) + 6 * np.exp(-(((h - 15) / 2) ** 2))
            lam *= 1.2 if day.weekday() == 0 else 1.0
            lam *= 1.5 if day >= pd.Timestamp("2026-05-04") else 1.0
            rows.append((t, rng.poisson(lam)))
    frame = pd.DataFrame(rows, columns=["ds", "y"])
    frame = frame[~((frame["ds"] >= "2026-04-14") & (frame["ds"] < "2026-04-16 12:00"))]
    path = tmp_path_factory.mktemp("user") / "history.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_csv_forecast_with_backtest(user_csv, tmp_path):
    path, frame = user_csv
    out = tmp_path / "forecast.csv"
    result = CliRunner().invoke(
        app,
        [
            "forecast",
            "--input",
            str(path),
            "--output",
            str(out),
            "--horizon",
            "7d",
            "--backtest",
            "--json",
            "--workers",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    models = {r["model"]: r for r in summary["backtest"]}
    assert {"prophet", "seasonal_naive"} <= set(models)
    assert all(k in models["prophet"] for k in ("mae", "smape", "mase"))
    assert models["prophet"]["origins"] == 4
    f = pd.read_csv(out, parse_dates=["ds"])
    assert list(f.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert len(f) == 7 * 48 and f["ds"].diff().dropna().eq(pd.Timedelta("30min")).all()
    assert f["ds"].iloc[0] == pd.Timestamp("2026-05-29 21:00")
    closed = (f["ds"].dt.weekday >= 5) | (f["ds"].dt.hour < 7) | (f["ds"].dt.hour >= 21)
    assert (f.loc[closed, ["yhat", "yhat_lower", "yhat_upper"]] == 0).all().all()
    assert (f.loc[~closed, "yhat"] > 0).all()
    # the level after the shift, not the three-month average
    recent = frame[frame["ds"] >= "2026-05-18"]
    per_day_recent = recent["y"].sum() / 10
    per_day_forecast = f.loc[f["ds"].dt.weekday.isin([1, 2, 3, 4]), "yhat"].sum() / 4
    assert per_day_forecast == pytest.approx(per_day_recent, rel=0.15)


def test_csv_intraday_horizon_and_errors(user_csv, tmp_path):
    path, _ = user_csv
    out = tmp_path / "f.csv"
    runner = CliRunner()
    ok = runner.invoke(app, ["forecast", "--input", str(path), "--output", str(out), "--horizon", "3h"])
    assert ok.exit_code == 0, ok.output
    assert len(pd.read_csv(out)) == 6
    bad = runner.invoke(app, ["forecast", "--input", str(path), "--output", str(out), "--horizon", "20d"])
    assert bad.exit_code == 2 and "outside 30min..14d" in bad.output
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,count\n2026-01-01 00:00,1\n")
    err = runner.invoke(app, ["forecast", "--input", str(wrong), "--output", str(out)])
    assert err.exit_code == 2 and "ds,y" in err.output
    help_ = runner.invoke(app, ["forecast", "--help"])
    assert help_.exit_code == 0 and "--backtest" in help_.output


def test_from_csv_treats_empty_y_as_a_gap(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("ds,y\n2026-01-05 09:00,3\n2026-01-05 09:30,\n2026-01-05 10:00,0\n")
    h = from_csv(p)
    assert h["volume"].tolist() == [3.0, 0.0]
    assert h["interval_start"].iloc[0] == pd.Timestamp("2026-01-05 01:00", tz="UTC")
