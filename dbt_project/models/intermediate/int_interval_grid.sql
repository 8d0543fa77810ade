-- Every 30-minute planning interval of every channel that has data, from its first
-- activity (a conversation or agent status) to the interval holding as_of, open or not,
-- with `is_open` (the interval overlaps the channel's opening hours that local day).
-- Interval marts are zero-filled on this grid.
with

days as (
    {{ dbt.date_spine("day", "cast('2024-01-01' as date)", "cast('2029-01-01' as date)") }}
),

slots as (
    {{ dbt.generate_series(24 * 60 // var("interval_minutes", 30)) }}
),

activity as (
    select channel, least(started_at, queue_start_at, assigned_at, first_response_at) as active_at
    from {{ ref("fct_conversations") }}
    union all
    select channel, started_at as active_at
    from {{ ref("int_agent_status_intervals") }}
),

ranges as (
    select channel, {{ interval_start("min(active_at)") }} as first_interval
    from activity
    where active_at is not null
    group by channel
),

intervals as (
    select
        to_timestamp({{ epoch_s("cast(days.date_day as " ~ dbt.type_timestamp() ~ ")") }} + (slots.generated_number - 1) * {{ interval_seconds() }}) as interval_start
    from days
    cross join slots
),

channels as (
    select * from {{ ref("channels") }}
),

grid as (
    select
        ranges.channel,
        channels.medium,
        intervals.interval_start,
        {{ dbt.dateadd("second", interval_seconds(), "intervals.interval_start") }} as interval_end
    from ranges
    inner join channels on channels.channel = ranges.channel
    inner join intervals
        on intervals.interval_start >= ranges.first_interval
        and intervals.interval_start <= {{ as_of() }}
),

final as (
    select
        grid.channel,
        grid.medium,
        grid.interval_start,
        grid.interval_end,
        {{ local_date("grid.interval_start") }} as local_date,
        coalesce(clock.open_at < grid.interval_end and clock.close_at > grid.interval_start, false) as is_open
    from grid
    left join {{ ref("int_business_clock") }} as clock
        on clock.channel = grid.channel and clock.local_date = {{ local_date("grid.interval_start") }}
)

select * from final
