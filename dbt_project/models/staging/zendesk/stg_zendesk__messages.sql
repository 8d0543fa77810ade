-- Zendesk messages: the ticket comments (customer and agent e-mails) and the ticket's events
-- as system rows. Zendesk's comments hold no events and a ticket's record shows only its
-- current state, so the events come from the ticket audits (Incremental Ticket Event
-- Export): a `Change` of `assignee_id` from none is an assign, from another agent a transfer;
-- a `Change` of `status` to solved/closed is a close, from solved/closed back to
-- new/open/pending/hold a reopen. An audit may hold many children; the first
-- `zendesk_max_child_events` (var, default 50) are read. A comment is an agent's when its
-- author is a known agent user (users.json), else the customer's (requester or CC). Console
-- rows (fallback) say the author role themselves; their event rows are skipped, since the
-- ticket events re-deliver that timeline once the API is back. Times are whole seconds.
{%- set max_children = var("zendesk_max_child_events", 50) %}
with

comment_source as (
    select * from {{ source("raw_zendesk", "messages") }}
),

comments as (
    {{ latest_version("comment_source") }}
),

audit_source as (
    select * from {{ source("raw_zendesk", "ticket_events") }}
),

audits as (
    {{ latest_version("audit_source") }}
),

agent_source as (
    select * from {{ source("raw_zendesk", "agents") }}
),

tickets as (
    select * from {{ ref("stg_zendesk__tickets") }}
),

agent_users as (
    select distinct {{ json_str("payload", "id") }} as user_id
    from agent_source
),

positions as (
    select child_no
    from (
        values {% for i in range(max_children) %}({{ i }}){% if not loop.last %}, {% endif %}{% endfor %}
    ) as child_positions (child_no)
),

-- comments ------------------------------------------------------------------------------
comment_rows as (
    select
        {{ json_str("payload", "id") }} as platform_message_id,
        {{ json_str("payload", "ticket_id") }} as ticket_id,
        {{ json_str("payload", "author_id") }} as author_id,
        {{ json_str("payload", "sender") }} as console_sender,
        {{ json_str("payload", "agent_account") }} as console_agent_account,
        {{ json_str("payload", "body") }} as content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from comments
),

classified_comments as (
    select
        comment_rows.platform_message_id,
        comment_rows.ticket_id,
        case
            when comment_rows.console_sender is not null then comment_rows.console_sender
            when agent_users.user_id is not null then 'agent'
            else 'customer'
        end as sender_type,
        cast(null as varchar) as event_type,
        case
            when comment_rows.console_sender = 'agent' then comment_rows.console_agent_account
            when comment_rows.console_sender is null and agent_users.user_id is not null then comment_rows.author_id
        end as agent_account,
        comment_rows.content,
        comment_rows.sent_at,
        comment_rows._batch_id,
        comment_rows._row_number,
        comment_rows._source
    from comment_rows
    left join agent_users on agent_users.user_id = comment_rows.author_id
    where comment_rows.console_sender is null or comment_rows.console_sender in ('customer', 'agent')
),

-- ticket events -------------------------------------------------------------------------
audit_rows as (
    select
        {{ json_str("payload", "ticket_id") }} as ticket_id,
        payload -> 'child_events' as child_events,
        {{ json_array_len("payload -> 'child_events'") }} as child_count,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from audits
),

children as (
    select
        audit_rows.ticket_id,
        positions.child_no,
        audit_rows.child_events -> positions.child_no as child,
        audit_rows.sent_at,
        audit_rows._batch_id,
        audit_rows._row_number,
        audit_rows._source
    from audit_rows
    inner join positions on positions.child_no < audit_rows.child_count
),

changes as (
    select
        ticket_id,
        child_no,
        {{ json_str("child", "id") }} as child_id,
        {{ json_str("child", "event_type") }} as child_type,
        {{ json_str("child", "assignee_id") }} as assignee_id,
        {{ json_str("child", "status") }} as status,
        coalesce({{ json_str("child", "previous_value") }}, '') as previous_value,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from children
),

events as (
    select
        *,
        case
            when assignee_id is not null and child_type in ('Create', 'Change') and previous_value = '' then 'assign'
            when assignee_id is not null and child_type = 'Change' and previous_value <> assignee_id then 'transfer'
            when child_type = 'Change' and status in ('solved', 'closed') and previous_value not in ('solved', 'closed') then 'close'
            when child_type = 'Change' and status in ('new', 'open', 'pending', 'hold') and previous_value in ('solved', 'closed') then 'reopen'
        end as event_type
    from changes
),

-- a reopen names the agent holding the ticket then: the latest assignment up to it
reopen_holders as (
    select child_id, assignee_id
    from (
        select
            reopens.child_id,
            assignments.assignee_id,
            row_number() over (
                partition by reopens.child_id
                order by assignments.sent_at desc, assignments._batch_id desc, assignments._row_number desc, assignments.child_no desc
            ) as holder_rank
        from events as reopens
        inner join events as assignments
            on assignments.ticket_id = reopens.ticket_id
            and assignments.event_type in ('assign', 'transfer')
            and assignments.sent_at <= reopens.sent_at
        where reopens.event_type = 'reopen'
    ) as ranked
    where holder_rank = 1
),

event_rows as (
    select
        events.child_id as platform_message_id,
        events.ticket_id,
        'system' as sender_type,
        events.event_type,
        case
            when events.event_type in ('assign', 'transfer') then events.assignee_id
            when events.event_type = 'reopen' then reopen_holders.assignee_id
        end as agent_account,
        cast(null as varchar) as content,
        events.sent_at,
        events._batch_id,
        events._row_number,
        events._source
    from events
    left join reopen_holders on reopen_holders.child_id = events.child_id
    where events.event_type is not null
),

unioned as (
    select * from classified_comments
    union all
    select * from event_rows
),

final as (
    select
        'zendesk' as channel,
        unioned.platform_message_id,
        unioned.ticket_id as platform_conversation_id,
        tickets.customer_key,
        tickets.service_account,
        unioned.sender_type,
        unioned.event_type,
        unioned.agent_account,
        unioned.content,
        unioned.sent_at,
        unioned._batch_id,
        unioned._row_number,
        unioned._source
    from unioned
    left join tickets on tickets.ticket_id = unioned.ticket_id
)

select * from final
