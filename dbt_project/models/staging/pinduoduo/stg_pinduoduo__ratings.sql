-- Pinduoduo 多多客服 satisfaction ratings (满意度评价): the customer's 1-5 score, kept raw
-- and mapped to CSAT by the rating_scales seed (`five_point`). Pinduoduo asks no NPS.
with

source as (
    select * from {{ source("raw_pinduoduo", "ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'pinduoduo' as channel,
        {{ json_str("payload", "rating_id") }} as platform_rating_id,
        {{ json_str("payload", "session_id") }} as platform_conversation_id,
        {{ json_str("payload", "customer_id") }} as customer_id,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "rating") }} as rating_raw,
        _record_time as rated_at,
        _source
    from latest
),

final as (
    select
        channel,
        platform_rating_id,
        channel || ':' || platform_conversation_id as conversation_id,
        {{ hash_id("customer_id", "pinduoduo") }} as customer_key,
        agent_account,
        rated_at,
        cast('five_point' as varchar) as rating_scale,
        rating_raw,
        cast(null as integer) as nps,
        _source
    from renamed
)

select * from final
