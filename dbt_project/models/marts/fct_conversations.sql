-- One row per conversation with every service metric (DESIGN §7), computed against
-- as_of. Calendar seconds and, where the SLA policy says so, business seconds.
with

conversations as (
    select * from {{ ref("int_conversations_enriched") }}
),

blocks as (
    select * from {{ ref("int_response_blocks") }}
),

ratings as (
    select * from {{ ref("int_ratings_unioned") }}
),

policies as (
    select * from {{ ref("sla_policies") }}
),

first_customer_message as (
    select messages.conversation_id, messages.content
    from {{ ref("int_messages_sessionised") }} as messages
    inner join (
        select conversation_id, min(message_seq) as message_seq
        from {{ ref("int_messages_sessionised") }}
        where sender_type = 'customer'
        group by conversation_id
    ) as firsts on firsts.conversation_id = messages.conversation_id and firsts.message_seq = messages.message_seq
),

topics as (
    select conversation_id, topic
    from (
        select
            first_customer_message.conversation_id,
            keywords.topic,
            row_number() over (partition by first_customer_message.conversation_id order by keywords.priority, keywords.topic) as match_rank
        from first_customer_message
        inner join {{ ref("topic_keywords") }} as keywords
            on {{ dbt.position("lower(keywords.keyword)", "lower(first_customer_message.content)") }} > 0
    ) as matches
    where match_rank = 1
),

tiered as (
    select
        conversations.*,
        cast('{{ var("default_tier") }}' as varchar) as customer_tier
    from conversations
),

with_policy as (
    select
        tiered.*,
        policies.frt_target_s as sla_target_s,
        policies.next_response_target_s,
        policies.use_business_hours as sla_uses_business_hours
    from tiered
    inner join (
        select
            tiered.conversation_id,
            policies.frt_target_s,
            policies.next_response_target_s,
            policies.use_business_hours,
            row_number() over (
                partition by tiered.conversation_id
                order by (case when policies.channel = tiered.channel then 2 else 0 end)
                    + (case when policies.tier = tiered.customer_tier then 1 else 0 end) desc
            ) as policy_rank
        from tiered
        inner join policies
            on (policies.channel = tiered.channel or policies.channel = '*')
            and policies.medium = tiered.medium
            and (policies.tier = tiered.customer_tier or policies.tier = '*')
    ) as policies on policies.conversation_id = tiered.conversation_id and policies.policy_rank = 1
),

measured_blocks as (
    select
        blocks.conversation_id,
        blocks.block_no,
        blocks.replied_at,
        case when blocks.block_no = 1 and with_policy.queue_start_at > blocks.block_start_at
            then with_policy.queue_start_at else blocks.block_start_at end as measured_from,
        with_policy.channel,
        with_policy.next_response_target_s,
        with_policy.sla_uses_business_hours,
        with_policy.status
    from blocks
    inner join with_policy on with_policy.conversation_id = blocks.conversation_id
),

block_times as (
    select
        *,
        {{ seconds_between("measured_from", "replied_at") }} as response_s,
        case when sla_uses_business_hours
            then {{ business_seconds("channel", "measured_from", "coalesce(replied_at, " ~ as_of() ~ ")") }}
            else {{ seconds_between("measured_from", "coalesce(replied_at, " ~ as_of() ~ ")") }}
        end as policy_wait_s
    from measured_blocks
),

block_summary as (
    select
        conversation_id,
        avg(response_s) as art_s,
        count(*) as response_blocks,
        count(replied_at) as replied_blocks,
        sum(
            case
                when block_no = 1 then 0
                when replied_at is not null and policy_wait_s > next_response_target_s then 1
                when replied_at is null and status = 'open' and policy_wait_s > next_response_target_s then 1
                else 0
            end
        ) as next_response_breaches
    from block_times
    group by conversation_id
),

metrics as (
    select
        with_policy.*,
        {{ seconds_between("with_policy.queue_start_at", "with_policy.first_response_at") }} as frt_s,
        case when with_policy.first_response_at is not null
            then {{ business_seconds("with_policy.channel", "with_policy.queue_start_at", "with_policy.first_response_at") }}
        end as frt_business_s,
        case when with_policy.queue_start_at is not null and with_policy.first_response_at is null
            then {{ business_seconds("with_policy.channel", "with_policy.queue_start_at", "coalesce(with_policy.first_closed_at, " ~ as_of() ~ ")") }}
        end as unanswered_business_s,
        {{ seconds_between("with_policy.queue_start_at", "coalesce(with_policy.first_closed_at, " ~ as_of() ~ ")") }} as unanswered_s
    from with_policy
),

final as (
    select
        metrics.conversation_id,
        metrics.channel,
        metrics.medium,
        metrics.customer_key,
        metrics.customer_tier,
        coalesce(topics.topic, 'other') as topic,
        metrics.status,
        metrics.started_at,
        metrics.bot_involved,
        metrics.handoff_at,
        metrics.queue_start_at,
        metrics.assigned_at,
        metrics.first_response_at,
        metrics.first_agent_account,
        metrics.frt_s,
        metrics.frt_business_s,
        block_summary.art_s,
        coalesce(block_summary.response_blocks, 0) as response_blocks,
        coalesce(block_summary.replied_blocks, 0) as replied_blocks,
        coalesce(block_summary.next_response_breaches, 0) as next_response_breaches,
        metrics.handle_time_s,
        metrics.first_closed_at as first_resolution_at,
        case when metrics.status = 'closed' then metrics.last_closed_at end as resolved_at,
        case when metrics.status = 'closed' then {{ seconds_between("metrics.started_at", "metrics.last_closed_at") }} end as resolution_s,
        {{ seconds_between("metrics.started_at", "metrics.first_closed_at") }} as first_resolution_s,
        metrics.reopen_count,
        (metrics.queue_start_at is not null and metrics.first_response_at is null and metrics.first_closed_at is not null) as is_abandoned,
        (metrics.queue_start_at is not null and metrics.first_response_at is null and metrics.status = 'open') as is_unattended,
        (metrics.bot_involved and metrics.queue_start_at is null and metrics.agent_messages = 0 and metrics.first_closed_at is not null) as is_bot_resolved,
        metrics.transfer_count,
        metrics.agents_involved,
        metrics.sla_target_s,
        metrics.sla_uses_business_hours,
        case
            when metrics.queue_start_at is null then null
            when metrics.first_response_at is not null
                then (case when metrics.sla_uses_business_hours then metrics.frt_business_s else metrics.frt_s end) > metrics.sla_target_s
            when (case when metrics.sla_uses_business_hours then metrics.unanswered_business_s else metrics.unanswered_s end) > metrics.sla_target_s
                then true
            when metrics.first_closed_at is not null then false
            else null
        end as sla_breached,
        ratings.csat,
        ratings.nps,
        ratings.rating_raw,
        ratings.rating_scale,
        ratings.rated_at,
        {{ as_of() }} as as_of
    from metrics
    left join block_summary on block_summary.conversation_id = metrics.conversation_id
    left join topics on topics.conversation_id = metrics.conversation_id
    left join ratings on ratings.conversation_id = metrics.conversation_id
)

select * from final
