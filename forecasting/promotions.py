"""Calendar features for the forecasts: day types, holiday rows per promotion class, planned
uplifts, and the open hours of the days ahead.

The calendar is the dbt seed ``calendar_events.csv`` (``csw.calendar.load_calendar``): the
same file drives the simulation, the marts and these forecasts.

- **Day type** of a local date for a channel: ``holiday`` (a holiday row applies),
  ``workday`` (Monday-Friday, or a make-up workday), else ``saturday`` / ``sunday``.
- **Event features**: every event row becomes a Prophet holiday row (Prophet holidays act
  per local day). The feature is the promotion class (``promo_member_day``), split by
  stage when one class has differently named days (``promo_double11__double_11_pre_sale``
  and ``promo_double11__double_11``: the manager's planned uplift differs by stage, and so
  does the real one); holidays by their class (``holiday_spring_festival``); make-up
  workdays as ``makeup_workday``.
- **Seen or not**: a feature with at least one day in the training history is learned by
  Prophet. A promotion feature that the history has never seen takes the manager's
  ``planned_uplift`` (a multiplier on the forecast without it) for its days; without a
  planned uplift it has no effect and the forecast says so in its ``events`` label.
- **Promotion intraday shape**: a promotion class seen on at least two days also gets a
  daily seasonality conditioned on its days (a livestream moves volume into the evening).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from csw.calendar import applies_to, load_calendar
from csw.settings import seeds_dir

DAY_TYPES = ("workday", "saturday", "sunday", "holiday")
# Where to look when the history has never seen a day type (first match wins).
DAY_TYPE_FALLBACK = {
    "holiday": ("holiday", "sunday", "saturday", "workday"),
    "saturday": ("saturday", "sunday", "workday"),
    "sunday": ("sunday", "saturday", "workday"),
    "workday": ("workday", "saturday", "sunday"),
}


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(text).lower()).strip("_") or "other"


@dataclass
class ChannelCalendar:
    """The calendar rows that apply to one channel, with their forecast features."""

    channel: str
    events: (
        pd.DataFrame
    )  # date (datetime64, local midnight), kind, promo_class, name, planned_uplift, feature
    _by_date: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._holiday_dates = set(self.events.loc[self.events["kind"] == "holiday", "date"])
        self._makeup_dates = set(self.events.loc[self.events["kind"] == "makeup_workday", "date"])
        self._event_dates = set(self.events["date"])

    def day_types(self, dates: pd.DatetimeIndex | pd.Series) -> np.ndarray:
        """Day type per local date (``DAY_TYPES``)."""
        d = pd.DatetimeIndex(dates).normalize()
        wd = d.weekday
        out = np.where(wd < 5, "workday", np.where(wd == 5, "saturday", "sunday")).astype(object)
        out[d.isin(list(self._makeup_dates))] = "workday"
        out[d.isin(list(self._holiday_dates))] = "holiday"
        return out

    def is_event_day(self, dates) -> np.ndarray:
        return pd.DatetimeIndex(dates).normalize().isin(list(self._event_dates))

    def features_on(self, dates, feature: str) -> np.ndarray:
        rows = self.events[self.events["feature"] == feature]
        return pd.DatetimeIndex(dates).normalize().isin(list(rows["date"]))

    def class_on(self, dates, promo_class: str) -> np.ndarray:
        rows = self.events[(self.events["kind"] == "promotion") & (self.events["promo_class"] == promo_class)]
        return pd.DatetimeIndex(dates).normalize().isin(list(rows["date"]))

    def labels(self, dates) -> np.ndarray:
        """A short label of the events of each date ('' when none)."""
        d = pd.DatetimeIndex(dates).normalize()
        by_date = self.events.groupby("date")["label"].agg(lambda s: ", ".join(sorted(set(s))))
        return np.asarray(pd.Series(d).map(by_date).fillna("").to_numpy(), dtype=object)


def channel_calendar(
    channel: str, calendar: pd.DataFrame | None = None, promotions: bool = True
) -> ChannelCalendar:
    """The events of ``calendar`` (default: the seed) that apply to ``channel``; holidays
    and make-up workdays only unless ``promotions``."""
    cal = load_calendar() if calendar is None else calendar
    rows = cal[[applies_to(str(c), channel) for c in cal["channels"]]].copy()
    if not promotions:
        rows = rows[rows["kind"] != "promotion"]
    rows["date"] = pd.to_datetime(rows["event_date"])
    rows["promo_class"] = rows["promo_class"].fillna("").astype(str)
    rows["planned_uplift"] = pd.to_numeric(rows["planned_uplift"], errors="coerce")
    stages = rows[rows["kind"] == "promotion"].groupby("promo_class")["name"].nunique()

    def feature(r) -> str:
        if r.kind == "promotion":
            base = f"promo_{_slug(r.promo_class or r.name)}"
            return f"{base}__{_slug(r.name)}" if stages.get(r.promo_class, 1) > 1 else base
        if r.kind == "holiday":
            return f"holiday_{_slug(r.promo_class or 'public_holiday')}"
        return _slug(r.kind)

    rows["feature"] = [feature(r) for r in rows.itertuples()]
    rows["label"] = np.where(
        rows["kind"] == "makeup_workday",
        "make-up workday",
        rows["promo_class"].where(rows["promo_class"] != "", rows["name"]),
    )
    rows = rows[["date", "kind", "promo_class", "name", "planned_uplift", "feature", "label"]]
    rows = rows.drop_duplicates(["date", "feature"]).sort_values(["date", "feature"])
    return ChannelCalendar(channel, rows.reset_index(drop=True))


def empty_calendar(channel: str) -> ChannelCalendar:
    cols = ["date", "kind", "promo_class", "name", "planned_uplift", "feature", "label"]
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame["date"] = pd.to_datetime(frame["date"])
    frame["planned_uplift"] = frame["planned_uplift"].astype(float)
    return ChannelCalendar(channel, frame)


# ------------------------------------------------------------------------- open hours


@lru_cache(maxsize=1)
def _seed_hours() -> dict[tuple[str, str], tuple[int, int]]:
    path = seeds_dir() / "business_hours.csv"
    if not path.exists():
        return {}
    frame = pd.read_csv(path, dtype=str)

    def minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    return {
        (r.channel, r.day_type): (minutes(r.open_time), minutes(r.close_time)) for r in frame.itertuples()
    }


def seed_open(channel: str, day_type: str, minute_of_day: np.ndarray) -> np.ndarray | None:
    """Open per minute-of-day from the business-hours seed (None: channel not in the seed)."""
    hours = _seed_hours()
    if not any(ch == channel for ch, _ in hours):
        return None
    seed_type = (
        "weekend"
        if day_type in ("saturday", "sunday")
        else ("weekday" if day_type == "workday" else day_type)
    )
    window = hours.get((channel, seed_type))
    if window is None:
        return np.zeros(len(minute_of_day), bool)
    return (minute_of_day >= window[0]) & (minute_of_day < window[1])


@dataclass
class OpenProfile:
    """Which intervals of each day type can take contacts, learned from the history.

    A slot (day type, time of day) is open when any history day of that type had it open
    (the mart's ``is_open``, or any volume). Slots never open in the history are closed,
    and forecast as 0. A day type the history has never seen (often ``holiday``) takes the
    business-hours seed for chat channels that are in it, else the fallback in
    ``DAY_TYPE_FALLBACK``.
    """

    slots_per_day: int
    table: dict[str, np.ndarray]  # day type -> open per slot
    channel: str = ""
    medium: str = "chat"

    @classmethod
    def learn(
        cls,
        slot: np.ndarray,
        day_type: np.ndarray,
        open_: np.ndarray,
        slots_per_day: int,
        channel: str = "",
        medium: str = "chat",
    ) -> OpenProfile:
        table = {}
        for t in DAY_TYPES:
            sel = day_type == t
            if sel.any():
                table[t] = (
                    np.bincount(slot[sel], weights=open_[sel].astype(float), minlength=slots_per_day) > 0
                )
        return cls(slots_per_day, table, channel, medium)

    def row(self, day_type: str) -> np.ndarray:
        if day_type in self.table:
            return self.table[day_type]
        if self.medium == "chat" and self.slots_per_day > 1:
            minute = np.arange(self.slots_per_day) * (1440 // self.slots_per_day)
            seeded = seed_open(self.channel, day_type, minute)
            if seeded is not None:
                return seeded
        for t in DAY_TYPE_FALLBACK[day_type]:
            if t in self.table:
                return self.table[t]
        return np.ones(self.slots_per_day, bool)

    def is_open(self, slot: np.ndarray, day_type: np.ndarray) -> np.ndarray:
        out = np.zeros(len(slot), bool)
        for t in np.unique(day_type):
            sel = day_type == t
            out[sel] = self.row(str(t))[slot[sel]]
        return out
