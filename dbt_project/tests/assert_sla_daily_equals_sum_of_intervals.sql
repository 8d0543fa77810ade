-- Reconciliation: each day of mart_sla_daily (computed from the conversations) equals the
-- sum of that day's intervals in mart_sla_interval: counts exactly, time totals to the
-- millisecond.
with

intervals as (
    select
        channel,
        medium,
        local_date,
        sum(conversations) as conversations,
        sum(queued) as queued,
        sum(answered) as answered,
        sum(abandoned) as abandoned,
        sum(unattended) as unattended,
        sum(sla_judged) as sla_judged,
        sum(sla_met) as sla_met,
        sum(queue_wait_s) as queue_wait_s,
        sum(online_s) as online_s,
        sum(handling_s) as handling_s
    from {{ ref("mart_sla_interval") }}
    group by channel, medium, local_date
),

daily as (
    select * from {{ ref("mart_sla_daily") }}
)

select
    coalesce(daily.channel, intervals.channel) as channel,
    coalesce(daily.local_date, intervals.local_date) as local_date
from daily
full outer join intervals
    on intervals.channel = daily.channel and intervals.medium = daily.medium and intervals.local_date = daily.local_date
where daily.channel is null
    or intervals.channel is null
    or daily.conversations <> intervals.conversations
    or daily.queued <> intervals.queued
    or daily.answered <> intervals.answered
    or daily.abandoned <> intervals.abandoned
    or daily.unattended <> intervals.unattended
    or daily.sla_judged <> intervals.sla_judged
    or daily.sla_met <> intervals.sla_met
    or abs(daily.queue_wait_s - intervals.queue_wait_s) > 0.001
    or abs(daily.online_s - intervals.online_s) > 0.001
    or abs(daily.handling_s - intervals.handling_s) > 0.001
