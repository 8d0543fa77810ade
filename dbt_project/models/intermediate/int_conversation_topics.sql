-- The topic of each conversation: the first matching rule of the topic-keyword seed (by
-- priority) on the customer's first message; conversations without a match are absent
-- here (fct_conversations says `other`). A model of its own so that customer value tiers
-- (complaint history) can use topics before fct_conversations joins the tiers.
with

first_customer_message as (
    select conversation_id, lower(content) as content_lower
    from (
        select
            conversation_id,
            content,
            row_number() over (partition by conversation_id order by message_seq) as customer_message_no
        from {{ ref("int_messages_sessionised") }}
        where sender_type = 'customer'
    ) as customer_messages
    where customer_message_no = 1
),

keywords as (
    select topic, priority, lower(keyword) as keyword_lower
    from {{ ref("topic_keywords") }}
),

matches as (
    select
        first_customer_message.conversation_id,
        keywords.topic,
        row_number() over (partition by first_customer_message.conversation_id order by keywords.priority, keywords.topic) as match_rank
    from first_customer_message
    inner join keywords
        on {{ dbt.position("keywords.keyword_lower", "first_customer_message.content_lower") }} > 0
),

final as (
    select conversation_id, topic
    from matches
    where match_rank = 1
)

select * from final
