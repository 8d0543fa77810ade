"""Mart suites: what the marts must satisfy before a snapshot is published.

One suite per mart (`mart.<name>`), plus `mart.freshness`:

- ranges: times in seconds (FRT, ART, handle and resolution times) >= 0, CSAT within 1-5,
  NPS within its scale, shares and rates within 0-1, counts >= 0;
- codes: channel, topic and rating scale from the seeds (read at validation time, so editing
  a seed does not need a new suite), medium and status from DESIGN §7;
- consistency: replied blocks <= blocks, business seconds <= calendar seconds, nothing after
  `as_of`, and the mart built as of the gate's `as_of`;
- row counts do not collapse versus the last passing run (at most `MAX_ROW_DROP` fewer);
- `mart.freshness`: each stream's newest loaded batch is within its declared freshness of
  `as_of`, and each channel's newest activity in the marts is within that budget of the newest
  raw record of its platform (raw data the marts do not show yet).

Every checked column must exist (the marts have dbt contracts, so a rename shows here too). A
mart that does not exist in the warehouse yet is skipped with a note. A spec marked
`provisional` (column names not settled yet) skips its missing columns with a note instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MAX_ROW_DROP = 0.5  # a mart losing more than half its rows since the last passing run fails
FRESHNESS_BUDGET = {
    "real_time": dt.timedelta(hours=2),
    "hourly": dt.timedelta(hours=3),
    "d_plus_1": dt.timedelta(days=2),
}
FRESHNESS_SUITE = "mart.freshness"


@dataclass(frozen=True)
class Col:
    name: str
    min: float | None = None
    max: float | None = None
    values: tuple = ()
    values_param: str | None = None  # value set from a seed, passed at validation time
    not_null: bool = False
    identifier: bool = False
    not_after_as_of: bool = False


@dataclass(frozen=True)
class MartSpec:
    name: str
    columns: tuple[Col, ...]
    pairs: tuple[tuple[str, str, str], ...] = ()  # (a, b, words): a >= b where both are set
    provisional: bool = False
    as_of_column: str | None = None
    activity_columns: tuple[str, ...] = ()  # their max per channel = the mart's newest data
    note: str = ""


def _seconds(*names: str) -> tuple[Col, ...]:
    return tuple(Col(n, min=0) for n in names)


def _share(*names: str) -> tuple[Col, ...]:
    return tuple(Col(n, min=0, max=1) for n in names)


def _when(*names: str, not_null: bool = False) -> tuple[Col, ...]:
    return tuple(Col(n, not_after_as_of=True, not_null=not_null) for n in names)


CHANNEL = Col("channel", values_param="channels", not_null=True)
MEDIUM = Col("medium", values=("chat", "email", "phone"))
LOCAL_DATE = Col("local_date", not_null=True)
BUILT = Col("as_of", not_null=True)
STAMPED = Col("as_of", not_null=True, not_after_as_of=True)  # incremental: the build that last wrote a row
FRT = ("frt_mean_s", "frt_p50_s", "frt_p90_s")

MARTS: tuple[MartSpec, ...] = (
    MartSpec(
        "fct_conversations",
        (
            Col("conversation_id", not_null=True, identifier=True),
            CHANNEL,
            Col("medium", values=("chat", "email", "phone"), not_null=True),
            Col("customer_key", identifier=True),
            Col("person_key", identifier=True),
            Col("customer_tier", not_null=True),
            Col("topic", values_param="topics", not_null=True),
            Col("status", values=("open", "closed"), not_null=True),
            *_when("started_at", not_null=True),
            Col("bot_involved", not_null=True),
            *_when("handoff_at", "queue_start_at", "assigned_at", "first_response_at"),
            *_seconds("frt_s", "frt_business_s", "art_s"),
            *_seconds("response_blocks", "replied_blocks", "next_response_breaches"),
            *_seconds("handle_time_s"),
            *_when("first_resolution_at", "resolved_at", "last_activity_at"),
            *_seconds("resolution_s", "first_resolution_s", "reopen_count"),
            Col("is_abandoned", not_null=True),
            Col("is_unattended", not_null=True),
            Col("is_bot_resolved", not_null=True),
            *_seconds("transfer_count", "agents_involved"),
            Col("sla_target_s", min=1, not_null=True),
            Col("sla_uses_business_hours", not_null=True),
            Col("csat", min=1, max=5),
            Col("nps", min=0, max=10),
            Col("rating_scale", values_param="rating_scales"),
            *_when("rated_at"),
            BUILT,
        ),
        pairs=(
            ("response_blocks", "replied_blocks", "replied blocks <= response blocks"),
            ("frt_s", "frt_business_s", "FRT in business seconds <= FRT in calendar seconds"),
            ("resolution_s", "first_resolution_s", "resolution time >= first resolution time"),
            ("last_activity_at", "started_at", "last activity not before the start"),
        ),
        as_of_column="as_of",
        activity_columns=("last_activity_at", "started_at", "first_response_at", "resolved_at", "rated_at"),
        note="one row per conversation with every service metric (DESIGN §7)",
    ),
    MartSpec(
        "mart_sla_interval",
        (
            CHANNEL,
            MEDIUM,
            *_when("interval_start", not_null=True),
            *_seconds(
                "conversations", "queued", "answered", "abandoned", "unattended", "sla_judged", "sla_met"
            ),
            *_seconds(*FRT, "queue_wait_s", "avg_queue_length", "queue_length_at_end"),
            *_seconds("online_s", "agents_online", "handling_s", "occupancy"),
            *_share("sla_pct", "abandon_rate"),
            STAMPED,
        ),
        pairs=(
            ("interval_end", "interval_start", "interval end after its start"),
            ("queued", "answered", "answered <= queued"),
            ("queued", "abandoned", "abandoned <= queued"),
            ("sla_judged", "sla_met", "SLA met <= SLA judged"),
            ("frt_p90_s", "frt_p50_s", "FRT p90 >= p50"),
        ),
        activity_columns=("interval_start",),
        note="channel x 30-minute interval: volume, FRT p50/p90/mean, % within SLA, abandonment, queue",
    ),
    MartSpec(
        "mart_sla_daily",
        (
            CHANNEL,
            MEDIUM,
            LOCAL_DATE,
            *_seconds(
                "conversations", "queued", "answered", "abandoned", "unattended", "sla_judged", "sla_met"
            ),
            *_seconds(*FRT, "handled", "aht_s", "queue_wait_s", "online_s", "handling_s", "occupancy"),
            *_share("sla_pct", "abandon_rate"),
            STAMPED,
        ),
        pairs=(
            ("queued", "answered", "answered <= queued"),
            ("sla_judged", "sla_met", "SLA met <= SLA judged"),
            ("frt_p90_s", "frt_p50_s", "FRT p90 >= p50"),
        ),
    ),
    MartSpec(
        "mart_satisfaction",
        (
            CHANNEL,
            MEDIUM,
            LOCAL_DATE,
            Col("topic", values_param="topics"),
            *_seconds("conversations", "frt_sum_s", "eligible", "rated", "csat_sum", "csat_satisfied"),
            *_seconds("csat_dissatisfied", "nps_responses", "nps_promoters", "nps_detractors"),
            *_share("csat_pct", "response_rate"),
            Col("csat_mean", min=1, max=5),
            Col("nps", min=-100, max=100),
            STAMPED,
        ),
        pairs=(
            ("rated", "csat_satisfied", "satisfied <= rated"),
            ("nps_responses", "nps_promoters", "promoters <= NPS answers"),
        ),
        note="CSAT (share of 4-5 and mean score), response rate, NPS by channel, agent, topic and FRT band",
    ),
    MartSpec(
        "mart_volume_interval",
        (
            CHANNEL,
            MEDIUM,
            *_when("interval_start", not_null=True),
            *_seconds("conversations", "bot_conversations", "queued", "answered", "handled"),
            *_seconds("handle_time_sum_s", "aht_s"),
            STAMPED,
        ),
        pairs=(
            ("interval_end", "interval_start", "interval end after its start"),
            ("conversations", "bot_conversations", "bot conversations <= conversations"),
            ("queued", "answered", "answered <= queued"),
            ("answered", "handled", "handled <= answered"),
        ),
        activity_columns=("interval_start",),
        note="the forecast input",
    ),
    MartSpec(
        "mart_agent_performance",
        (
            LOCAL_DATE,
            Col("agent_id", not_null=True),
            CHANNEL,
            *_seconds(
                "conversations_answered", *FRT, "sla_judged", "sla_met", "handled", "handle_time_sum_s"
            ),
            *_seconds(
                "aht_s", "transferred", "rated", "csat_sum", "csat_satisfied", "online_s", "handling_s"
            ),
            Col("occupancy", min=0),
            *_share("sla_pct", "csat_pct"),
            Col("csat_mean", min=1, max=5),
            STAMPED,
        ),
        pairs=(
            ("sla_judged", "sla_met", "SLA met <= SLA judged"),
            ("rated", "csat_satisfied", "satisfied <= rated"),
        ),
    ),
    MartSpec(
        "mart_value_tier",
        (
            LOCAL_DATE,
            CHANNEL,
            MEDIUM,
            Col("customer_tier", not_null=True),
            *_seconds(
                "conversations", "customers", "complaint_conversations", "repeat_complainer_conversations"
            ),
            *_seconds("queued", "answered", "abandoned", "sla_judged", "sla_met", "sla_target_min_s"),
            *_seconds(*FRT, "rated", "csat_sum", "csat_satisfied"),
            *_share("sla_pct", "csat_pct"),
            STAMPED,
        ),
        pairs=(
            ("sla_target_max_s", "sla_target_min_s", "largest SLA target >= smallest"),
            ("conversations", "complaint_conversations", "complaint conversations <= conversations"),
        ),
    ),
    MartSpec(
        "dim_agents",
        (
            Col("agent_account_key", not_null=True),
            CHANNEL,
            Col("agent_account", not_null=True),
            Col("agent_id", not_null=True),
            *_when("first_seen_at", "last_seen_at"),
            *_seconds("conversations_answered"),
            BUILT,
        ),
        pairs=(("last_seen_at", "first_seen_at", "last seen not before first seen"),),
        as_of_column="as_of",
    ),
    MartSpec(
        "dim_customers",
        (
            Col("person_key", not_null=True, identifier=True),
            Col("value_tier", values=("vip", "high", "medium", "new", "low"), not_null=True),
            *_seconds("tier_versions", "recency_days", "tenure_days", "orders_365d", "monetary_365d"),
            *_seconds(
                "lifetime_orders", "lifetime_value", "complaints_90d", "platform_identities", "channels"
            ),
            *_seconds("conversations", "complaint_conversations"),
            *_when("first_order_at", "last_order_at", "last_conversation_at"),
            BUILT,
        ),
        pairs=(
            ("lifetime_orders", "orders_365d", "lifetime orders >= orders in 365 days"),
            ("lifetime_value", "monetary_365d", "lifetime value >= value in 365 days"),
            ("conversations", "complaint_conversations", "complaint conversations <= conversations"),
        ),
        as_of_column="as_of",
    ),
)
MARTS_BY_NAME = {m.name: m for m in MARTS}


def suite_name(mart: str) -> str:
    return f"mart.{mart}"


def referenced_columns(spec: MartSpec) -> list[str]:
    names = [c.name for c in spec.columns] + [n for a, b, _ in spec.pairs for n in (a, b)]
    return list(dict.fromkeys(names))


def expectations(spec: MartSpec) -> list:
    import great_expectations.expectations as gxe

    hidden = {"identifier": True}
    out: list = []
    if not spec.provisional:
        out += [
            gxe.ExpectColumnToExist(column=c, description=f"`{c}` is in the mart (its contract)")
            for c in referenced_columns(spec)
        ]
    out.append(
        gxe.ExpectTableRowCountToBeBetween(
            min_value={"$PARAMETER": "min_rows"},
            description=f"rows do not collapse: at most {MAX_ROW_DROP:.0%} fewer than at the last passing run",
        )
    )
    for c in spec.columns:
        meta = hidden if c.identifier else {}
        if c.not_null:
            out.append(
                gxe.ExpectColumnValuesToNotBeNull(column=c.name, description=f"`{c.name}` is set", meta=meta)
            )
        if c.identifier:
            continue
        if c.values or c.values_param:
            value_set = list(c.values) if c.values else {"$PARAMETER": c.values_param}
            source = f" (seed: {c.values_param})" if c.values_param else ""
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=c.name, value_set=value_set, description=f"`{c.name}` is a known code{source}"
                )
            )
        if c.min is not None or c.max is not None:
            words = {
                (0, None): "is not negative",
                (0, 1): "is a share within 0-1",
                (1, 5): "is within 1-5",
            }.get(
                (c.min, c.max),
                f"is within {c.min if c.min is not None else '-inf'}..{c.max if c.max is not None else 'inf'}",
            )
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c.name, min_value=c.min, max_value=c.max, description=f"`{c.name}` {words}"
                )
            )
        if c.not_after_as_of:
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c.name,
                    max_value={"$PARAMETER": "as_of"},
                    description=f"`{c.name}` is not after as_of",
                )
            )
    for a, b, words in spec.pairs:
        out.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a,
                column_B=b,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                description=words,
            )
        )
    if spec.as_of_column:
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=spec.as_of_column,
                min_value={"$PARAMETER": "built_as_of"},
                max_value={"$PARAMETER": "built_as_of"},
                description="the mart was built as of the gate's as_of (not a stale build)",
            )
        )
    return out


def freshness_expectations() -> list:
    import great_expectations.expectations as gxe

    budgets = ", ".join(f"{k} {v}" for k, v in FRESHNESS_BUDGET.items())
    return [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="budget_s",
            column_B="lag_s",
            or_equal=True,
            description=f"every stream and channel is within its declared freshness ({budgets})",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="freshness",
            value_set=list(FRESHNESS_BUDGET),
            description="every stream declares a known freshness",
        ),
    ]


def suite_meta(spec: MartSpec) -> dict:
    return {"mart": spec.name, "provisional": spec.provisional, "note": spec.note}
