-- Meiqia 美洽 conversation records (对话记录, GET /v1/conversations): one row per conversation
-- that has ended, its newest version (a later rating or a reopen-and-close changes it).
with

source as (
    select * from {{ source("raw_meiqia", "conversations") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        'meiqia' as channel,
        {{ json_str("payload", "conv_id") }} as platform_conversation_id,
        'meiqia:' || {{ json_str("payload", "conv_id") }} as conversation_id,
        {{ hash_id(json_str("payload", "track_id"), "meiqia") }} as customer_key,
        {{ json_str("payload", "ent_id") }} as service_account,
        {{ json_str("payload", "agent_id") }} as agent_account,
        {{ json_str("payload", "agent_group_id") }} as agent_group_id,
        {{ local_to_utc("cast(" ~ json_str("payload", "conv_start_tm") ~ " as " ~ dbt.type_timestamp() ~ ")") }} as started_at,
        _record_time as ended_at,
        cast({{ json_str("payload", "conv_first_resp_wait_in_secs") }} as integer) as first_response_wait_s,
        cast({{ json_str("payload", "comment_level") }} as integer) as comment_level,
        _source
    from latest
)

select * from final
