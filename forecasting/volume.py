"""Volume forecasts with Prophet, one series (channel and medium) at a time.

The model, per series, on the local (Asia/Shanghai) clock so that calendar days line up:

- ``log1p`` of the contacts per interval, so that daily shape, weekday level, holidays and
  promotions multiply (a Double 11 lifts the peak hours more than the quiet ones);
- **daily seasonality** with a high Fourier order (15 by default at 30-minute intervals:
  the intraday curve has sharp shoulders at opening and closing);
- **weekly seasonality** as day-of-week levels (six regressors, Wednesday the reference)
  on plain days. A smooth weekly Fourier series would smear Saturday into Friday night;
  holidays and make-up workdays carry no day-of-week level but a holiday row of their own;
- **holidays and promotions** from the calendar seed as Prophet holiday rows
  (``forecasting.promotions``); classes the history never saw take the manager's planned
  uplift; promotion classes seen on two days or more get an intraday shape of their own
  (a daily seasonality conditioned on their days);
- **closed intervals**: Prophet sees only open intervals (Prophet's advice for regular
  gaps); intervals that are closed in the open-hours profile are forecast as 0;
- **bias**: ``expm1`` of a mean in log space is below the mean. The point forecast is put
  back on the mean scale with Duan's smearing factor ``mean(exp(residual))``, taken per
  level band of the fitted values (small counts need more). Staffing needs the mean;
- intervals from Prophet's samples (``uncertainty_samples``, trend and noise in log space),
  turned back with ``expm1``; everything clipped at 0. The samples are seeded per series
  and origin, so the same ``as_of`` gives the same bounds.

Every fit runs in a worker process (``forecasting.pipeline``); this module only holds the
pure functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forecasting.promotions import ChannelCalendar, OpenProfile, channel_calendar, empty_calendar
from forecasting.series import SeriesKey

MODEL_VERSION = "csw-forecast-1"
MIN_HORIZON = pd.Timedelta("30min")
MAX_HORIZON = pd.Timedelta("14D")
WEEK = pd.Timedelta("7D")
DOW_REGRESSORS = (0, 1, 3, 4, 5, 6)  # Wednesday (2) is the reference level


class ForecastConfigError(ValueError):
    """A forecast option is out of range; the message says what to pass."""


def parse_duration(text: str | pd.Timedelta, what: str = "horizon") -> pd.Timedelta:
    """'7d', '72h', '30min', '90min', '1w' -> Timedelta."""
    if isinstance(text, pd.Timedelta):
        return text
    raw = str(text).strip().lower()
    if raw.endswith("w") and raw[:-1].isdigit():
        raw = f"{int(raw[:-1]) * 7}d"
    try:
        return pd.Timedelta(raw)
    except ValueError as exc:
        raise ForecastConfigError(f"cannot read {what} {text!r}; use e.g. 30min, 72h, 7d, 14d") from exc


@dataclass(frozen=True)
class ForecastConfig:
    """How volume is forecast. Defaults suit 30-minute contact-centre data."""

    freq: str = "30min"
    horizon: str = "7D"
    tz: str = "Asia/Shanghai"
    daily_order: int = 15
    promo_daily_order: int = 4
    promo_daily_prior_scale: float = 1.0  # shrinks a promotion's intraday shape towards none
    promo_window: tuple[int, int] = (0, 0)  # days before/after a promotion day it affects
    changepoint_prior_scale: float = 0.05
    changepoint_range: float = 0.9
    seasonality_prior_scale: float = 10.0
    holidays_prior_scale: float = 10.0
    interval_width: float = 0.8
    uncertainty_samples: int = 200
    calendar: str = "all"  # all | holidays (no promotions) | none
    min_history: str = "14D"

    def __post_init__(self) -> None:
        step = self.step
        if step <= pd.Timedelta(0) or pd.Timedelta("1D") % step != pd.Timedelta(0):
            raise ForecastConfigError(f"freq {self.freq!r} must divide a day, e.g. 15min, 30min, 1h or 1D")
        h = self.horizon_td
        if not (MIN_HORIZON <= h <= MAX_HORIZON):
            raise ForecastConfigError(
                f"horizon {self.horizon!r} is outside 30min..14d; pass e.g. 72h (intraday) or 7d"
            )
        if h < step:
            raise ForecastConfigError(f"horizon {self.horizon!r} is shorter than one interval ({self.freq})")
        if self.calendar not in ("all", "holidays", "none"):
            raise ForecastConfigError(f"calendar must be all, holidays or none (got {self.calendar!r})")
        if not (0 < self.interval_width < 1):
            raise ForecastConfigError("interval_width must be in (0, 1), e.g. 0.8")

    @property
    def step(self) -> pd.Timedelta:
        return parse_duration(self.freq, "freq")

    @property
    def horizon_td(self) -> pd.Timedelta:
        return parse_duration(self.horizon, "horizon")

    @property
    def horizon_steps(self) -> int:
        return int(np.ceil(self.horizon_td / self.step))

    @property
    def period(self) -> int:
        """Intervals per week (the seasonal-naive lag)."""
        return int(WEEK / self.step)

    @property
    def slots_per_day(self) -> int:
        return int(pd.Timedelta("1D") / self.step)

    def version(self) -> str:
        """Model version: code version, Prophet version and a hash of this config."""
        quiet_prophet()
        import prophet

        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return f"{MODEL_VERSION}+prophet{prophet.__version__}+{hashlib.sha1(blob).hexdigest()[:8]}"


def floor_origin(ts, config: ForecastConfig) -> pd.Timestamp:
    """A forecast origin (naive = UTC) floored to the interval grid of the local clock."""
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    local = ts.tz_convert(config.tz).tz_localize(None).floor(config.step)
    return local.tz_localize(config.tz).tz_convert("UTC")


# ------------------------------------------------------------------------ series data


@dataclass
class SeriesData:
    """One series on a regular grid from its first interval to the forecast origin."""

    key: SeriesKey
    t0: pd.Timestamp  # UTC start of position 0
    step: pd.Timedelta
    tz: str
    y: np.ndarray  # contacts per interval; NaN = unknown (gap)
    open_known: np.ndarray  # 1 open, 0 closed, NaN unknown (no is_open in the input)
    calendar: ChannelCalendar

    @property
    def n(self) -> int:
        return len(self.y)

    def utc(self, idx: np.ndarray) -> pd.DatetimeIndex:
        ns = self.t0.value + np.asarray(idx, dtype=np.int64) * self.step.value
        return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")

    def local(self, idx: np.ndarray) -> pd.DatetimeIndex:
        return self.utc(idx).tz_convert(self.tz).tz_localize(None)

    def slots(self, idx: np.ndarray) -> np.ndarray:
        loc = self.local(idx)
        minutes = loc.hour * 60 + loc.minute
        return (np.asarray(minutes) // int(self.step / pd.Timedelta("1min"))).astype(np.int64)

    def day_types(self, idx: np.ndarray) -> np.ndarray:
        return self.calendar.day_types(self.local(idx))

    def profile(self, end: int) -> OpenProfile:
        """Open hours learned from positions before ``end``."""
        idx = np.arange(end)
        y = self.y[:end]
        known = self.open_known[:end]
        seen_open = np.where(np.isnan(known), 0.0, known) > 0
        seen_open |= np.nan_to_num(y, nan=0.0) > 0
        spd = int(pd.Timedelta("1D") / self.step)
        return OpenProfile.learn(
            self.slots(idx), self.day_types(idx), seen_open, spd, self.key.channel, self.key.medium
        )

    def open_at(self, idx: np.ndarray, profile: OpenProfile) -> np.ndarray:
        """Open per position: the input's ``is_open`` where known, else the profile."""
        idx = np.asarray(idx)
        prof = profile.is_open(self.slots(idx), self.day_types(idx))
        inside = idx < self.n
        known = np.full(len(idx), np.nan)
        known[inside] = self.open_known[idx[inside]]
        return np.where(np.isnan(known), prof, known > 0) | (np.nan_to_num(self._y_at(idx), nan=0.0) > 0)

    def _y_at(self, idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), np.nan)
        inside = idx < self.n
        out[inside] = self.y[idx[inside]]
        return out


