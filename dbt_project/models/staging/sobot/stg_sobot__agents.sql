-- Sobot 智齿 staff (get_staff_list), read as a snapshot each run (key: staff id + poll time);
-- the newest snapshot of each is the current name, group and presence (status 1 online).
with

source as (
    select * from {{ source("raw_sobot", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "staff_id")) }}
),

final as (
    select
        'sobot' as channel,
        {{ json_str("payload", "staff_id") }} as agent_account,
        {{ json_str("payload", "staff_name") }} as agent_name,
        {{ json_str("payload", "group_name") }} as team,
        cast({{ json_str("payload", "status") }} as integer) = 1 as is_online,
        _record_time as snapshot_at,
        _source
    from latest
)

select * from final
