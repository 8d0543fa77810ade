-- One row per conversation: its timeline as the platform shows it at as_of.
-- Human queue start = the hand-off when a bot answered first, else the first customer
-- message; a bot conversation with no hand-off was never queued for a human.
with

messages as (
    select * from {{ ref("int_messages_sessionised") }}
),

channels as (
    select * from {{ ref("channels") }}
),

timeline as (
    select
        conversation_id,
        channel,
        max(customer_key) as customer_key,
        max(service_account) as service_account,
        min(case when sender_type = 'customer' then sent_at end) as started_at,
        min(sent_at) as first_event_at,
        min(case when event_type = 'handoff' then sent_at end) as handoff_at,
        max(case when sender_type = 'bot' then 1 else 0 end) as has_bot_message,
        min(case when event_type = 'assign' then sent_at end) as assigned_event_at,
        min(case when event_type = 'close' then sent_at end) as first_closed_at,
        max(case when event_type = 'close' then message_seq end) as last_close_seq,
        max(case when event_type = 'close' then sent_at end) as last_closed_at,
        max(case when event_type = 'reopen' then message_seq end) as last_reopen_seq,
        sum(case when event_type = 'reopen' then 1 else 0 end) as reopen_count,
        sum(case when event_type = 'transfer' then 1 else 0 end) as transfer_events,
        sum(case when sender_type = 'agent' then 1 else 0 end) as agent_messages,
        sum(case when sender_type = 'customer' then 1 else 0 end) as customer_messages,
        count(distinct case when sender_type = 'agent' then agent_account end) as agents_involved
    from messages
    group by conversation_id, channel
),

queued as (
    select
        timeline.*,
        channels.medium,
        channels.bot_greets_every_session,
        case
            when timeline.handoff_at is not null then timeline.handoff_at
            when channels.bot_greets_every_session then null
            when timeline.has_bot_message = 1 and timeline.agent_messages = 0 then null
            else timeline.started_at
        end as queue_start_at,
        (timeline.has_bot_message = 1 or channels.bot_greets_every_session) as bot_involved
    from timeline
    inner join channels on channels.channel = timeline.channel
),

first_reply as (
    select conversation_id, replied_at as first_response_at, replied_by as first_agent_account
    from {{ ref("int_response_blocks") }}
    where block_no = 1 and replied_at is not null
),

agent_changes as (
    select conversation_id, sum(changed) as agent_changes
    from (
        select
            conversation_id,
            case when lag(agent_account) over (partition by conversation_id order by message_seq) <> agent_account then 1 else 0 end as changed
        from messages
        where sender_type = 'agent'
    ) as agent_messages
    group by conversation_id
),

handled as (
    select
        queued.conversation_id,
        max(messages.sent_at) as handle_end_at
    from queued
    inner join first_reply on first_reply.conversation_id = queued.conversation_id
    inner join messages
        on messages.conversation_id = queued.conversation_id
        and messages.sender_type = 'agent'
        and messages.agent_account = first_reply.first_agent_account
        and messages.sent_at <= queued.first_closed_at
    group by queued.conversation_id
),

final as (
    select
        queued.conversation_id,
        queued.channel,
        queued.medium,
        queued.customer_key,
        queued.service_account,
        queued.started_at,
        queued.bot_involved,
        queued.handoff_at,
        queued.queue_start_at,
        coalesce(queued.assigned_event_at, first_reply.first_response_at) as assigned_at,
        first_reply.first_response_at,
        first_reply.first_agent_account,
        case
            when queued.last_close_seq is not null and queued.last_close_seq > coalesce(queued.last_reopen_seq, 0) then 'closed'
            else 'open'
        end as status,
        queued.first_closed_at,
        queued.last_closed_at,
        queued.reopen_count,
        case when queued.transfer_events > 0 then queued.transfer_events else coalesce(agent_changes.agent_changes, 0) end as transfer_count,
        queued.agents_involved,
        queued.agent_messages,
        queued.customer_messages,
        case
            when queued.first_closed_at is not null and first_reply.first_response_at is not null
                then {{ seconds_between("coalesce(queued.assigned_event_at, first_reply.first_response_at)", "handled.handle_end_at") }}
        end as handle_time_s
    from queued
    left join first_reply on first_reply.conversation_id = queued.conversation_id
    left join agent_changes on agent_changes.conversation_id = queued.conversation_id
    left join handled on handled.conversation_id = queued.conversation_id
)

select * from final
