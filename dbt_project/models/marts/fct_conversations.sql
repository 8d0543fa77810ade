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

topics as (
    select * from {{ ref("int_conversation_topics") }}
),

identified as (
    select * from {{ ref("int_customers_identified") }}
),

tier_versions as (
    select
        person_key,
        value_tier,
        is_repeat_complainer,
        dbt_valid_from,
        dbt_valid_to,
        row_number() over (partition by person_key order by dbt_valid_from) as version_no
    from {{ ref("snp_customer_tiers") }}
),

-- The tier valid at the conversation's start (DESIGN §7): recomputing tiers adds versions
-- from a later as_of and never changes this. A conversation from before the first
-- recorded version uses that first version; a customer the CRM does not know gets
-- var('default_tier').
conversation_tiers as (
    select
        conversations.conversation_id,
        identified.person_key,
        tier_versions.value_tier,
        tier_versions.is_repeat_complainer
    from conversations
    inner join identified on identified.customer_key = conversations.customer_key
    inner join tier_versions
        on tier_versions.person_key = identified.person_key
        and (tier_versions.dbt_valid_from <= conversations.started_at or tier_versions.version_no = 1)
        and (tier_versions.dbt_valid_to > conversations.started_at or tier_versions.dbt_valid_to is null)
),

tiered as (
    select
        conversations.*,
        conversation_tiers.person_key,
        coalesce(conversation_tiers.value_tier, cast('{{ var("default_tier") }}' as varchar)) as customer_tier,
        coalesce(conversation_tiers.is_repeat_complainer, false) as is_repeat_complainer
    from conversations
    left join conversation_tiers on conversation_tiers.conversation_id = conversations.conversation_id
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
        {{ block_wait_start("blocks.block_no", "blocks.block_start_at", "with_policy.queue_start_at", "blocks.replied_at") }} as measured_from,
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
            then {{ business_seconds_between("measured_blocks.channel", "measured_blocks.measured_from", "coalesce(measured_blocks.replied_at, " ~ as_of() ~ ")") }}
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
            then {{ business_seconds_between("with_policy.channel", "with_policy.queue_start_at", "with_policy.first_response_at") }}
        end as frt_business_s,
        case when with_policy.queue_start_at is not null and with_policy.first_response_at is null
            then {{ business_seconds_between("with_policy.channel", "with_policy.queue_start_at", "coalesce(with_policy.first_closed_at, " ~ as_of() ~ ")") }}
        end as unanswered_business_s,
        {{ seconds_between("with_policy.queue_start_at", "coalesce(with_policy.first_closed_at, " ~ as_of() ~ ")") }} as unanswered_s
    from with_policy
),

final as (
    select
        cast(metrics.conversation_id as varchar) as conversation_id,
        cast(metrics.channel as varchar) as channel,
        cast(metrics.medium as varchar) as medium,
        cast(metrics.customer_key as varchar) as customer_key,
        cast(metrics.customer_tier as varchar) as customer_tier,
        cast(coalesce(topics.topic, 'other') as varchar) as topic,
        cast(metrics.status as varchar) as status,
        metrics.started_at,
        cast(metrics.bot_involved as boolean) as bot_involved,
        metrics.handoff_at,
        metrics.queue_start_at,
        metrics.assigned_at,
        metrics.first_response_at,
        cast(metrics.first_agent_account as varchar) as first_agent_account,
        cast(metrics.frt_s as double precision) as frt_s,
        cast(metrics.frt_business_s as double precision) as frt_business_s,
        cast(block_summary.art_s as double precision) as art_s,
        cast(coalesce(block_summary.response_blocks, 0) as integer) as response_blocks,
        cast(coalesce(block_summary.replied_blocks, 0) as integer) as replied_blocks,
        cast(coalesce(block_summary.next_response_breaches, 0) as integer) as next_response_breaches,
        cast(metrics.handle_time_s as double precision) as handle_time_s,
        metrics.first_closed_at as first_resolution_at,
        case when metrics.status = 'closed' then metrics.last_closed_at end as resolved_at,
        cast(case when metrics.status = 'closed' then {{ seconds_between("metrics.started_at", "metrics.last_closed_at") }} end as double precision) as resolution_s,
        cast({{ seconds_between("metrics.started_at", "metrics.first_closed_at") }} as double precision) as first_resolution_s,
        cast(metrics.reopen_count as integer) as reopen_count,
        (metrics.queue_start_at is not null and metrics.first_response_at is null and metrics.first_closed_at is not null) as is_abandoned,
        (metrics.queue_start_at is not null and metrics.first_response_at is null and metrics.status = 'open') as is_unattended,
        (metrics.bot_involved and metrics.queue_start_at is null and metrics.agent_messages = 0 and metrics.first_closed_at is not null) as is_bot_resolved,
        cast(metrics.transfer_count as integer) as transfer_count,
        cast(metrics.agents_involved as integer) as agents_involved,
        cast(metrics.sla_target_s as integer) as sla_target_s,
        cast(metrics.sla_uses_business_hours as boolean) as sla_uses_business_hours,
        case
            when metrics.queue_start_at is null then null
            when metrics.first_response_at is not null
                then (case when metrics.sla_uses_business_hours then metrics.frt_business_s else metrics.frt_s end) > metrics.sla_target_s
            when (case when metrics.sla_uses_business_hours then metrics.unanswered_business_s else metrics.unanswered_s end) > metrics.sla_target_s
                then true
            when metrics.first_closed_at is not null then false
            else null
        end as sla_breached,
        cast(ratings.csat as integer) as csat,
        cast(ratings.nps as integer) as nps,
        cast(ratings.rating_raw as varchar) as rating_raw,
        cast(ratings.rating_scale as varchar) as rating_scale,
        ratings.rated_at,
        {{ as_of() }} as as_of,
        -- added for the marts: the person (CRM), their flag at the start, and the latest
        -- moment anything about this conversation changed (incremental marts re-read it)
        cast(metrics.person_key as varchar) as person_key,
        cast(metrics.is_repeat_complainer as boolean) as is_repeat_complainer,
        greatest(
            metrics.started_at, metrics.handoff_at, metrics.queue_start_at, metrics.assigned_at,
            metrics.first_response_at, metrics.first_closed_at, metrics.last_closed_at, ratings.rated_at
        ) as last_activity_at
    from metrics
    left join block_summary on block_summary.conversation_id = metrics.conversation_id
    left join topics on topics.conversation_id = metrics.conversation_id
    left join ratings on ratings.conversation_id = metrics.conversation_id
)

select * from final
