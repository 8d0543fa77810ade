-- The service-level measures mart_sla_interval and mart_sla_daily share, bucketed by a
-- time macro (`interval_start` or `local_date`) so both marts count the same way.

-- Queue outcomes of the conversations whose human queue started in the bucket.
{% macro sla_queue_measures() -%}
        count(*) as queued,
        count(first_response_at) as answered,
        sum(case when is_abandoned then 1 else 0 end) as abandoned,
        sum(case when is_unattended then 1 else 0 end) as unattended,
        count(sla_breached) as sla_judged,
        sum(case when sla_breached = false then 1 else 0 end) as sla_met,
        {{ round_to("sum(frt_s)", 3) }} / nullif(count(frt_s), 0) as frt_mean_s,
        percentile_cont(0.5) within group (order by frt_s) as frt_p50_s,
        percentile_cont(0.9) within group (order by frt_s) as frt_p90_s
{%- endmacro %}

-- CTEs `wait_time`, `handle_time`, `online_time` (busy_ms, active_at_end per channel,
-- medium and bucket) from `conversations`, `channels` and the `grid_ms` buckets:
--   wait:   queue start -> assignment (or the abandoning close, or as_of)
--   handle: assignment -> the first agent's last message
--   online: agent status intervals that count as online
{% macro sla_busy_time_ctes(bucket, grain) -%}
wait_spans as (
    select
        channel,
        medium,
        greatest(queue_start_at, {{ refresh_bound_ts(grain) }}) as span_from,
        coalesce(assigned_at, first_resolution_at, {{ as_of() }}) as span_to
    from conversations
    where queue_start_at is not null
),

handle_spans as (
    select
        channel,
        medium,
        greatest(assigned_at, {{ refresh_bound_ts(grain) }}) as span_from,
        {{ dbt.dateadd("millisecond", "cast(round(handle_time_s * 1000) as bigint)", "assigned_at") }} as span_to
    from conversations
    where handle_time_s is not null and assigned_at is not null
),

online_spans as (
    select
        status.channel,
        channels.medium,
        greatest(status.started_at, {{ refresh_bound_ts(grain) }}) as span_from,
        status.ended_at as span_to
    from {{ ref("int_agent_status_intervals") }} as status
    inner join channels on channels.channel = status.channel
    where status.is_online and status.ended_at > {{ refresh_bound_ts(grain) }}
),

{% for name in ["wait", "handle", "online"] %}
{{ name }}_cut as (
    select
        channel,
        medium,
        {{ bucket("span_from") }} as start_bucket,
        {{ bucket("span_to") }} as end_bucket,
        {{ ms_of("span_from") }} as from_ms,
        {{ ms_of("span_to") }} as to_ms
    from {{ name }}_spans
    where span_to > span_from
),

{{ name }}_time as (
    {{ time_weighted(name ~ "_cut", "grid_ms", ["channel", "medium"]) }}
){{ "," if not loop.last }}
{% endfor %}
{%- endmacro %}
