-- Messages with their conversation. Platforms with a session id use it; the others
-- (WeCom, WeChat) are split per customer and service account at a session-end event or
-- an idle gap longer than var('session_gap_minutes') (DESIGN §7). Ties within one
-- second keep the platform's delivery order (batch, row).
with

messages as (
    select
        messages.*,
        channels.has_conversation_id,
        coalesce(messages.platform_conversation_id, messages.customer_key || '|' || coalesce(messages.service_account, '')) as thread_key
    from {{ ref("int_messages_unioned") }} as messages
    inner join {{ ref("channels") }} as channels on channels.channel = messages.channel
),

with_previous as (
    select
        *,
        lag(sent_at) over thread as previous_at,
        lag(event_type) over thread as previous_event
    from messages
    window thread as (partition by channel, thread_key order by sent_at, _batch_id, _row_number)
),

flagged as (
    select
        *,
        case
            when has_conversation_id then 0
            when previous_at is null then 1
            when previous_event = 'close' then 1
            when {{ seconds_between("previous_at", "sent_at") }} > {{ var("session_gap_minutes") }} * 60 then 1
            else 0
        end as starts_session
    from with_previous
),

numbered as (
    select
        *,
        sum(starts_session) over (
            partition by channel, thread_key order by sent_at, _batch_id, _row_number rows unbounded preceding
        ) as session_no
    from flagged
),

keyed as (
    select
        *,
        case
            when has_conversation_id then channel || ':' || platform_conversation_id
            else channel || ':s:' || first_value(platform_message_id) over (
                partition by channel, thread_key, session_no order by sent_at, _batch_id, _row_number
            )
        end as conversation_id
    from numbered
),

final as (
    select
        message_key,
        conversation_id,
        channel,
        platform_message_id,
        customer_key,
        service_account,
        sender_type,
        event_type,
        agent_account,
        content,
        sent_at,
        row_number() over (partition by conversation_id order by sent_at, _batch_id, _row_number) as message_seq
    from keyed
)

select * from final
