-- Meiqia 美洽 messages and session events (GET /v1/messages, or per conversation). `from`:
-- client | agent | robot | system; system events (type event) carry fixed texts:
-- 访客请求转人工 (hand-off), 客服<nickname>接入对话 (assign), 对话转接给客服<nickname> (transfer),
-- 对话已结束 (close), 对话重新开启 (reopen), with the agent's id on assign, transfer and reopen.
-- The log holds the whole timeline (assignment and end included), so no rows are synthesised
-- from the conversation records. Meiqia's messages name no visitor: the customer comes from
-- the same platform's conversation record (track_id, ent_id), null while a conversation is
-- still open. Times are whole seconds, Asia/Shanghai -> UTC by the loader.
with

source as (
    select * from {{ source("raw_meiqia", "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

conversation_source as (
    select * from {{ source("raw_meiqia", "conversations") }}
),

latest_conversations as (
    {{ latest_version("conversation_source") }}
),

visitors as (
    select
        {{ json_str("payload", "conv_id") }} as conv_id,
        {{ json_str("payload", "track_id") }} as track_id,
        {{ json_str("payload", "ent_id") }} as ent_id
    from latest_conversations
),

renamed as (
    select
        'meiqia' as channel,
        {{ json_str("payload", "id") }} as platform_message_id,
        {{ json_str("payload", "conv_id") }} as platform_conversation_id,
        {{ json_str("payload", "from") }} as sender,
        {{ json_str("payload", "content") }} as content,
        {{ json_str("payload", "agent_id") }} as agent_id,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest
),

classified as (
    select
        renamed.*,
        case
            when sender <> 'system' then null
            when content = '访客请求转人工' then 'handoff'
            when content like '客服%接入对话' then 'assign'
            when content like '对话转接给客服%' then 'transfer'
            when content = '对话已结束' then 'close'
            when content = '对话重新开启' then 'reopen'
        end as event_type
    from renamed
),

final as (
    select
        classified.channel,
        classified.platform_message_id,
        classified.platform_conversation_id,
        {{ hash_id("visitors.track_id", "meiqia") }} as customer_key,
        visitors.ent_id as service_account,
        case classified.sender
            when 'client' then 'customer'
            when 'agent' then 'agent'
            when 'robot' then 'bot'
            when 'system' then 'system'
        end as sender_type,
        classified.event_type,
        case
            when classified.sender = 'agent' then classified.agent_id
            when classified.event_type in ('assign', 'transfer', 'reopen') then classified.agent_id
        end as agent_account,
        case when classified.sender <> 'system' then classified.content end as content,
        classified.sent_at,
        classified._batch_id,
        classified._row_number,
        classified._source
    from classified
    left join visitors on visitors.conv_id = classified.platform_conversation_id
)

select * from final
