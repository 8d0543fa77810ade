-- Taobao / Tmall Qianniu chat messages (wangwang.eservice.chatlog.get), one row per message.
-- chatlog shows chat only: no hand-off, assignment or close events (Qianniu reports none),
-- so the timeline has no system rows. direction 1 is the buyer; direction 0 is the account
-- the chat is filed under: a sub-account (`cntaobao<shop>:<sub>`) is an agent, the main
-- account (`cntaobao<shop>`) is the shop bot 店小蜜, which speaks as the main account.
-- The conversation is the sandbox's `session_id` extension (the real API has none).
-- No message id either: the platform id is a hash of the record key (buyer, time,
-- direction, content). Times are whole seconds, GMT+8 on the wire, UTC here.
with

source as (
    select * from {{ source("raw_taobao", "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'taobao' as channel,
        _record_key as record_key,
        {{ json_str("payload", "session_id") }} as session_id,
        {{ json_str("payload", "from_id") }} as from_id,
        {{ json_str("payload", "to_id") }} as to_id,
        cast({{ json_str("payload", "direction") }} as integer) as direction,
        {{ json_str("payload", "content") }} as content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest
),

nicks as (
    select
        *,
        case when from_id like 'cntaobao%' then substr(from_id, 9) else from_id end as account_nick,
        case when to_id like 'cntaobao%' then substr(to_id, 9) else to_id end as buyer_nick
    from renamed
),

final as (
    select
        channel,
        {{ dbt.hash("record_key") }} as platform_message_id,
        session_id as platform_conversation_id,
        {{ hash_id("buyer_nick", "taobao") }} as customer_key,
        {{ dbt.split_part("account_nick", "':'", 1) }} as service_account,
        case
            when direction = 1 then 'customer'
            when {{ dbt.position("':'", "account_nick") }} > 0 then 'agent'
            else 'bot'
        end as sender_type,
        cast(null as varchar) as event_type,
        case when direction = 0 and {{ dbt.position("':'", "account_nick") }} > 0 then account_nick end as agent_account,
        content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from nicks
)

select * from final
