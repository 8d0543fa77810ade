-- Every platform's messages and session events in one canonical shape, as known at
-- as_of. sender_type: customer | agent | bot | system; event_type on system rows:
-- handoff | assign | transfer | close | reopen.
with

unioned as (
    {{ union_platforms("messages", [
        "channel", "platform_message_id", "platform_conversation_id", "customer_key", "service_account",
        "sender_type", "event_type", "agent_account", "content", "sent_at", "_batch_id", "_row_number"
    ]) }}
),

final as (
    select
        channel || ':' || platform_message_id as message_key,
        *
    from unioned
    where sent_at <= {{ as_of() }}
)

select * from final