def prepare_series(
    history: pd.DataFrame,
    key: SeriesKey,
    config: ForecastConfig,
    origin: pd.Timestamp | None = None,
    calendar: pd.DataFrame | None = None,
) -> SeriesData:
    """Put one series of a validated history on the regular grid up to ``origin`` (UTC,
    exclusive; default: the end of its last interval)."""
    step = config.step
    h = history[(history["channel"] == key.channel) & (history["medium"] == key.medium)]
    if h.empty:
        raise ValueError(f"no history for {key.label}")
    t0 = h["interval_start"].min()
    end = (h["interval_start"].max() + step) if origin is None else pd.Timestamp(origin).tz_convert("UTC")
    n = int((end - t0) / step)
    if n <= 0:
        raise ValueError(f"{key.label}: the origin {end} is before the first interval {t0}")
    pos = ((h["interval_start"] - t0) / step).to_numpy().astype(np.int64)
    ok = pos < n
    y = np.full(n, np.nan)
    y[pos[ok]] = h["volume"].to_numpy(float)[ok]
    open_known = np.full(n, np.nan)
    if "is_open" in h.columns:
        flag = h["is_open"].astype("float").to_numpy()
        open_known[pos[ok]] = flag[ok]
    if config.calendar == "none":
        cal = empty_calendar(key.channel)
    else:
        cal = channel_calendar(key.channel, calendar, promotions=config.calendar == "all")
    return SeriesData(key, t0, step, config.tz, y, open_known, cal)


