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
-- The forecasting input: per channel, medium and 30-minute interval, conversations
-- offered and handled and their average handle time. Zero-filled: every interval from
-- the channel's first data to as_of has a row (is_open says whether it is in opening
-- hours). Volume counts conversations by their start; queue, answers and AHT by the
-- human queue start, as Erlang staffing needs them.
with

grid as (
    select * from {{ ref("int_interval_grid") }}
    where {{ in_refresh_window("interval_start", "interval") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
    where last_activity_at >= {{ refresh_bound_ts("interval") }} or is_unattended
),

started as (
    select
        channel,
        medium,
        {{ interval_start("started_at") }} as interval_start,
        count(*) as conversations,
        sum(case when bot_involved then 1 else 0 end) as bot_conversations
    from conversations
    where started_at is not null
    group by channel, medium, {{ interval_start("started_at") }}
),

queued as (
    select
        channel,
        medium,
        {{ interval_start("queue_start_at") }} as interval_start,
        count(*) as queued,
        count(first_response_at) as answered,
        count(handle_time_s) as handled,
        {{ round_to("sum(handle_time_s)", 3) }} as handle_time_sum_s
    from conversations
    where queue_start_at is not null
    group by channel, medium, {{ interval_start("queue_start_at") }}
),

final as (
    select
        cast(grid.channel as varchar) as channel,
        cast(grid.medium as varchar) as medium,
        grid.interval_start,
        grid.interval_end,
        grid.local_date,
        grid.is_open,
        cast(coalesce(started.conversations, 0) as integer) as conversations,
        cast(coalesce(started.bot_conversations, 0) as integer) as bot_conversations,
        cast(coalesce(queued.queued, 0) as integer) as queued,
        cast(coalesce(queued.answered, 0) as integer) as answered,
        cast(coalesce(queued.handled, 0) as integer) as handled,
        cast(coalesce(queued.handle_time_sum_s, 0) as double precision) as handle_time_sum_s,
        cast(queued.handle_time_sum_s / nullif(queued.handled, 0) as double precision) as aht_s,
        {{ as_of() }} as as_of
    from grid
    left join started
        on started.channel = grid.channel and started.medium = grid.medium and started.interval_start = grid.interval_start
    left join queued
        on queued.channel = grid.channel and queued.medium = grid.medium and queued.interval_start = grid.interval_start
)

select * from final
