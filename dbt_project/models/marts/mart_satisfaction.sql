{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from",
        unique_key=["local_date", "channel", "medium", "agent_id", "topic", "frt_band"],
        refresh_column="local_date",
        refresh_grain="day",
        on_schema_change="fail",
        post_hook="update {{ this }} set as_of = {{ as_of() }}",
    )
}}
-- Satisfaction of conversations a human answered, per local day of the conversation's
-- start, channel, medium, the agent credited with the first response, topic and FRT band
-- (frt_bands seed): how satisfaction falls as waiting grows. Every count is additive, so
-- any roll-up (per channel and day, per band, per agent) sums them and recomputes:
--   csat_pct      = csat_satisfied / rated     (ratings 4-5 among rated)
--   csat_mean     = csat_sum / rated
--   response_rate = rated / eligible           (eligible: answered and closed at least once)
--   nps           = (promoters - detractors) / nps_responses * 100   (9-10 vs 0-6)
with

conversations as (
    select * from {{ ref("fct_conversations") }}
    where first_response_at is not null
        and (last_activity_at >= {{ refresh_bound_ts("day") }} or is_unattended)
),

agents as (
    select * from {{ ref("dim_agents") }}
),

bands as (
    select * from {{ ref("frt_bands") }}
),

banded as (
    select
        conversations.*,
        {{ local_date("coalesce(conversations.started_at, conversations.queue_start_at)") }} as local_date,
        coalesce(agents.agent_id, conversations.channel || ':' || conversations.first_agent_account) as agent_id,
        coalesce(bands.frt_band, 'unknown') as frt_band,
        coalesce(bands.band_order, 0) as frt_band_order
    from conversations
    left join agents
        on agents.channel = conversations.channel and agents.agent_account = conversations.first_agent_account
    left join bands
        on bands.medium = conversations.medium
        and conversations.frt_s >= bands.min_s
        and (conversations.frt_s < bands.max_s or bands.max_s is null)
),

aggregated as (
    select
        local_date,
        channel,
        medium,
        agent_id,
        topic,
        frt_band,
        max(frt_band_order) as frt_band_order,
        count(*) as conversations,
        {{ round_to("sum(frt_s)", 3) }} as frt_sum_s,
        sum(case when first_resolution_at is not null then 1 else 0 end) as eligible,
        count(csat) as rated,
        sum(csat) as csat_sum,
        sum(case when csat >= 4 then 1 else 0 end) as csat_satisfied,
        sum(case when csat <= 2 then 1 else 0 end) as csat_dissatisfied,
        count(nps) as nps_responses,
        sum(case when nps >= 9 then 1 else 0 end) as nps_promoters,
        sum(case when nps <= 6 then 1 else 0 end) as nps_detractors
    from banded
    where {{ in_refresh_window("local_date", "day") }}
    group by local_date, channel, medium, agent_id, topic, frt_band
),

final as (
    select
        local_date,
        cast(channel as varchar) as channel,
        cast(medium as varchar) as medium,
        cast(agent_id as varchar) as agent_id,
        cast(topic as varchar) as topic,
        cast(frt_band as varchar) as frt_band,
        cast(frt_band_order as integer) as frt_band_order,
        cast(conversations as integer) as conversations,
        cast(frt_sum_s as double precision) as frt_sum_s,
        cast(eligible as integer) as eligible,
        cast(rated as integer) as rated,
        cast(coalesce(csat_sum, 0) as integer) as csat_sum,
        cast(csat_satisfied as integer) as csat_satisfied,
        cast(csat_dissatisfied as integer) as csat_dissatisfied,
        cast(nps_responses as integer) as nps_responses,
        cast(nps_promoters as integer) as nps_promoters,
        cast(nps_detractors as integer) as nps_detractors,
        cast(csat_satisfied * 1.0 / nullif(rated, 0) as double precision) as csat_pct,
        cast(csat_sum * 1.0 / nullif(rated, 0) as double precision) as csat_mean,
        cast(rated * 1.0 / nullif(eligible, 0) as double precision) as response_rate,
        cast((nps_promoters - nps_detractors) * 100.0 / nullif(nps_responses, 0) as double precision) as nps,
        {{ as_of() }} as as_of
    from aggregated
)

select * from final
