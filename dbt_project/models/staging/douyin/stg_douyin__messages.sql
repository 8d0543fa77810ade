-- Douyin Feige 飞鸽 messages and session events from the console's 聊天记录 report.
-- The console shows the session's events as message rows (发送方 系统, 事件 转人工 / 接入 /
-- 转接 / 结束会话 / 重新打开), mapped by the scraper to sender `system` and event
-- handoff | assign | transfer | close | reopen; so the timeline needs no synthesis from
-- the sessions report. Times are whole seconds (the console truncates).
with

source as (
    select * from {{ source("raw_douyin", "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'douyin' as channel,
        {{ json_str("payload", "message_id") }} as platform_message_id,
        {{ json_str("payload", "session_id") }} as platform_conversation_id,
        {{ json_str("payload", "customer_id") }} as customer_id,
        {{ json_str("payload", "sender") }} as sender,
        {{ json_str("payload", "event") }} as event,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "content") }} as content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest
),

final as (
    select
        channel,
        platform_message_id,
        platform_conversation_id,
        {{ hash_id("customer_id", "douyin") }} as customer_key,
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
