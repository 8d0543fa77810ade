-- Zendesk agent users (users.json, role agent / admin), read as a snapshot each run; the
-- newest version of each user id is the current name. Zendesk groups need the Groups API
-- for their names, so `team` is left to the agent_accounts seed.
with

source as (
    select * from {{ source("raw_zendesk", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "id")) }}
),

final as (
    select
        'zendesk' as channel,
        {{ json_str("payload", "id") }} as agent_account,
        {{ json_str("payload", "name") }} as agent_name,
        cast(null as varchar) as team,
        {{ json_str("payload", "role") }} as role,
        cast({{ json_str("payload", "active") }} as boolean) as is_active,
        _record_time as updated_at,
        _source
    from latest
)

select * from final
