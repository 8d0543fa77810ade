-- Messages with their conversation. Platforms with a session id use it; the others
-- (WeCom, WeChat) are split per customer and service account at a session-end event or
-- an idle gap longer than var('session_gap_minutes') (DESIGN §7). Ties within one
-- second keep the platform's delivery order (batch, row).
-- Two window passes over the messages: the first orders each thread (previous message,
-- row number), the second carries each session's first row forward; a session's
-- conversation id is its first message's id, and message_seq the row within it. The
-- windows see only the columns they need; the rest is joined back by message_key.
-- Incremental: a conversation depends only on its thread's messages, so a run recomputes
-- the whole threads that received new or changed messages (and the threads those
-- messages were in before) and replaces their rows by message_key.
{{ config(materialized="incremental", unique_key="message_key", incremental_strategy="delete+insert") }}
with

unioned as (
    select
        *,
        coalesce(platform_conversation_id, customer_key || '|' || coalesce(service_account, '')) as thread_key
    from {{ ref("int_messages_unioned") }}
),

{% if is_incremental() -%}
changed as (
    select message_key, channel, thread_key
    from unioned
    where _built_at > (select max(_source_built_at) from {{ this }})
),

touched_threads as (
    select channel, thread_key from changed
    union
    select previous.channel, previous.thread_key
    from {{ this }} as previous
    inner join changed on changed.message_key = previous.message_key
),

{% endif -%}
messages as (
    select
        unioned.message_key,
        unioned.channel,
        unioned.thread_key,
        unioned.platform_message_id,
        unioned.platform_conversation_id,
        unioned.event_type,
        unioned.sent_at,
        unioned._batch_id,
        unioned._row_number,
        channels.has_conversation_id
    from unioned
    inner join {{ ref("channels") }} as channels on channels.channel = unioned.channel
    {%- if is_incremental() %}
    inner join touched_threads
        on touched_threads.channel = unioned.channel
        and touched_threads.thread_key = unioned.thread_key
    {%- endif %}
),

with_previous as (
    select
        *,
        lag(sent_at) over thread as previous_at,
        lag(event_type) over thread as previous_event,
        row_number() over thread as thread_row
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
        max(case when starts_session = 1 then thread_row end) over (
            partition by channel, thread_key order by thread_row rows unbounded preceding
        ) as session_start_row
    from flagged
),

session_starts as (
    select channel, thread_key, thread_row, platform_message_id
    from flagged
    where starts_session = 1
),

keyed as (
    select
        numbered.message_key,
        case
            when numbered.has_conversation_id then numbered.channel || ':' || numbered.platform_conversation_id
            else numbered.channel || ':s:' || session_starts.platform_message_id
        end as conversation_id,
        case
            when numbered.has_conversation_id then numbered.thread_row
            else numbered.thread_row - numbered.session_start_row + 1
        end as message_seq,
        numbered.thread_key
    from numbered
    left join session_starts
        on session_starts.channel = numbered.channel
        and session_starts.thread_key = numbered.thread_key
        and session_starts.thread_row = numbered.session_start_row
),

final as (
    select
        unioned.message_key,
        keyed.conversation_id,
        unioned.channel,
        unioned.platform_message_id,
        unioned.customer_key,
        unioned.service_account,
        unioned.sender_type,
        unioned.event_type,
        unioned.agent_account,
        unioned.content,
        unioned.sent_at,
        keyed.message_seq,
        keyed.thread_key,
        unioned._built_at as _source_built_at
    from {{ ref("int_messages_unioned") }} as unioned
    inner join keyed on keyed.message_key = unioned.message_key
)

select * from final
