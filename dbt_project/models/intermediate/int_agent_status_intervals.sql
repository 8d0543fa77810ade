-- Agent presence as intervals, every platform (stg_<platform>__agent_status), known at
-- as_of. A row without an end lasts until the account's next row or as_of; so snapshot
-- platforms (a poll saying who is on shift) become "status from this poll to the next".
-- `is_online`: logged in and able to take conversations (online or busy).
with

unioned as (
    {{ union_platforms("agent_status", ["channel", "agent_account", "status", "started_at", "ended_at"],
        empty="select cast(null as varchar) as channel, cast(null as varchar) as agent_account, cast(null as varchar) as status, cast(null as timestamp with time zone) as started_at, cast(null as timestamp with time zone) as ended_at where 1 = 0") }}
),

known as (
    select distinct channel, agent_account, status, started_at, ended_at
    from unioned
    where started_at <= {{ as_of() }} and agent_account is not null
),

sequenced as (
    select
        *,
        lead(started_at) over (partition by channel, agent_account order by started_at, ended_at) as next_started_at
    from known
),

bounded as (
    select
        channel,
        agent_account,
        status,
        started_at,
        coalesce(ended_at, next_started_at, {{ as_of() }}) as open_end_at
    from sequenced
),

final as (
    select
        channel,
        agent_account,
        channel || ':' || agent_account as agent_account_key,
        status,
        status in ('online', 'busy') as is_online,
        started_at,
        case when open_end_at > {{ as_of() }} then {{ as_of() }} else open_end_at end as ended_at
    from bounded
)

select * from final
where ended_at > started_at
