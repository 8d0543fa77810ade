-- Meiqia 美洽 agents (GET /v1/agents), read as a snapshot each run (key: agent id + poll
-- time); the newest snapshot of each agent is its current nickname, group and presence.
with

source as (
    select * from {{ source("raw_meiqia", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "agent_id")) }}
),

final as (
    select
        'meiqia' as channel,
        {{ json_str("payload", "agent_id") }} as agent_account,
        {{ json_str("payload", "nickname") }} as agent_name,
        {{ json_str("payload", "group_name") }} as team,
        {{ json_str("payload", "status") }} = 'online' as is_online,
        _record_time as snapshot_at,
        _source
    from latest
)

select * from final
