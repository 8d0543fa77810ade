"""Demand and rosters on the 30-minute grid: open hours, arrival rates, planned agents.

Times are float seconds since the Unix epoch (UTC). Business hours and the calendar are
in Asia/Shanghai, which has had no daylight saving since 1991: local = UTC + 8 h.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from csw.calendar import applies_to, load_calendar
from csw.settings import seeds_dir
from sandbox.config import (
    HOLIDAY_FACTOR,
    INTERVAL_S,
    INTRADAY_EMAIL,
    INTRADAY_OFFICE,
    INTRADAY_SHOP,
    OFFICE_PROMO_DAMPING,
    TRUE_UPLIFT,
    WEEKDAY_FACTOR,
    SimConfig,
)

SHANGHAI_OFFSET_S = 8 * 3600
SLOTS_PER_DAY = 86400 // INTERVAL_S


def to_ts(seconds) -> pd.Series:
    """Float epoch seconds -> UTC timestamps with millisecond precision (NaN -> NaT)."""
    ms = np.round(np.asarray(seconds, float) * 1000)
    out = pd.to_datetime(np.where(np.isfinite(ms), ms, np.nan), unit="ms", utc=True)
    return pd.Series(out).astype("datetime64[ms, UTC]")


def epoch_s(ts) -> np.ndarray:
    """UTC timestamps (Series or array) -> float epoch seconds (NaT -> NaN)."""
    values = pd.to_datetime(pd.Series(ts), utc=True)
    out = values.astype("datetime64[ms, UTC]").to_numpy("datetime64[ms]").astype("int64") / 1000.0
    return np.where(values.isna().to_numpy(), np.nan, out)


def local_midnight_utc(day: dt.date) -> float:
    """UTC epoch seconds of 00:00 Asia/Shanghai on `day`."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() - SHANGHAI_OFFSET_S


