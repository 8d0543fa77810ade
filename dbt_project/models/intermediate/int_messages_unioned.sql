-- Every platform's messages and session events in one canonical shape, as known at
-- as_of. sender_type: customer | agent | bot | system; event_type on system rows:
-- handoff | assign | transfer | close | reopen.
-- Incremental: a run adds the rows of batches it has not seen (new messages and newer
-- versions of old ones, which replace them by message_key) and the rows as_of now
-- reaches; `_built_at` (the run's start) tells int_messages_sessionised what changed.
{{ config(materialized="incremental", unique_key="message_key", incremental_strategy="delete+insert") }}
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
        *,
        {{ run_started() }} as _built_at
    from unioned
    where sent_at <= {{ as_of() }}
    {%- if is_incremental() %}
        and (
            _batch_id not in (select distinct _batch_id from {{ this }})
            or sent_at > (select max(sent_at) from {{ this }})
        )
    {%- endif %}
)

select * from final
