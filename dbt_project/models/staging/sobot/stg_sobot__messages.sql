-- Sobot 智齿 messages and session events (get_chat_detail). sender_type 0 user, 1 bot
-- (robot_1), 2 agent (sender = staff id), 3 system event (sender `system`) with fixed texts:
-- 转人工 (hand-off), 客服<name>接入会话 (assign), 会话转接给客服<name> (transfer), 会话结束
-- (close), 会话重新开启 (reopen). The log holds the whole timeline, so no rows are synthesised
-- from the session list. Sobot's events name the agent, not the account: agent_account is set
-- on agent messages only. `t` keeps milliseconds. The customer is the user-sent rows' sender
-- (partnerid), carried to every row of the session.
with

source as (
    select * from {{ source("raw_sobot", "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'sobot' as channel,
        {{ json_str("payload", "msgid") }} as platform_message_id,
        {{ json_str("payload", "cid") }} as platform_conversation_id,
        cast({{ json_str("payload", "sender_type") }} as integer) as sender_code,
        {{ json_str("payload", "sender") }} as sender,
        {{ json_str("payload", "msg") }} as msg,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest
),

with_customer as (
    select
        renamed.*,
        max(case when sender_code = 0 then sender end) over (partition by platform_conversation_id) as partnerid
    from renamed
),

final as (
    select
        channel,
        platform_message_id,
        platform_conversation_id,
        {{ hash_id("partnerid", "sobot") }} as customer_key,
        cast(null as varchar) as service_account,
        case sender_code when 0 then 'customer' when 1 then 'bot' when 2 then 'agent' when 3 then 'system' end as sender_type,
        case
            when sender_code <> 3 then null
            when msg = '转人工' then 'handoff'
            when msg like '客服%接入会话' then 'assign'
            when msg like '会话转接给客服%' then 'transfer'
            when msg = '会话结束' then 'close'
            when msg = '会话重新开启' then 'reopen'
        end as event_type,
        case when sender_code = 2 then sender end as agent_account,
        case when sender_code <> 3 then msg end as content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from with_customer
)

select * from final
