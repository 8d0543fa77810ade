-- Taobao sub-account presence from the login log (wangwang.eservice.loginlogs.get): type "0"
-- login, "1" logout. A login opens an `online` interval ended by the next logout; a logout
-- opens an `offline` interval ended by the next login. An interval still open has no end.
with

source as (
    select * from {{ source("raw_taobao", "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

events as (
    select
        {{ json_str("payload", "user_id") }} as user_id,
        {{ json_str("payload", "type") }} as event_type,
        _record_time as event_at,
        _source
    from latest
),

ordered as (
    select
        *,
        lead(event_at) over (partition by user_id order by event_at, event_type) as next_at
    from events
),

final as (
    select
        'taobao' as channel,
        case when user_id like 'cntaobao%' then substr(user_id, 9) else user_id end as agent_account,
        case event_type when '0' then 'online' else 'offline' end as status,
        event_at as started_at,
        next_at as ended_at,
        _source
    from ordered
    where event_type in ('0', '1')
)

select * from final