@lru_cache(maxsize=1)
def business_hours() -> dict[tuple[str, str], tuple[int, int]]:
    """(channel, day_type) -> (open, close) in local seconds of day. Missing: closed."""
    frame = pd.read_csv(seeds_dir() / "business_hours.csv", dtype=str)

    def secs(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 3600 + int(m) * 60

    return {(r.channel, r.day_type): (secs(r.open_time), secs(r.close_time)) for r in frame.itertuples()}


@dataclass(frozen=True)
class DayInfo:
    day: dt.date
    day_type: str  # weekday | weekend | holiday
    holiday_class: str  # "" or the holiday's class
    promos: tuple[tuple[str, str, str], ...]  # (promo_class, name, channels)


def day_infos(start: dt.date, days: int) -> list[DayInfo]:
    cal = load_calendar()
    by_day: dict[dt.date, list] = {}
    for row in cal.itertuples():
        by_day.setdefault(row.event_date, []).append(row)
    infos = []
    for k in range(days):
        day = start + dt.timedelta(days=k)
        rows = by_day.get(day, [])
        holiday = next((r for r in rows if r.kind == "holiday"), None)
        makeup = any(r.kind == "makeup_workday" for r in rows)
        if holiday is not None:
            day_type = "holiday"
        elif day.weekday() >= 5 and not makeup:
            day_type = "weekend"
        else:
            day_type = "weekday"
        promos = tuple((r.promo_class, r.name, r.channels) for r in rows if r.kind == "promotion")
        infos.append(DayInfo(day, day_type, holiday.promo_class if holiday else "", promos))
    return infos


@dataclass
class ChannelGrid:
    """One channel on the interval grid: [start, start + days) in local days."""

    channel: str
    t0: float  # UTC epoch of the first interval
    rate: np.ndarray  # expected arrivals per interval
    base_rate: np.ndarray  # the same without promotions (what a planner expects)
    open_: np.ndarray  # arrivals possible (business hours; e-mail: always)
    staffed: np.ndarray  # agents may be on duty (business hours + 1 h wrap-up)
    promo_factor: np.ndarray  # per interval uplift of promotions (1 = none)

    @property
    def n(self) -> int:
        return len(self.rate)

    def interval_of(self, t: np.ndarray | float) -> np.ndarray:
        return np.floor((np.asarray(t) - self.t0) / INTERVAL_S).astype(np.int64)


def _intraday(profile_medium: str, office: bool) -> np.ndarray:
    hourly = INTRADAY_EMAIL if profile_medium == "email" else (INTRADAY_OFFICE if office else INTRADAY_SHOP)
    return np.repeat(np.asarray(hourly, dtype=float), SLOTS_PER_DAY // 24)


def channel_grid(cfg: SimConfig, channel: str, start: dt.date, days: int) -> ChannelGrid:
    prof = cfg.profiles[channel]
    hours = business_hours()
    shape = _intraday(prof.medium, prof.office)
    daily = cfg.conversations_per_day * prof.share
    rate, base, open_, staffed, promo = ([] for _ in range(5))
    slot_start = np.arange(SLOTS_PER_DAY) * INTERVAL_S
    for info in day_infos(start, days):
        window = hours.get((channel, info.day_type))
        if window is None:
            is_open = np.zeros(SLOTS_PER_DAY, bool)
            is_staffed = np.zeros(SLOTS_PER_DAY, bool)
        else:
            o, c = window
            is_open = (slot_start >= o) & (slot_start < c)
            wrap = 0 if prof.medium == "email" else 3600
            is_staffed = (slot_start >= o) & (slot_start < c + wrap)
        arrivals_open = np.ones(SLOTS_PER_DAY, bool) if prof.medium == "email" else is_open
        # Normalise the intraday shape so a plain weekday brings `daily` contacts.
        ref_window = hours.get((channel, "weekday"))
        ref_open = (
            np.ones(SLOTS_PER_DAY, bool)
            if prof.medium == "email" or ref_window is None
            else (slot_start >= ref_window[0]) & (slot_start < ref_window[1])
        )
        norm = shape[ref_open].sum() or 1.0
        wd = info.day.weekday()
        level = WEEKDAY_FACTOR[wd] if info.day_type == "weekday" and wd < 5 else 1.0
        if info.day_type == "weekend":
            level = prof.weekend_factor
        if info.day_type == "holiday":
            hf = HOLIDAY_FACTOR.get(info.holiday_class, 0.9)
            level = prof.weekend_factor * hf if prof.office else hf * 1.05
        day_base = daily * level * shape * arrivals_open / norm
        uplift = np.ones(SLOTS_PER_DAY)
        for cls, name, chans in info.promos:
            if not applies_to(chans, channel):
                continue
            u = TRUE_UPLIFT.get(cls, {}).get(name, 1.3)
            if prof.office:
                u = 1 + (u - 1) * OFFICE_PROMO_DAMPING
            if cls == "livestream":
                # Livestreams drive the evening: uplift concentrated after 19:00.
                evening = slot_start >= 19 * 3600
                uplift = uplift * np.where(evening, 1 + (u - 1) * 2.5, 1 + (u - 1) * 0.3)
            else:
                uplift = uplift * u
        rate.append(day_base * uplift)
        base.append(day_base)
        open_.append(arrivals_open)
        staffed.append(is_staffed)
        promo.append(uplift)
    return ChannelGrid(
        channel=channel,
        t0=local_midnight_utc(start),
        rate=np.concatenate(rate),
        base_rate=np.concatenate(base),
        open_=np.concatenate(open_),
        staffed=np.concatenate(staffed),
        promo_factor=np.concatenate(promo),
    )


def sample_arrivals(grid: ChannelGrid, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals per interval, uniform inside it; sorted UTC epoch seconds."""
    counts = rng.poisson(grid.rate)
    starts = grid.t0 + np.repeat(np.arange(grid.n) * INTERVAL_S, counts)
    return np.sort(starts + rng.random(starts.size) * INTERVAL_S)


def planned_roster(
    cfg: SimConfig,
    grid: ChannelGrid,
    work_per_contact_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Agents on duty per interval, as a decent planner would roster them.

    Square-root staffing (N = A + beta·sqrt(A)) on the expected load, where promotions are
    planned for only partly (`promo_staffing`) and each day carries a roster error. So the
    simulated service level is good on plain days and sags on promotion peaks.
    """
    prof = cfg.profiles[grid.channel]
    planned_rate = grid.base_rate * (1 + cfg.promo_staffing * (grid.promo_factor - 1))
    if prof.medium == "email":
        # E-mail is worked in office hours: the day's mail is spread over staffed slots.
        per_day = planned_rate.reshape(-1, SLOTS_PER_DAY).sum(axis=1)
        staffed_slots = grid.staffed.reshape(-1, SLOTS_PER_DAY).sum(axis=1).clip(min=1)
        planned_rate = np.repeat(per_day / staffed_slots, SLOTS_PER_DAY)
    # Carry the rate into the wrap-up hour so the queue left at closing is worked off.
    carried = np.maximum(planned_rate, np.roll(planned_rate, 1) * 0.5)
    traffic = carried * work_per_contact_s / INTERVAL_S / prof.concurrency
    agents = np.ceil((traffic + cfg.staffing_beta * np.sqrt(traffic)) * cfg.staffing_factor)
    noise = rng.lognormal(0, cfg.staffing_noise, grid.n // SLOTS_PER_DAY)
    agents = np.round(agents * np.repeat(noise, SLOTS_PER_DAY))
    return np.where(grid.staffed, np.maximum(agents, 1), 0).astype(np.int64)
