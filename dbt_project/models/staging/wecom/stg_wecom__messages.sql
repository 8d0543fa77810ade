-- WeCom 微信客服 messages (kf/sync_msg): origin 3 customer, 4 session event, 5 servicer.
-- No conversation id: sessions are cut downstream (int_messages_sessionised). The
-- hand-off is the sandbox's change_type 0; 1 assign, 2 transfer, 3 close, 4 reopen.
with

source as (
    select * from {{ source("raw_wecom", "messages") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        'wecom' as channel,
        {{ json_str("payload", "msgid") }} as platform_message_id,
        cast(null as varchar) as platform_conversation_id,
        {{ hash_id("coalesce(" ~ json_str("payload", "external_userid") ~ ", " ~ json_str("payload", "event.external_userid") ~ ")", "wecom") }} as customer_key,
        coalesce({{ json_str("payload", "open_kfid") }}, {{ json_str("payload", "event.open_kfid") }}) as service_account,
        cast({{ json_str("payload", "origin") }} as integer) as origin,
        cast({{ json_str("payload", "event.change_type") }} as integer) as change_type,
        {{ json_str("payload", "servicer_userid") }} as servicer_userid,
        {{ json_str("payload", "event.new_servicer_userid") }} as new_servicer_userid,
        {{ json_str("payload", "text.content") }} as content,
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
        customer_key,
        service_account,
        case origin when 3 then 'customer' when 5 then 'agent' when 4 then 'system' end as sender_type,
        case when origin = 4 then
            case change_type when 0 then 'handoff' when 1 then 'assign' when 2 then 'transfer' when 3 then 'close' when 4 then 'reopen' end
        end as event_type,
        case when origin = 5 then servicer_userid when origin = 4 and change_type in (1, 2, 4) then new_servicer_userid end as agent_account,
        content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from renamed
)

select * from final
