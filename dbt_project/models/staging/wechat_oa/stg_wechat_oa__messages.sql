-- WeChat Official Account 客服 chat records (getmsglist). Records carry no id and no session
-- id: sessions are cut downstream (int_messages_sessionised) at a close (1004) or an idle gap.
-- The message id is md5(openid|time|opercode|text), the record's identity without `worker`
-- (a label: the agent holding the session), so a record re-labelled with another worker is
-- the same message (the newest copy is kept). opercode: 2003 客服收到消息 / 2001 公众号收到消息
-- customer, 2002 客服发送消息 agent, 1000 创建未接入会话 hand-off, 1001 接入会话 / 1002 主动发起会话
-- / 1005 抢接会话 assign, 1003 转接会话 transfer, 1004 关闭会话 close. WeChat has no reopen (a
-- customer writing after a close opens a new session). Openids are per official account; the
-- account itself is the `wechat_oa_service_account` var. Times are whole seconds.
with

source as (
    select * from {{ source("raw_wechat_oa", "messages") }}
),

keyed as (
    select
        *,
        {{ dbt.hash(
            "coalesce(" ~ json_str("payload", "openid") ~ ", '') || '|' || coalesce(" ~ json_str("payload", "time")
            ~ ", '') || '|' || coalesce(" ~ json_str("payload", "opercode") ~ ", '') || '|' || coalesce("
            ~ json_str("payload", "text") ~ ", '')"
        ) }} as platform_message_id
    from source
),

latest as (
    {{ latest_version("keyed", key="platform_message_id") }}
),

renamed as (
    select
        platform_message_id,
        {{ json_str("payload", "openid") }} as openid,
        cast({{ json_str("payload", "opercode") }} as integer) as opercode,
        nullif({{ json_str("payload", "worker") }}, '') as worker,
        {{ json_str("payload", "text") }} as text,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest
),

final as (
    select
        'wechat_oa' as channel,
        platform_message_id,
        cast(null as varchar) as platform_conversation_id,
        {{ hash_id("openid", "wechat_oa") }} as customer_key,
        cast('{{ var("wechat_oa_service_account", "official_account") }}' as varchar) as service_account,
        case
            when opercode in (2001, 2003) then 'customer'
            when opercode = 2002 then 'agent'
            when opercode between 1000 and 1999 then 'system'
        end as sender_type,
        case opercode
            when 1000 then 'handoff'
            when 1001 then 'assign'
            when 1002 then 'assign'
            when 1005 then 'assign'
            when 1003 then 'transfer'
            when 1004 then 'close'
        end as event_type,
        case when opercode in (2002, 1001, 1002, 1003, 1005) then worker end as agent_account,
        case when opercode in (2001, 2002, 2003) then text end as content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from renamed
    where opercode in (1000, 1001, 1002, 1003, 1004, 1005, 2001, 2002, 2003)
)

select * from final
