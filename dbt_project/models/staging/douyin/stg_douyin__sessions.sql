-- Douyin Feige 飞鸽 conversations from the console's 会话记录 report, as the console shows
-- them at the newest read: hand-off, assignment, first response, first close, the
-- console's own wait and FRT seconds, status and rating. Not unioned into the canonical
-- model (the message log carries the same timeline); kept to reconcile the warehouse's
-- metrics with what the console reports.
with

source as (
    select * from {{ source("raw_douyin", "sessions") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'douyin' as channel,
        {{ json_str("payload", "session_id") }} as platform_conversation_id,
        {{ json_str("payload", "customer_id") }} as customer_id,
        {{ json_str("payload", "agent_account") }} as agent_account,
        _record_time as started_at,
        cast({{ json_str("payload", "handoff_at") }} as timestamp with time zone) as handoff_at,
        cast({{ json_str("payload", "assigned_at") }} as timestamp with time zone) as assigned_at,
        cast({{ json_str("payload", "first_response_at") }} as timestamp with time zone) as first_response_at,
        cast({{ json_str("payload", "closed_at") }} as timestamp with time zone) as first_closed_at,
        cast({{ json_str("payload", "wait_s") }} as integer) as wait_s,
        cast({{ json_str("payload", "frt_s") }} as integer) as frt_s,
        {{ json_str("payload", "status") }} as status,
        {{ json_str("payload", "rating") }} as rating_raw,
        _extracted_at,
        _batch_id,
        _source
    from latest
),

final as (
    select
        channel,
        channel || ':' || platform_conversation_id as conversation_id,
        platform_conversation_id,
        {{ hash_id("customer_id", "douyin") }} as customer_key,
        agent_account,
        started_at,
        handoff_at,
        assigned_at,
        first_response_at,
        first_closed_at,
        wait_s,
        frt_s,
        status,
        rating_raw,
        _extracted_at,
        _batch_id,
        _source
    from renamed
)

select * from final