# --------------------------------------------------------------------------- Prophet


def quiet_prophet() -> None:
    """Silence cmdstanpy's and Prophet's chatter (called in every worker). cmdstanpy adds
    its own INFO handler unless the logger already has one, so give it a null handler."""
    for name, level in (
        ("cmdstanpy", logging.ERROR),
        ("prophet", logging.ERROR),
        ("prophet.plot", logging.CRITICAL),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        logger.setLevel(level)
        logger.propagate = False
    warnings.filterwarnings("ignore", category=FutureWarning)
    _fast_stan_json()


def _fast_stan_json() -> None:
    """Half of a Prophet fit here goes into writing its data as JSON for CmdStan, element
    by element in Python (stanio without ujson). Write plain finite numeric data with
    numpy's ``tolist`` and the C JSON encoder instead; anything else takes the original
    path. The file is the same JSON."""
    try:
        from cmdstanpy.utils import filesystem
    except ImportError:  # pragma: no cover - cmdstanpy comes with prophet
        return
    original = getattr(filesystem, "write_stan_json", None)
    if original is None or getattr(original, "_csw_fast", False):
        return

    def write_stan_json(path, data):
        plain = {}
        for key, value in data.items():
            if isinstance(value, bool | np.bool_):
                plain[key] = int(value)
            elif isinstance(value, int | float | np.integer | np.floating):
                plain[key] = value.item() if isinstance(value, np.generic) else value
            else:
                arr = np.asarray(value)
                if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
                    return original(path, data)
                plain[key] = arr.astype(np.int64 if arr.dtype.kind in "biu" else np.float64).tolist()
            if isinstance(plain[key], float) and not np.isfinite(plain[key]):
                return original(path, data)
        with open(path, "w") as fd:
            fd.write(json.dumps(plain))

    write_stan_json._csw_fast = True  # type: ignore[attr-defined]
    filesystem.write_stan_json = write_stan_json


@dataclass
class _Design:
    holidays: pd.DataFrame | None
    seen_features: list[str]
    intraday_classes: list[str]
    unseen: pd.DataFrame  # future promotion days the history never saw


def _design(
    data: SeriesData, train_idx: np.ndarray, future_idx: np.ndarray, config: ForecastConfig
) -> _Design:
    ev = data.calendar.events
    train_days = pd.DatetimeIndex(data.local(train_idx)).normalize().unique()
    future_days = pd.DatetimeIndex(data.local(future_idx)).normalize().unique()
    seen_features = sorted(set(ev.loc[ev["date"].isin(train_days), "feature"]))
    rows = ev[
        ev["feature"].isin(seen_features) & (ev["date"].isin(train_days) | ev["date"].isin(future_days))
    ]
    holidays = None
    if len(rows):
        lo, hi = config.promo_window
        holidays = pd.DataFrame(
            {
                "holiday": rows["feature"].to_numpy(),
                "ds": rows["date"].to_numpy(),
                "lower_window": np.where(rows["kind"] == "promotion", -lo, 0),
                "upper_window": np.where(rows["kind"] == "promotion", hi, 0),
            }
        )
    promo = ev[(ev["kind"] == "promotion") & ev["date"].isin(train_days)]
    counts = promo.groupby("promo_class")["date"].nunique()
    intraday = sorted(c for c, k in counts.items() if k >= 2) if config.slots_per_day > 1 else []
    unseen = ev[
        (ev["kind"] == "promotion") & ev["date"].isin(future_days) & ~ev["feature"].isin(seen_features)
    ]
    return _Design(holidays, seen_features, intraday, unseen)


def _features(data: SeriesData, idx: np.ndarray, design: _Design) -> pd.DataFrame:
    local = data.local(idx)
    frame = pd.DataFrame({"ds": local})
    day_type = data.calendar.day_types(local)
    wd = np.asarray(local.weekday)
    plain = ((day_type == "workday") & (wd < 5)) | (day_type == "saturday") | (day_type == "sunday")
    for k in DOW_REGRESSORS:
        frame[f"dow{k}"] = ((wd == k) & plain).astype(float)
    for cls in design.intraday_classes:
        frame[f"on_{cls}"] = data.calendar.class_on(local, cls)
    return frame


def _smearing(fitted: np.ndarray, resid: np.ndarray, bands: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Smearing factors mean(exp(residual)) per band of fitted log-values."""
    if len(fitted) < 2 * bands * 20:
        bands = max(1, len(fitted) // 40)
    if bands <= 1 or len(fitted) == 0:
        factor = float(np.mean(np.exp(resid))) if len(resid) else 1.0
        return np.array([0.0]), np.array([factor])
    edges = np.quantile(fitted, np.linspace(0, 1, bands + 1))
    which = np.clip(np.searchsorted(edges, fitted, side="right") - 1, 0, bands - 1)
    centres, factors = [], []
    for b in range(bands):
        sel = which == b
        if sel.sum() >= 10:
            centres.append(float(np.median(fitted[sel])))
            factors.append(float(np.mean(np.exp(resid[sel]))))
    return np.asarray(centres), np.asarray(factors)


@contextlib.contextmanager
def _seeded(key: SeriesKey, origin: pd.Timestamp):
    """Seed numpy's global generator for one forecast, then put its state back.

    Prophet draws its uncertainty samples (trend changes, noise) from ``np.random``
    without a seed of its own (facebook/prophet#849, #1124), so the bounds would differ on
    every run. Seeding from the series and the origin makes a re-run of the same
    ``as_of`` give identical ``yhat_lower``/``yhat_upper``, while different series and
    origins still get independent draws."""
    blob = f"{key.channel}|{key.medium}|{pd.Timestamp(origin).isoformat()}".encode()
    state = np.random.get_state()
    np.random.seed(int.from_bytes(hashlib.sha256(blob).digest()[:4], "little"))
    try:
        yield
    finally:
        np.random.set_state(state)


def prophet_forecast(
    data: SeriesData,
    end: int,
    horizon_n: int,
    config: ForecastConfig,
    uncertainty: bool = False,
    keep_model: bool = False,
) -> dict:
    """Fit Prophet on positions ``< end`` and forecast positions ``end .. end + horizon_n``.

    Returns ``yhat`` (mean scale), ``yhat_lower``, ``yhat_upper`` (NaN without
    ``uncertainty``), ``open`` (the open-hours mask used), ``planned`` (the planned-uplift
    multiplier applied per interval) and, with ``keep_model``, the model as JSON.
    """
    from prophet import Prophet

    quiet_prophet()
    train_idx = np.arange(end)
    future_idx = np.arange(end, end + horizon_n)
    profile = data.profile(end)
    open_train = data.open_at(train_idx, profile)
    y_train = data.y[:end]
    use = open_train & ~np.isnan(y_train)
    if use.sum() < 2 * config.slots_per_day:
        raise ValueError(f"{data.key.label}: fewer than two days of open intervals before the origin")
    design = _design(data, train_idx[use], future_idx, config)
    model = Prophet(
        growth="linear",
        yearly_seasonality=False,
        weekly_seasonality=False,
        daily_seasonality=False,
        holidays=design.holidays,
        changepoint_range=config.changepoint_range,
        changepoint_prior_scale=config.changepoint_prior_scale,
        seasonality_prior_scale=config.seasonality_prior_scale,
        holidays_prior_scale=config.holidays_prior_scale,
        interval_width=config.interval_width,
        uncertainty_samples=config.uncertainty_samples if uncertainty else 0,
    )
    if config.slots_per_day > 1:
        # orders at or above half the samples per day alias onto lower ones
        order = min(config.daily_order, config.slots_per_day // 2 - 1)
        model.add_seasonality("daily", period=1, fourier_order=max(order, 1))
    for k in DOW_REGRESSORS:
        model.add_regressor(f"dow{k}", standardize=False)
    for cls in design.intraday_classes:
        model.add_seasonality(
            f"daily_{cls}",
            period=1,
            fourier_order=max(min(config.promo_daily_order, config.slots_per_day // 2 - 1), 1),
            prior_scale=config.promo_daily_prior_scale,
            condition_name=f"on_{cls}",
        )
    train = _features(data, train_idx[use], design)
    train["y"] = np.log1p(y_train[use])
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train)
        samples = model.uncertainty_samples
        model.uncertainty_samples = 0
        fitted = model.predict(train)["yhat"].to_numpy()
        model.uncertainty_samples = samples
        with _seeded(data.key, data.utc(np.array([end]))[0]):
            pred = model.predict(_features(data, future_idx, design))
    centres, factors = _smearing(fitted, train["y"].to_numpy() - fitted)
    log_hat = pred["yhat"].to_numpy()
    smear = np.interp(log_hat, centres, factors) if len(centres) > 1 else np.full_like(log_hat, factors[0])
    yhat = np.exp(log_hat) * smear - 1.0
    if uncertainty and "yhat_lower" in pred:
        lower = np.expm1(pred["yhat_lower"].to_numpy())
        upper = np.expm1(pred["yhat_upper"].to_numpy())
    else:
        lower = upper = np.full(horizon_n, np.nan)
    planned = np.ones(horizon_n)
    if len(design.unseen):
        local_days = data.local(future_idx).normalize()
        for (_, uplift), _rows in design.unseen.groupby(["feature", "planned_uplift"], dropna=True):
            on = local_days.isin(list(_rows["date"]))
            planned[on] *= float(uplift)
    # the future's open hours come from the profile alone: the actuals are not known yet
    open_future = profile.is_open(data.slots(future_idx), data.day_types(future_idx))
    out = {
        "yhat": np.where(open_future, np.clip(yhat * planned, 0, None), 0.0),
        "yhat_lower": np.where(open_future, np.clip(lower * planned, 0, None), 0.0),
        "yhat_upper": np.where(open_future, np.clip(upper * planned, 0, None), 0.0),
        "open": open_future,
        "planned": planned,
        "seen_features": design.seen_features,
    }
    if not uncertainty:
        out["yhat_lower"] = np.full(horizon_n, np.nan)
        out["yhat_upper"] = np.full(horizon_n, np.nan)
    if keep_model:
        from prophet.serialize import model_to_json

        out["model_json"] = model_to_json(model)
    return out
