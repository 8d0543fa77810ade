{#- The console-only platforms (Douyin Feige, Pinduoduo) share one admin-console
    report format, so their staging models share these bodies; each model is one call. -#}

{% macro console_messages(platform) -%}
with

source as (
    select * from {{ source("raw_" ~ platform, "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

parsed as (
    {{ with_json_fields("latest", "payload", {
        "message_id": "message_id",
        "session_id": "session_id",
        "customer_id": "customer_id",
        "sender": "sender",
        "event": "event",
        "agent_account": "agent_account",
        "content": "content",
    }) }}
),

renamed as (
    select
        '{{ platform }}' as channel,
        message_id as platform_message_id,
        session_id as platform_conversation_id,
        customer_id,
        sender,
        event,
        agent_account,
        content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from parsed
),

final as (
    select
        channel,
        platform_message_id,
        platform_conversation_id,
        {{ hash_id("customer_id", platform) }} as customer_key,
        cast(null as varchar) as service_account,
        sender as sender_type,
        case when sender = 'system' then event end as event_type,
        case
            when sender = 'agent' then agent_account
            when sender = 'system' and event in ('assign', 'transfer', 'reopen') then agent_account
        end as agent_account,
        case when sender <> 'system' then content end as content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from renamed
)

select * from final
{%- endmacro %}

{% macro console_ratings(platform) -%}
with

source as (
    select * from {{ source("raw_" ~ platform, "ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        '{{ platform }}' as channel,
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
        {{ hash_id("customer_id", platform) }} as customer_key,
        agent_account,
        rated_at,
        cast('five_point' as varchar) as rating_scale,
        rating_raw,
        cast(null as integer) as nps,
        _source
    from renamed
)

select * from final
{%- endmacro %}

{% macro console_agents(platform) -%}
with

source as (
    select * from {{ source("raw_" ~ platform, "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "agent_account")) }}
),

final as (
    select
        '{{ platform }}' as channel,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "nickname") }} as agent_name,
        {{ json_str("payload", "team") }} as team,
        {{ json_str("payload", "online") }} = 'online' as is_online,
        _record_time as snapshot_at,
        _source
    from latest
)

select * from final
{%- endmacro %}

{% macro console_agent_status(platform) -%}
with

source as (
    select * from {{ source("raw_" ~ platform, "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        '{{ platform }}' as channel,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "status") }} as status,
        _record_time as started_at,
        cast({{ json_str("payload", "ended_at") }} as timestamp with time zone) as ended_at,
        _source
    from latest
)

select * from final
{%- endmacro %}

{% macro console_sessions(platform) -%}
with

source as (
    select * from {{ source("raw_" ~ platform, "sessions") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        '{{ platform }}' as channel,
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
        {{ hash_id("customer_id", platform) }} as customer_key,
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
{%- endmacro %}
