{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from",
        unique_key=["local_date", "channel", "medium", "customer_tier"],
        refresh_column="local_date",
        refresh_grain="day",
        on_schema_change="fail",
        post_hook="update {{ this }} set as_of = {{ as_of() }}",
    )
}}
-- Service by customer value tier: per local day of the conversation's start, channel,
-- medium and the customer's tier at that start (snp_customer_tiers via
-- fct_conversations): volume, customers, complaints, SLA attainment against the tier's
-- own target, FRT and satisfaction. Do VIPs really get served faster?
with

conversations as (
    select * from {{ ref("fct_conversations") }}
    where last_activity_at >= {{ refresh_bound_ts("day") }} or is_unattended
),

aggregated as (
    select
        {{ local_date("coalesce(started_at, queue_start_at)") }} as local_date,
        channel,
        medium,
        customer_tier,
        count(*) as conversations,
        count(distinct person_key) as customers,
        sum(case when topic = 'complaint' then 1 else 0 end) as complaint_conversations,
        sum(case when is_repeat_complainer then 1 else 0 end) as repeat_complainer_conversations,
        sum(case when queue_start_at is not null then 1 else 0 end) as queued,
        count(first_response_at) as answered,
        sum(case when is_abandoned then 1 else 0 end) as abandoned,
        count(sla_breached) as sla_judged,
        sum(case when sla_breached = false then 1 else 0 end) as sla_met,
        min(sla_target_s) as sla_target_min_s,
        max(sla_target_s) as sla_target_max_s,
        {{ round_to("sum(frt_s)", 3) }} / nullif(count(frt_s), 0) as frt_mean_s,
        percentile_cont(0.5) within group (order by frt_s) as frt_p50_s,
        percentile_cont(0.9) within group (order by frt_s) as frt_p90_s,
        count(csat) as rated,
        sum(csat) as csat_sum,
        sum(case when csat >= 4 then 1 else 0 end) as csat_satisfied
    from conversations
    where coalesce(started_at, queue_start_at) is not null
        and {{ in_refresh_window(local_date("coalesce(started_at, queue_start_at)"), "day") }}
    group by {{ local_date("coalesce(started_at, queue_start_at)") }}, channel, medium, customer_tier
),

final as (
    select
        local_date,
        cast(channel as varchar) as channel,
        cast(medium as varchar) as medium,
        cast(customer_tier as varchar) as customer_tier,
        cast(conversations as integer) as conversations,
        cast(customers as integer) as customers,
        cast(complaint_conversations as integer) as complaint_conversations,
        cast(repeat_complainer_conversations as integer) as repeat_complainer_conversations,
        cast(queued as integer) as queued,
        cast(answered as integer) as answered,
        cast(abandoned as integer) as abandoned,
        cast(sla_judged as integer) as sla_judged,
        cast(sla_met as integer) as sla_met,
        cast(sla_met * 1.0 / nullif(sla_judged, 0) as double precision) as sla_pct,
        cast(sla_target_min_s as integer) as sla_target_min_s,
        cast(sla_target_max_s as integer) as sla_target_max_s,
        cast(frt_mean_s as double precision) as frt_mean_s,
        cast(frt_p50_s as double precision) as frt_p50_s,
        cast(frt_p90_s as double precision) as frt_p90_s,
        cast(rated as integer) as rated,
        cast(coalesce(csat_sum, 0) as integer) as csat_sum,
        cast(csat_satisfied as integer) as csat_satisfied,
        cast(csat_satisfied * 1.0 / nullif(rated, 0) as double precision) as csat_pct,
        {{ as_of() }} as as_of
    from aggregated
)

select * from final
