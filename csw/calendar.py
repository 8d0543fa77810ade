"""The holiday and promotion calendar: one CSV seed drives the simulation, the marts and
the forecasts (`dbt_project/seeds/calendar_events.csv`).

Columns: `event_date, kind, name, promo_class, planned_uplift, channels`
- `kind`: `holiday` (a day off), `makeup_workday` (a weekend day worked), `promotion`;
- `promo_class`: what the forecaster learns from (`double11`, `618`, `member_day`,
  `livestream`, `spring_festival`, ...); days of one event share a class;
- `planned_uplift`: a manager's expected volume multiplier, used for classes the history
  has never seen; empty when unknown;
- `channels`: `*` or `|`-separated channels the event applies to.

`build_calendar` regenerates the seed from the `holidays` package (official Chinese
holidays and make-up workdays) plus the platform promotion rules below; people then edit
the CSV by hand (add a livestream, a planned uplift).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import holidays
import pandas as pd

from csw.settings import seeds_dir

CALENDAR_FILE = "calendar_events.csv"
COLUMNS = ["event_date", "kind", "name", "promo_class", "planned_uplift", "channels"]

# Chinese public holidays by name prefix -> class. Spring Festival is its own class
# because its effect (a deep trough) differs from the other days off.
_HOLIDAY_CLASSES = {
    "Chinese New Year": "spring_festival",
    "New Year's Day": "public_holiday",
    "Tomb-Sweeping": "public_holiday",
    "Labor Day": "public_holiday",
    "Dragon Boat": "public_holiday",
    "Mid-Autumn": "public_holiday",
    "National Day": "national_day",
}


@dataclass(frozen=True)
class Promotion:
    promo_class: str
    name: str
    month: int
    days: tuple[int, ...]
    planned_uplift: float | None
    channels: str = "*"


# Shopping festivals as platforms run them: pre-sale days, then the main day.
_FESTIVALS = (
    Promotion("double11", "Double 11 pre-sale", 10, (31,), 1.8),
    Promotion("double11", "Double 11 pre-sale", 11, (1, 2, 3), 1.8),
    Promotion("double11", "Double 11", 11, (10, 11, 12), 3.0),
    Promotion("618", "618 mid-year sale", 6, (1, 2, 3), 1.6),
    Promotion("618", "618 mid-year sale", 6, (17, 18, 19), 2.5),
    Promotion("double12", "Double 12", 12, (12,), 1.8),
)


def _classify_holiday(name: str) -> str:
    for prefix, cls in _HOLIDAY_CLASSES.items():
        if name.startswith(prefix):
            return cls
    return "public_holiday"


def build_calendar(years: range = range(2025, 2028)) -> pd.DataFrame:
    """Generate the calendar rows for `years` (holidays, make-up workdays, promotions)."""
    rows: list[dict] = []
    cn = holidays.China(years=list(years))
    for day, name in sorted(cn.items()):
        # "Day off (substituted from ...)" belongs to the holiday around it.
        cls = _classify_holiday(name)
        if name.startswith("Day off"):
            near = [cn.get(day + dt.timedelta(days=k)) for k in (-1, 1, -2, 2, -3, 3)]
            cls = next((_classify_holiday(n) for n in near if n and not n.startswith("Day")), cls)
        rows.append(dict(event_date=day, kind="holiday", name=name, promo_class=cls))
    for day in sorted(d for d in getattr(cn, "weekend_workdays", set()) if d.year in years):
        rows.append(dict(event_date=day, kind="makeup_workday", name="Make-up workday", promo_class=""))
    for year in years:
        for promo in _FESTIVALS:
            for d in promo.days:
                rows.append(
                    dict(
                        event_date=dt.date(year, promo.month, d),
                        kind="promotion",
                        name=promo.name,
                        promo_class=promo.promo_class,
                        planned_uplift=promo.planned_uplift,
                        channels=promo.channels,
                    )
                )
        for month in range(1, 13):
            # Monthly member day on the 8th; a Douyin livestream on the 2nd and 4th Saturday.
            rows.append(
                dict(
                    event_date=dt.date(year, month, 8),
                    kind="promotion",
                    name="Member day",
                    promo_class="member_day",
                    planned_uplift=1.3,
                    channels="*",
                )
            )
            saturdays = [
                dt.date(year, month, d) for d in range(1, 29) if dt.date(year, month, d).weekday() == 5
            ]
            for sat in (saturdays[1], saturdays[3]):
                rows.append(
                    dict(
                        event_date=sat,
                        kind="promotion",
                        name="Livestream sale",
                        promo_class="livestream",
                        planned_uplift=2.0,
                        channels="douyin",
                    )
                )
    frame = pd.DataFrame(rows)
    frame["planned_uplift"] = frame.get("planned_uplift")
    frame["channels"] = frame["channels"].fillna("*")
    frame["promo_class"] = frame["promo_class"].fillna("")
    # A promotion on a holiday keeps both rows; duplicates of one kind collapse.
    frame = frame.drop_duplicates(["event_date", "kind", "promo_class", "channels"])
    return frame.sort_values(["event_date", "kind", "name"]).reset_index(drop=True)[COLUMNS]


def write_calendar(path: Path | None = None) -> Path:
    path = path or seeds_dir() / CALENDAR_FILE
    build_calendar().to_csv(path, index=False, float_format="%.2f")
    return path


def load_calendar(path: Path | None = None) -> pd.DataFrame:
    """Read the seed; `event_date` as `datetime.date`, `planned_uplift` float or NaN."""
    frame = pd.read_csv(path or seeds_dir() / CALENDAR_FILE, dtype={"promo_class": str})
    frame["event_date"] = pd.to_datetime(frame["event_date"]).dt.date
    frame["promo_class"] = frame["promo_class"].fillna("")
    frame["channels"] = frame["channels"].fillna("*")
    return frame


def applies_to(channels: str, channel: str) -> bool:
    return channels == "*" or channel in channels.split("|")


if __name__ == "__main__":
    print(write_calendar())
