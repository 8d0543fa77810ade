-- Blocks of consecutive customer messages and the human reply that ended each. Bot
-- messages and system events do not break a block (they are not human replies).
with

messages as (
    select * from {{ ref("int_messages_sessionised") }}
    where sender_type in ('customer', 'agent')
),

counted as (
    select
        *,
        sum(case when sender_type = 'agent' then 1 else 0 end) over (
            partition by conversation_id order by message_seq rows unbounded preceding
        ) as agents_so_far
    from messages
),

blocks as (
    select
        conversation_id,
        agents_so_far as block_index,
        min(sent_at) as block_start_at,
        count(*) as customer_messages
    from counted
    where sender_type = 'customer'
    group by conversation_id, agents_so_far
),

replies as (
    select
        conversation_id,
        agents_so_far as reply_index,
        sent_at as replied_at,
        agent_account as replied_by
    from counted
    where sender_type = 'agent'
),

final as (
    select
        blocks.conversation_id,
        row_number() over (partition by blocks.conversation_id order by blocks.block_index) as block_no,
        blocks.block_start_at,
        blocks.customer_messages,
        replies.replied_at,
        replies.replied_by
    from blocks
    left join replies
        on replies.conversation_id = blocks.conversation_id
        and replies.reply_index = blocks.block_index + 1
)

select * from final
