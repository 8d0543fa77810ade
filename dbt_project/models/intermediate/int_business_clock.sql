-- A running business clock per channel: for every local day (open or not), the business
-- seconds the channel was open before that day (`open_s_before`) and the day's opening
-- hours. Business seconds between a and b are then clock(b) - clock(a), two equality
-- look-ups instead of a range scan of all opening hours (macro business_seconds_between);
-- for a <= b this equals the sum of the opening hours' overlaps with [a, b].
with

days as (
    {{ dbt.date_spine("day", "cast('2024-01-01' as date)", "cast('2029-01-01' as date)") }}
),

channels as (
    select distinct channel from {{ ref("channels") }}
    union
    select distinct channel from {{ ref("business_hours") }}
),

hours as (
    select * from {{ ref("int_business_hours") }}
),

channel_days as (
    select
        channels.channel,
        cast(days.date_day as date) as local_date,
        hours.open_at,
        hours.close_at,
        coalesce({{ seconds_between("hours.open_at", "hours.close_at") }}, 0) as open_s
    from channels
    cross join days
    left join hours on hours.channel = channels.channel and hours.local_date = cast(days.date_day as date)
),

final as (
    select
        channel,
        local_date,
        open_at,
        close_at,
        coalesce(sum(open_s) over (
            partition by channel order by local_date rows between unbounded preceding and 1 preceding
        ), 0) as open_s_before
    from channel_days
)

select * from final
