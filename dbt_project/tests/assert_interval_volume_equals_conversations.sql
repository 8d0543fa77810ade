-- Reconciliation: per channel, the interval marts' volumes sum to the conversation
-- counts of fct_conversations (every conversation lands in exactly one interval).
with

facts as (
    select
        channel,
        sum(case when started_at is not null then 1 else 0 end) as conversations,
        sum(case when queue_start_at is not null then 1 else 0 end) as queued,
        sum(case when queue_start_at is not null and first_response_at is not null then 1 else 0 end) as answered
    from {{ ref("fct_conversations") }}
    group by channel
),

volume as (
    select channel, sum(conversations) as conversations, sum(queued) as queued, sum(answered) as answered
    from {{ ref("mart_volume_interval") }}
    group by channel
),

sla as (
    select channel, sum(conversations) as conversations, sum(queued) as queued, sum(answered) as answered
    from {{ ref("mart_sla_interval") }}
    group by channel
)

select facts.channel, facts.conversations, volume.conversations as volume_conversations, sla.conversations as sla_conversations
from facts
left join volume on volume.channel = facts.channel
left join sla on sla.channel = facts.channel
where coalesce(volume.conversations, 0) <> facts.conversations
    or coalesce(volume.queued, 0) <> facts.queued
    or coalesce(volume.answered, 0) <> facts.answered
    or coalesce(sla.conversations, 0) <> facts.conversations
    or coalesce(sla.queued, 0) <> facts.queued
    or coalesce(sla.answered, 0) <> facts.answered
