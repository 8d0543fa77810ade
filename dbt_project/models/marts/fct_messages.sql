-- One row per message or session event, every platform, as of as_of: who sent it, which
-- conversation and response block it belongs to, and for the human reply that ended a
-- block, how long that block waited (the per-block response times behind fct_conversations'
-- ART). Free text stays out (it can carry phone numbers); its length is kept.
with

messages as (
    select * from {{ ref("int_messages_sessionised") }}
),

conversations as (
    select conversation_id, queue_start_at from {{ ref("fct_conversations") }}
),

-- blocks of consecutive customer messages, as in int_response_blocks: a block is the
-- customer messages between two human replies (bots and system events do not break it)
talk as (
    select
        message_key,
        conversation_id,
        sender_type,
        sent_at,
        sum(case when sender_type = 'agent' then 1 else 0 end) over (
            partition by conversation_id order by message_seq rows unbounded preceding
        ) as agents_so_far,
        lag(sender_type) over (partition by conversation_id order by message_seq) as previous_sender
    from messages
    where sender_type in ('customer', 'agent')
),

blocks as (
    select
        conversation_id,
        agents_so_far as block_index,
        row_number() over (partition by conversation_id order by agents_so_far) as block_no,
        min(sent_at) as block_start_at
    from talk
    where sender_type = 'customer'
    group by conversation_id, agents_so_far
),

customer_blocks as (
    select talk.message_key, blocks.block_no
    from talk
    inner join blocks
        on blocks.conversation_id = talk.conversation_id and blocks.block_index = talk.agents_so_far
    where talk.sender_type = 'customer'
),

-- the first human reply after a block answers it
replies as (
    select talk.message_key, blocks.block_no, blocks.block_start_at
    from talk
    inner join blocks
        on blocks.conversation_id = talk.conversation_id and blocks.block_index = talk.agents_so_far - 1
    where talk.sender_type = 'agent' and talk.previous_sender = 'customer'
),

final as (
    select
        messages.message_key,
        messages.conversation_id,
        cast(messages.channel as varchar) as channel,
        cast(messages.message_seq as integer) as message_seq,
        messages.sent_at,
        cast(messages.sender_type as varchar) as sender_type,
        cast(messages.event_type as varchar) as event_type,
        cast(messages.agent_account as varchar) as agent_account,
        messages.customer_key,
        cast(coalesce(customer_blocks.block_no, replies.block_no) as integer) as block_no,
        replies.message_key is not null as is_block_reply,
        cast(case when replies.message_key is not null then {{ seconds_between(
            block_wait_start("replies.block_no", "replies.block_start_at", "conversations.queue_start_at", "messages.sent_at"),
            "messages.sent_at") }} end as double precision) as response_s,
        cast({{ dbt.length("coalesce(messages.content, '')") }} as integer) as content_chars,
        {{ as_of() }} as as_of
    from messages
    left join customer_blocks on customer_blocks.message_key = messages.message_key
    left join replies on replies.message_key = messages.message_key
    left join conversations on conversations.conversation_id = messages.conversation_id
)

select * from final
