{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from",
        unique_key=["channel", "medium", "local_date"],
        refresh_column="local_date",
        refresh_grain="day",
        on_schema_change="fail",
        post_hook="update {{ this }} set as_of = {{ as_of() }}",
    )
}}
-- Service level per channel, medium and local day (Asia/Shanghai), computed from the
-- conversations directly, not from mart_sla_interval: the counts and time totals equal
-- the sums of that day's intervals (tests/assert_sla_daily_equals_sum_of_intervals.sql),
-- the percentiles are the day's own.
with

days as (
    select distinct channel, medium, local_date
    from {{ ref("int_interval_grid") }}
    where {{ in_refresh_window("local_date", "day") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
    where last_activity_at >= {{ refresh_bound_ts("day") }} or is_unattended
),

channels as (
    select * from {{ ref("channels") }}
),

started as (
    select channel, medium, {{ local_date("started_at") }} as local_date, count(*) as conversations
    from conversations
    where started_at is not null
    group by channel, medium, {{ local_date("started_at") }}
),

queued as (
    select
        channel,
        medium,
        {{ local_date("queue_start_at") }} as local_date,
        {{ sla_queue_measures() }},
        count(handle_time_s) as handled,
        {{ round_to("sum(handle_time_s)", 3) }} / nullif(count(handle_time_s), 0) as aht_s
    from conversations
    where queue_start_at is not null
    group by channel, medium, {{ local_date("queue_start_at") }}
),

grid_ms as (
    select
        channel,
        medium,
        local_date as bucket,
        {{ ms_of(local_to_utc("cast(" ~ dbt.dateadd("day", 1, "local_date") ~ " as " ~ dbt.type_timestamp() ~ ")")) }} as bucket_end_ms
    from days
),

{{ sla_busy_time_ctes(local_date, "day") }},

final as (
    select
        cast(days.channel as varchar) as channel,
        cast(days.medium as varchar) as medium,
        days.local_date,
        cast(coalesce(started.conversations, 0) as integer) as conversations,
        cast(coalesce(queued.queued, 0) as integer) as queued,
        cast(coalesce(queued.answered, 0) as integer) as answered,
        cast(coalesce(queued.abandoned, 0) as integer) as abandoned,
        cast(coalesce(queued.unattended, 0) as integer) as unattended,
        cast(queued.frt_mean_s as double precision) as frt_mean_s,
        cast(queued.frt_p50_s as double precision) as frt_p50_s,
        cast(queued.frt_p90_s as double precision) as frt_p90_s,
        cast(coalesce(queued.sla_judged, 0) as integer) as sla_judged,
        cast(coalesce(queued.sla_met, 0) as integer) as sla_met,
        cast(queued.sla_met * 1.0 / nullif(queued.sla_judged, 0) as double precision) as sla_pct,
        cast(queued.abandoned * 1.0 / nullif(queued.queued, 0) as double precision) as abandon_rate,
        cast(coalesce(queued.handled, 0) as integer) as handled,
        cast(queued.aht_s as double precision) as aht_s,
        cast(coalesce(wait_time.busy_ms, 0) / 1000.0 as double precision) as queue_wait_s,
        cast(coalesce(online_time.busy_ms, 0) / 1000.0 as double precision) as online_s,
        cast(coalesce(handle_time.busy_ms, 0) / 1000.0 as double precision) as handling_s,
        cast(handle_time.busy_ms * 1.0 / nullif(online_time.busy_ms, 0) as double precision) as occupancy,
        {{ as_of() }} as as_of
    from days
    left join started
        on started.channel = days.channel and started.medium = days.medium and started.local_date = days.local_date
    left join queued
        on queued.channel = days.channel and queued.medium = days.medium and queued.local_date = days.local_date
    left join wait_time
        on wait_time.channel = days.channel and wait_time.medium = days.medium and wait_time.bucket = days.local_date
    left join handle_time
        on handle_time.channel = days.channel and handle_time.medium = days.medium and handle_time.bucket = days.local_date
    left join online_time
        on online_time.channel = days.channel and online_time.medium = days.medium and online_time.bucket = days.local_date
)

select * from final
