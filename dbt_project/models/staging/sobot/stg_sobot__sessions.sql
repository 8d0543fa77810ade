-- Sobot 智齿 sessions (get_chat_list), the newest version of each: a session changes until it
-- closes (end_time 0 and end_time_str "" while open; first_response_seconds 0 when no agent
-- replied, staff_id "" when no agent took it).
with

source as (
    select * from {{ source("raw_sobot", "sessions") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "cid") }} as cid,
        {{ json_str("payload", "partnerid") }} as partnerid,
        nullif({{ json_str("payload", "staff_id") }}, '') as staff_id,
        cast({{ json_str("payload", "robot_flag") }} as integer) as robot_flag,
        cast({{ json_str("payload", "transfer_flag") }} as integer) as transfer_flag,
        cast({{ json_str("payload", "end_time") }} as bigint) as end_time_ms,
        cast({{ json_str("payload", "first_response_seconds") }} as integer) as first_response_seconds,
        _record_time as started_at,
        _source
    from latest
),

final as (
    select
        'sobot' as channel,
        cid as platform_conversation_id,
        'sobot:' || cid as conversation_id,
        {{ hash_id("partnerid", "sobot") }} as customer_key,
        staff_id as agent_account,
        robot_flag = 1 as bot_first,
        transfer_flag = 1 as handed_off,
        started_at,
        case when end_time_ms > 0 then to_timestamp(end_time_ms / 1000.0) end as ended_at,
        case when staff_id is not null and first_response_seconds > 0 then first_response_seconds end as first_response_s,
        _source
    from renamed
)

select * from final
