"""Knobs of the contact-centre simulation: platforms' behaviour and the demand model.

Everything here is a default; `SimConfig` overrides per run (`csw sandbox generate --help`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

INTERVAL_S = 1800  # one planning interval: 30 minutes
CHANNELS = (
    "taobao",
    "jd",
    "pinduoduo",
    "douyin",
    "wecom",
    "wechat_oa",
    "meiqia",
    "sobot",
    "zendesk",
)
# Platforms that give every conversation an id of their own; the rest are sessionised
# downstream (DESIGN §7), so the simulation never reopens a conversation there.
SESSION_ID_CHANNELS = frozenset(CHANNELS) - {"wecom", "wechat_oa"}


@dataclass(frozen=True)
class ChannelProfile:
    medium: str  # chat | email
    share: float  # share of all contacts
    bot_rate: float  # share of contacts a bot greets first
    bot_deflect: float  # of those, share the bot resolves without a human
    concurrency: int  # conversations one agent handles at once
    patience_mean_s: float  # mean patience in the queue (inf: never abandons)
    rating_rate: float  # share of closed conversations that get rated
    rating_scale: str  # 5 | 3 | 2 point scale the platform shows
    asks_nps: bool
    weekend_factor: float  # weekend volume vs a weekday
    office: bool  # office-hours channel: promotions matter less, holidays close it
    turns_mean: float  # mean agent<->customer exchanges after the first reply
    reply_delay_mean_s: float  # agent's response delay to a customer block
    customer_delay_mean_s: float  # customer's delay before writing again


PROFILES: dict[str, ChannelProfile] = {
    "taobao": ChannelProfile("chat", 0.22, 0.6, 0.30, 3, 240, 0.35, "5", False, 1.10, False, 3.0, 35, 45),
    "jd": ChannelProfile("chat", 0.14, 0.5, 0.25, 3, 240, 0.30, "5", False, 1.10, False, 3.0, 35, 45),
    "pinduoduo": ChannelProfile("chat", 0.12, 0.6, 0.35, 3, 180, 0.25, "5", False, 1.15, False, 2.5, 40, 40),
    "douyin": ChannelProfile("chat", 0.12, 0.5, 0.30, 3, 180, 0.25, "5", False, 1.20, False, 2.5, 40, 40),
    # WeCom: the kf bot (智能助手) greets every session, so queue entry is the visible hand-off event
    "wecom": ChannelProfile("chat", 0.12, 1.0, 0.30, 3, 300, 0.30, "5", False, 1.00, False, 3.0, 40, 50),
    "wechat_oa": ChannelProfile("chat", 0.08, 0.0, 0.0, 3, 300, 0.0, "5", False, 1.00, False, 2.5, 45, 60),
    "meiqia": ChannelProfile("chat", 0.08, 0.3, 0.30, 2, 300, 0.40, "3", False, 0.40, True, 3.5, 30, 45),
    "sobot": ChannelProfile("chat", 0.07, 0.7, 0.40, 2, 300, 0.40, "5", True, 0.40, True, 3.5, 30, 45),
    "zendesk": ChannelProfile(
        "email", 0.05, 0.0, 0.0, 1, float("inf"), 0.25, "2", True, 0.50, True, 1.5, 3600, 6 * 3600
    ),
}

# Hourly arrival weights (Asia/Shanghai hour of day); only open hours are used.
INTRADAY_SHOP = (
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0.5,
    0.9,
    1.2,
    1.2,
    0.8,
    0.9,
    1.0,
    1.0,
    0.9,
    0.8,
    0.8,
    1.0,
    1.3,
    1.5,
    1.3,
    0.8,
)
INTRADAY_OFFICE = (
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    1.0,
    1.3,
    1.2,
    0.7,
    0.9,
    1.2,
    1.2,
    1.0,
    0.8,
    0.5,
    0.4,
    0.3,
    0.3,
    0.2,
    0.1,
)
INTRADAY_EMAIL = (
    0.2,
    0.1,
    0.1,
    0.1,
    0.1,
    0.2,
    0.3,
    0.6,
    1.0,
    1.3,
    1.4,
    1.3,
    1.0,
    1.1,
    1.3,
    1.3,
    1.2,
    1.0,
    0.8,
    0.7,
    0.6,
    0.5,
    0.4,
    0.3,
)
WEEKDAY_FACTOR = (1.05, 1.0, 1.0, 1.0, 0.95)  # Mon..Fri; weekends use the profile

# True effect of calendar events on volume (the calendar's planned_uplift is only a
# manager's guess). Keyed by promo_class, then by event name for multi-stage festivals.
TRUE_UPLIFT = {
    "double11": {"Double 11 pre-sale": 1.9, "Double 11": 3.2},
    "618": {"618 mid-year sale": 2.2},
    "double12": {"Double 12": 1.7},
    "member_day": {"Member day": 1.35},
    "livestream": {"Livestream sale": 2.2},
}
HOLIDAY_FACTOR = {"spring_festival": 0.45, "national_day": 0.8, "public_holiday": 0.9}
OFFICE_PROMO_DAMPING = 0.3  # office channels feel 30 % of a promotion's uplift

TOPICS = ("complaint", "refund", "shipping", "order_change", "promotion", "product", "account", "other")
TOPIC_MIX = (0.06, 0.14, 0.22, 0.08, 0.10, 0.22, 0.06, 0.12)
TOPIC_MIX_PROMO = (0.05, 0.10, 0.25, 0.08, 0.28, 0.14, 0.04, 0.06)


@dataclass(frozen=True)
class SimConfig:
    """One simulated company. Same config and seed, same data."""

    seed: int = 7
    start: dt.date = dt.date(2026, 10, 18)
    days: int = 35
    conversations_per_day: float = 1430.0  # all channels, on a plain weekday
    channels: tuple[str, ...] = CHANNELS
    staffing_factor: float = 1.0  # 1.0 = the roster a decent planner would set
    staffing_beta: float = 0.5  # square-root staffing safety margin
    staffing_noise: float = 0.12  # day-to-day roster error (a share)
    promo_staffing: float = 0.6  # planners add only 60 % of a promotion's extra work
    transfer_rate: float = 0.07
    reopen_rate: float = 0.05
    customers_per_conversation: float = 0.3
    vip_share: float = 0.03
    profiles: dict[str, ChannelProfile] = field(default_factory=lambda: dict(PROFILES))

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days)

    def with_(self, **changes) -> SimConfig:
        return replace(self, **changes)
