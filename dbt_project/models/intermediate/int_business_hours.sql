-- Each channel's opening hours on each local day, as UTC instants. A day is a holiday
-- when the calendar says so, a weekday on make-up workdays, a weekend on Sat/Sun;
-- a channel without hours for that day type is closed.
with

days as (
    {{ dbt.date_spine("day", "cast('2024-01-01' as date)", "cast('2029-01-01' as date)") }}
),

calendar as (
    select * from {{ ref("calendar_events") }}
),

hours as (
    select * from {{ ref("business_hours") }}
),

day_types as (
    select
        cast(days.date_day as date) as local_date,
        case
            when exists (select 1 from calendar where calendar.event_date = cast(days.date_day as date) and calendar.kind = 'holiday') then 'holiday'
            when exists (select 1 from calendar where calendar.event_date = cast(days.date_day as date) and calendar.kind = 'makeup_workday') then 'weekday'
            when extract(dow from days.date_day) in (0, 6) then 'weekend'
            else 'weekday'
        end as day_type
    from days
),

opening as (
    select
        hours.channel,
        day_types.local_date,
        day_types.day_type,
        cast({{ dbt.split_part("hours.open_time", "':'", 1) }} as integer) * 60
            + cast({{ dbt.split_part("hours.open_time", "':'", 2) }} as integer) as open_minute,
        cast({{ dbt.split_part("hours.close_time", "':'", 1) }} as integer) * 60
            + cast({{ dbt.split_part("hours.close_time", "':'", 2) }} as integer) as close_minute
    from day_types
    inner join hours on hours.day_type = day_types.day_type
),

final as (
    select
        channel,
        local_date,
        day_type,
        {{ local_to_utc(dbt.dateadd("minute", "open_minute", "cast(local_date as " ~ dbt.type_timestamp() ~ ")")) }} as open_at,
        {{ local_to_utc(dbt.dateadd("minute", "close_minute", "cast(local_date as " ~ dbt.type_timestamp() ~ ")")) }} as close_at
    from opening
)

select * from final
