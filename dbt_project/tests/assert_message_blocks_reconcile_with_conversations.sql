-- fct_messages and fct_conversations agree on response blocks: per conversation, the
-- replies' response times are never negative, their mean is the conversation's ART, and
-- the replied blocks count is the same.
with

replies as (
    select
        conversation_id,
        avg(response_s) as art_s,
        count(*) as replied_blocks,
        min(response_s) as min_response_s
    from {{ ref("fct_messages") }}
    where is_block_reply
    group by conversation_id
)

select conversations.conversation_id, conversations.art_s, replies.art_s as messages_art_s
from {{ ref("fct_conversations") }} as conversations
left join replies on replies.conversation_id = conversations.conversation_id
where coalesce(replies.replied_blocks, 0) <> coalesce(conversations.replied_blocks, 0)
    or abs(coalesce(replies.art_s, -1) - coalesce(conversations.art_s, -1)) > 0.001
    or replies.min_response_s < 0
