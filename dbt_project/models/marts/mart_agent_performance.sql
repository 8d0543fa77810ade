{{
    config(
        materialized="incremental",
        incremental_strategy="replace_from",
        unique_key=["agent_id", "channel", "local_date"],
        refresh_column="local_date",
        refresh_grain="day",
        on_schema_change="fail",
        post_hook="update {{ this }} set as_of = {{ as_of() }}",
    )
}}
-- Per agent (the person behind the account, dim_agents), channel and local day: the
-- conversations they answered first (credited with the first response, by the day of
-- that response), their FRT, SLA attainment, handle time and ratings, and time online
-- and handling conversations (occupancy = handling / online; above 1 with chat
-- concurrency).
with

agents as (
    select * from {{ ref("dim_agents") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
    where last_activity_at >= {{ refresh_bound_ts("day") }} or is_unattended
),

answered as (
    select
        agents.agent_id,
        conversations.channel,
        {{ local_date("conversations.first_response_at") }} as local_date,
        count(*) as conversations_answered,
        {{ round_to("sum(conversations.frt_s)", 3) }} / nullif(count(conversations.frt_s), 0) as frt_mean_s,
        percentile_cont(0.5) within group (order by conversations.frt_s) as frt_p50_s,
        percentile_cont(0.9) within group (order by conversations.frt_s) as frt_p90_s,
        count(conversations.sla_breached) as sla_judged,
        sum(case when conversations.sla_breached = false then 1 else 0 end) as sla_met,
        count(conversations.handle_time_s) as handled,
        {{ round_to("sum(conversations.handle_time_s)", 3) }} as handle_time_sum_s,
        sum(case when conversations.transfer_count > 0 then 1 else 0 end) as transferred,
        count(conversations.csat) as rated,
        sum(conversations.csat) as csat_sum,
        sum(case when conversations.csat >= 4 then 1 else 0 end) as csat_satisfied
    from conversations
    inner join agents
        on agents.channel = conversations.channel and agents.agent_account = conversations.first_agent_account
    where conversations.first_response_at is not null
        and {{ in_refresh_window(local_date("conversations.first_response_at"), "day") }}
    group by agents.agent_id, conversations.channel, {{ local_date("conversations.first_response_at") }}
),

online_spans as (
    select
        channel,
        agent_account,
        greatest(started_at, {{ refresh_bound_ts("day") }}) as span_from,
        ended_at as span_to
    from {{ ref("int_agent_status_intervals") }}
    where is_online and ended_at > {{ refresh_bound_ts("day") }}
),

handle_spans as (
    select
        channel,
        first_agent_account as agent_account,
        greatest(assigned_at, {{ refresh_bound_ts("day") }}) as span_from,
        {{ dbt.dateadd("millisecond", "cast(round(handle_time_s * 1000) as bigint)", "assigned_at") }} as span_to
    from conversations
    where handle_time_s is not null and assigned_at is not null and first_agent_account is not null
),

days as (
    select distinct channel, local_date
    from {{ ref("int_interval_grid") }}
    where {{ in_refresh_window("local_date", "day") }}
),

{% for name in ["online", "handle"] %}
{{ name }}_cut as (
    select
        channel,
        agent_account,
        {{ local_date("span_from") }} as start_bucket,
        {{ local_date("span_to") }} as end_bucket,
        {{ ms_of("span_from") }} as from_ms,
        {{ ms_of("span_to") }} as to_ms
    from {{ name }}_spans
    where span_to > span_from
),
{% endfor %}

-- every day of every account with time on record, from its first such day
account_days as (
    select
        days.channel,
        accounts.agent_account,
        days.local_date as bucket,
        {{ ms_of(local_to_utc("cast(" ~ dbt.dateadd("day", 1, "days.local_date") ~ " as " ~ dbt.type_timestamp() ~ ")")) }} as bucket_end_ms
    from days
    inner join (
        select channel, agent_account, min(start_bucket) as first_day
        from (
            select channel, agent_account, start_bucket from online_cut
            union all
            select channel, agent_account, start_bucket from handle_cut
        ) as spans
        group by channel, agent_account
    ) as accounts on accounts.channel = days.channel and days.local_date >= accounts.first_day
),

{% for name in ["online", "handle"] %}
{{ name }}_time as (
    {{ time_weighted(name ~ "_cut", "account_days", ["channel", "agent_account"]) }}
),
{% endfor %}

account_time as (
    select
        agents.agent_id,
        account_days.channel,
        account_days.bucket as local_date,
        sum(coalesce(online_time.busy_ms, 0)) as online_ms,
        sum(coalesce(handle_time.busy_ms, 0)) as handling_ms
    from account_days
    inner join agents on agents.channel = account_days.channel and agents.agent_account = account_days.agent_account
    left join online_time
        on online_time.channel = account_days.channel and online_time.agent_account = account_days.agent_account
        and online_time.bucket = account_days.bucket
    left join handle_time
        on handle_time.channel = account_days.channel and handle_time.agent_account = account_days.agent_account
        and handle_time.bucket = account_days.bucket
    group by agents.agent_id, account_days.channel, account_days.bucket
),

keys as (
    select agent_id, channel, local_date from answered
    union
    select agent_id, channel, local_date from account_time where online_ms > 0 or handling_ms > 0
),

people as (
    select agent_id, max(agent_name) as agent_name, max(team) as team
    from agents
    group by agent_id
),

final as (
    select
        keys.local_date,
        cast(keys.agent_id as varchar) as agent_id,
        cast(keys.channel as varchar) as channel,
        cast(people.agent_name as varchar) as agent_name,
        cast(people.team as varchar) as team,
        cast(coalesce(answered.conversations_answered, 0) as integer) as conversations_answered,
        cast(answered.frt_mean_s as double precision) as frt_mean_s,
        cast(answered.frt_p50_s as double precision) as frt_p50_s,
        cast(answered.frt_p90_s as double precision) as frt_p90_s,
        cast(coalesce(answered.sla_judged, 0) as integer) as sla_judged,
        cast(coalesce(answered.sla_met, 0) as integer) as sla_met,
        cast(answered.sla_met * 1.0 / nullif(answered.sla_judged, 0) as double precision) as sla_pct,
        cast(coalesce(answered.handled, 0) as integer) as handled,
        cast(coalesce(answered.handle_time_sum_s, 0) as double precision) as handle_time_sum_s,
        cast(answered.handle_time_sum_s / nullif(answered.handled, 0) as double precision) as aht_s,
        cast(coalesce(answered.transferred, 0) as integer) as transferred,
        cast(coalesce(answered.rated, 0) as integer) as rated,
        cast(coalesce(answered.csat_sum, 0) as integer) as csat_sum,
        cast(coalesce(answered.csat_satisfied, 0) as integer) as csat_satisfied,
        cast(answered.csat_sum * 1.0 / nullif(answered.rated, 0) as double precision) as csat_mean,
        cast(answered.csat_satisfied * 1.0 / nullif(answered.rated, 0) as double precision) as csat_pct,
        cast(coalesce(account_time.online_ms, 0) / 1000.0 as double precision) as online_s,
        cast(coalesce(account_time.handling_ms, 0) / 1000.0 as double precision) as handling_s,
        cast(account_time.handling_ms * 1.0 / nullif(account_time.online_ms, 0) as double precision) as occupancy,
        {{ as_of() }} as as_of
    from keys
    left join answered
        on answered.agent_id = keys.agent_id and answered.channel = keys.channel and answered.local_date = keys.local_date
    left join account_time
        on account_time.agent_id = keys.agent_id and account_time.channel = keys.channel
        and account_time.local_date = keys.local_date
    left join people on people.agent_id = keys.agent_id
)

select * from final
