-- JD waiters (jingdong.im.pop.groupinfo.get), latest snapshot of each; the shop robot
-- (robot = true) is not an agent and is left out.
with

source as (
    select * from {{ source("raw_jd", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "waiter")) }}
),

final as (
    select
        'jd' as channel,
        {{ json_str("payload", "waiter") }} as agent_account,
        {{ json_str("payload", "nickName") }} as agent_name,
        {{ json_str("payload", "groupName") }} as team,
        _record_time as polled_at,
        _source
    from latest
    where coalesce({{ json_str("payload", "robot") }}, 'false') <> 'true'
        and {{ json_str("payload", "waiter") }} is not null
)

select * from final
