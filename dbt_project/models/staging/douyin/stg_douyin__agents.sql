-- Douyin Feige 飞鸽 agent accounts (客服列表). The console list is read as a snapshot each
-- run (key: account + snapshot time); the newest snapshot of each account is its current
-- name, team and presence. An account that left the list keeps its last snapshot.
with

source as (
    select * from {{ source("raw_douyin", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "agent_account")) }}
),

final as (
    select
        'douyin' as channel,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "nickname") }} as agent_name,
        {{ json_str("payload", "team") }} as team,
        {{ json_str("payload", "online") }} = 'online' as is_online,
        _record_time as snapshot_at,
        _source
    from latest
)

select * from final
