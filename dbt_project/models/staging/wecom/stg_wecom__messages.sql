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

parsed as (
    {{ with_json_fields("latest", "payload", {
        "msgid": "msgid",
        "external_userid": "external_userid",
        "event_external_userid": "event.external_userid",
        "open_kfid": "open_kfid",
        "event_open_kfid": "event.open_kfid",
        "origin": "origin",
        "change_type": "event.change_type",
        "servicer_userid": "servicer_userid",
        "new_servicer_userid": "event.new_servicer_userid",
        "content": "text.content",
    }) }}
),

renamed as (
    select
        'wecom' as channel,
        msgid as platform_message_id,
        cast(null as varchar) as platform_conversation_id,
        coalesce(external_userid, event_external_userid) as customer_id,
        coalesce(open_kfid, event_open_kfid) as service_account,
        cast(origin as integer) as origin,
        cast(change_type as integer) as change_type,
        servicer_userid,
        new_servicer_userid,
        content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from parsed
),

final as (
    select
        renamed.channel,
        renamed.platform_message_id,
        renamed.platform_conversation_id,
        {{ hash_id("renamed.customer_id", "wecom") }} as customer_key,
        renamed.service_account,
        case renamed.origin when 3 then 'customer' when 5 then 'agent' when 4 then 'system' end as sender_type,
        case when renamed.origin = 4 then
            case renamed.change_type when 0 then 'handoff' when 1 then 'assign' when 2 then 'transfer' when 3 then 'close' when 4 then 'reopen' end
        end as event_type,
        case
            when renamed.origin = 5 then renamed.servicer_userid
            when renamed.origin = 4 and renamed.change_type in (1, 2, 4) then renamed.new_servicer_userid
        end as agent_account,
        renamed.content,
        renamed.sent_at,
        renamed._batch_id,
        renamed._row_number,
        renamed._source
    from renamed
)

select * from final
