-- Reconciliation of the per-day marts with fct_conversations, per channel: satisfaction
-- covers every answered conversation and rating, value tiers every conversation,
-- agent performance every first response and the agent time of the SLA marts.
with

facts as (
    select
        channel,
        sum(case when coalesce(started_at, queue_start_at) is not null then 1 else 0 end) as conversations,
        sum(case when first_response_at is not null then 1 else 0 end) as answered,
        sum(case when first_response_at is not null and csat is not null then 1 else 0 end) as rated,
        sum(case when first_response_at is not null and first_agent_account is not null then 1 else 0 end) as credited
    from {{ ref("fct_conversations") }}
    group by channel
),

satisfaction as (
    select channel, sum(conversations) as answered, sum(rated) as rated
    from {{ ref("mart_satisfaction") }}
    group by channel
),

tiers as (
    select channel, sum(conversations) as conversations
    from {{ ref("mart_value_tier") }}
    group by channel
),

agents as (
    select channel, sum(conversations_answered) as credited, sum(online_s) as online_s, sum(handling_s) as handling_s
    from {{ ref("mart_agent_performance") }}
    group by channel
),

daily as (
    select channel, sum(online_s) as online_s, sum(handling_s) as handling_s
    from {{ ref("mart_sla_daily") }}
    group by channel
)

select facts.channel
from facts
left join satisfaction on satisfaction.channel = facts.channel
left join tiers on tiers.channel = facts.channel
left join agents on agents.channel = facts.channel
left join daily on daily.channel = facts.channel
where coalesce(satisfaction.answered, 0) <> facts.answered
    or coalesce(satisfaction.rated, 0) <> facts.rated
    or coalesce(tiers.conversations, 0) <> facts.conversations
    or coalesce(agents.credited, 0) <> facts.credited
    or abs(coalesce(agents.online_s, 0) - coalesce(daily.online_s, 0)) > 0.001
    or abs(coalesce(agents.handling_s, 0) - coalesce(daily.handling_s, 0)) > 0.001
