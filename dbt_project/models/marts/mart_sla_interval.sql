{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from",
        unique_key=["channel", "medium", "interval_start"],
        refresh_column="interval_start",
        refresh_grain="interval",
        on_schema_change="fail",
        post_hook="update {{ this }} set as_of = {{ as_of() }}",
    )
}}
-- Service level per channel, medium and 30-minute interval (every interval from the
-- channel's first data to as_of). Conversations count in the interval of their start
-- (volume) or of their human queue start (queue, answers, FRT, SLA, abandonment).
-- Queue length, agents online and occupancy are time-weighted over the interval:
--   avg_queue_length  = seconds conversations waited for a human in it / its length
--   agents_online     = agent seconds online (or busy) in it / its length
--   occupancy         = agent seconds handling conversations / agent seconds online;
--                       with chat concurrency it can exceed 1 (several chats at once).
with

grid as (
    select * from {{ ref("int_interval_grid") }}
    where {{ in_refresh_window("interval_start", "interval") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
    where last_activity_at >= {{ refresh_bound_ts("interval") }} or is_unattended
),

channels as (
    select * from {{ ref("channels") }}
),

started as (
    select
        channel,
        medium,
        {{ interval_start("started_at") }} as interval_start,
        count(*) as conversations
    from conversations
    where started_at is not null
    group by channel, medium, {{ interval_start("started_at") }}
),

queued as (
    select
        channel,
        medium,
        {{ interval_start("queue_start_at") }} as interval_start,
        {{ sla_queue_measures() }}
    from conversations
    where queue_start_at is not null
    group by channel, medium, {{ interval_start("queue_start_at") }}
),

grid_ms as (
    select channel, medium, interval_start as bucket, {{ ms_of("interval_end") }} as bucket_end_ms
    from grid
),

{{ sla_busy_time_ctes(interval_start, "interval") }},

final as (
    select
        cast(grid.channel as varchar) as channel,
        cast(grid.medium as varchar) as medium,
        grid.interval_start,
        grid.interval_end,
        grid.local_date,
        grid.is_open,
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
        cast(coalesce(wait_time.busy_ms, 0) / 1000.0 as double precision) as queue_wait_s,
        cast(coalesce(wait_time.busy_ms, 0) / 1000.0 / {{ interval_seconds() }} as double precision) as avg_queue_length,
        cast(coalesce(wait_time.active_at_end, 0) as integer) as queue_length_at_end,
        cast(coalesce(online_time.busy_ms, 0) / 1000.0 as double precision) as online_s,
        cast(coalesce(online_time.busy_ms, 0) / 1000.0 / {{ interval_seconds() }} as double precision) as agents_online,
        cast(coalesce(handle_time.busy_ms, 0) / 1000.0 as double precision) as handling_s,
        cast(handle_time.busy_ms * 1.0 / nullif(online_time.busy_ms, 0) as double precision) as occupancy,
        {{ as_of() }} as as_of
    from grid
    left join started
        on started.channel = grid.channel and started.medium = grid.medium and started.interval_start = grid.interval_start
    left join queued
        on queued.channel = grid.channel and queued.medium = grid.medium and queued.interval_start = grid.interval_start
    left join wait_time
        on wait_time.channel = grid.channel and wait_time.medium = grid.medium and wait_time.bucket = grid.interval_start
    left join handle_time
        on handle_time.channel = grid.channel and handle_time.medium = grid.medium and handle_time.bucket = grid.interval_start
    left join online_time
        on online_time.channel = grid.channel and online_time.medium = grid.medium and online_time.bucket = grid.interval_start
)

select * from final
