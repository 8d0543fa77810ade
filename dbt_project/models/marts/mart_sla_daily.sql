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
        count(*) as queued,
        count(first_response_at) as answered,
        sum(case when is_abandoned then 1 else 0 end) as abandoned,
        sum(case when is_unattended then 1 else 0 end) as unattended,
        count(sla_breached) as sla_judged,
        sum(case when sla_breached = false then 1 else 0 end) as sla_met,
        {{ round_to("sum(frt_s)", 3) }} / nullif(count(frt_s), 0) as frt_mean_s,
        percentile_cont(0.5) within group (order by frt_s) as frt_p50_s,
        percentile_cont(0.9) within group (order by frt_s) as frt_p90_s,
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

wait_spans as (
    select
        channel,
        medium,
        greatest(queue_start_at, {{ refresh_bound_ts("day") }}) as span_from,
        coalesce(assigned_at, first_resolution_at, {{ as_of() }}) as span_to
    from conversations
    where queue_start_at is not null
),

handle_spans as (
    select
        channel,
        medium,
        greatest(assigned_at, {{ refresh_bound_ts("day") }}) as span_from,
        {{ dbt.dateadd("millisecond", "cast(round(handle_time_s * 1000) as bigint)", "assigned_at") }} as span_to
    from conversations
    where handle_time_s is not null and assigned_at is not null
),

online_spans as (
    select
        status.channel,
        channels.medium,
        greatest(status.started_at, {{ refresh_bound_ts("day") }}) as span_from,
        status.ended_at as span_to
    from {{ ref("int_agent_status_intervals") }} as status
    inner join channels on channels.channel = status.channel
    where status.is_online and status.ended_at > {{ refresh_bound_ts("day") }}
),

{% for name in ["wait", "handle", "online"] %}
{{ name }}_cut as (
    select
        channel,
        medium,
        {{ local_date("span_from") }} as start_bucket,
        {{ local_date("span_to") }} as end_bucket,
        {{ ms_of("span_from") }} as from_ms,
        {{ ms_of("span_to") }} as to_ms
    from {{ name }}_spans
    where span_to > span_from
),

{{ name }}_time as (
    {{ time_weighted(name ~ "_cut", "grid_ms", ["channel", "medium"]) }}
),
{% endfor %}

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
