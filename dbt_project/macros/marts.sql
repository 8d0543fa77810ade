{#- Helpers of the marts: planning intervals, local dates, incremental windows. -#}

{#- Length of one planning interval in seconds (30 minutes, as the forecasts and the
    simulation use). -#}
{% macro interval_seconds() -%}{{ var("interval_minutes", 30) * 60 }}{%- endmacro %}

{#- The start of the planning interval holding `ts` (timestamptz, UTC-aligned; Asia/Shanghai
    is a whole-hour offset, so intervals are aligned in local time too). -#}
{% macro interval_start(ts) -%}
    to_timestamp(floor({{ epoch_s(ts) }} / {{ interval_seconds() }}) * {{ interval_seconds() }})
{%- endmacro %}

{#- The local calendar date (business time zone) of a timestamptz. -#}
{% macro local_date(ts) -%}{{ adapter.dispatch("local_date", "cs_warehouse")(ts) }}{%- endmacro %}
{% macro default__local_date(ts) -%}cast((({{ ts }}) at time zone '{{ var("business_timezone") }}') as date){%- endmacro %}
{% macro duckdb__local_date(ts) -%}cast(timezone('{{ var("business_timezone") }}', {{ ts }}) as date){%- endmacro %}

{#- Seconds of overlap between [a0, a1) and [b0, b1), all given as epoch seconds. -#}
{% macro overlap_s(a0, a1, b0, b1) -%}
    greatest(0, least({{ a1 }}, {{ b1 }}) - greatest({{ a0 }}, {{ b0 }}))
{%- endmacro %}

{#- ---------------------------------------------------------------------------------------
    Incremental marts (see docs/marts.md, "Incremental builds").

    Every incremental mart holds time buckets (an interval or a local date) and stores the
    `as_of` it was computed at. An incremental run recomputes every bucket from a
    *refresh point* on and replaces them whole (strategy `replace_from`, below):

        refresh point = the earliest of
          - least(previous as_of, this as_of) - var('incremental_lookback_hours')
            (late batches: a platform may deliver data that old, e.g. a D+1 source), and
          - the start of every conversation that changed since that moment (a reopened,
            rated, answered or closed conversation updates its old buckets) or still waits
            for a human (its wait, and so queue length, grows with as_of).

    Buckets before the refresh point are final; buckets from it on are rebuilt from all
    contributing rows, so an incremental run and a full refresh give the same rows.
--------------------------------------------------------------------------------------- -#}

{#- The moment from which this incremental run recomputes (a SQL scalar, timestamptz). -#}
{% macro refresh_from_ts() -%}
    {%- set lookback = var("incremental_lookback_hours", 72) -%}
    (
        select coalesce(min(t), cast('1900-01-01T00:00:00Z' as {{ dbt.type_timestamp() }} with time zone)) from (
            select {{ dbt.dateadd("hour", -lookback, "least(max(as_of), " ~ as_of() ~ ")") }} as t
            from {{ this }}
            union all
            select min(least(started_at, queue_start_at, assigned_at, first_response_at)) as t
            from {{ ref("fct_conversations") }}
            where is_unattended
                or last_activity_at >= (
                    select {{ dbt.dateadd("hour", -lookback, "least(max(as_of), " ~ as_of() ~ ")") }} from {{ this }}
                )
        ) as candidates
    )
{%- endmacro %}

{#- The refresh point as a bucket bound of the given grain: 'interval' or 'day'. -#}
{% macro refresh_from(grain) -%}
    {%- if grain == "day" -%}
        {{ local_date(refresh_from_ts()) }}
    {%- else -%}
        {{ interval_start(refresh_from_ts()) }}
    {%- endif -%}
{%- endmacro %}

{#- `where` filter of an incremental mart's own buckets: everything on a full build. -#}
{% macro in_refresh_window(column, grain) -%}
    {%- if is_incremental() -%}{{ column }} >= {{ refresh_from(grain) }}{%- else -%}1 = 1{%- endif -%}
{%- endmacro %}

{#- Custom incremental strategy: delete every bucket from the refresh point on (config
    `refresh_column` and `refresh_grain`), then insert the recomputed ones. Buckets that
    became empty disappear, as they would on a full refresh. Portable SQL. -#}
{% macro get_incremental_replace_from_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = arg_dict["dest_columns"] | map(attribute="quoted") | join(", ") -%}
    {%- set column = config.require("refresh_column") -%}
    {%- set grain = config.require("refresh_grain") -%}
    {%- set predicates = arg_dict["incremental_predicates"] or [] -%}
    delete from {{ target }}
    where {{ column }} >= {{ refresh_from(grain) }}
    {%- for p in predicates %} and {{ p }}{% endfor %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
{%- endmacro %}

{#- Business seconds from a to b on `channel` (b - a in the channel's opening hours, with
    holidays and make-up workdays), read off the running clock int_business_clock:
    clock(b) - clock(a). Equals business_seconds(channel, a, b) for a <= b and is its
    negative otherwise; two equality look-ups per row, so it scales to millions of rows. -#}
{% macro business_clock(channel, ts) -%}
    (
        select
            clock.open_s_before
            + case when clock.open_at is null then 0
                else greatest(0, least({{ epoch_s(ts) }}, {{ epoch_s("clock.close_at") }}) - {{ epoch_s("clock.open_at") }}) end
        from {{ ref("int_business_clock") }} as clock
        where clock.channel = {{ channel }} and clock.local_date = {{ local_date(ts) }}
    )
{%- endmacro %}

{% macro business_seconds_between(channel, a, b) -%}
    ({{ business_clock(channel, b) }} - {{ business_clock(channel, a) }})
{%- endmacro %}

{#- ---------------------------------------------------------------------------------------
    Time-weighted sums per bucket (queue length, agents online, handling time), exact.

    Each span [from, to) adds its overlap with every bucket it touches. Instead of a range
    join of spans and buckets, the running integral G(t) = sum over spans of
    clamp(t - from, 0, to - from) is read at bucket ends from running counts and sums of
    span starts and ends: G(t) = t * starts(<t) - sum(from | from < t) - (t * ends(<t) -
    sum(to | to < t)). A bucket's total is G(end) - G(previous end). Integer milliseconds
    (relative to ms_base()) keep it exact, so incremental and full builds agree to the bit.

    `spans`: a CTE with the `keys`, `start_bucket` / `end_bucket` (the bucket holding from
    and to) and `from_ms` / `to_ms` (ms_of()), already cut to the grid's range;
    `grid`: a CTE with the `keys`, `bucket` and `bucket_end_ms`, every bucket of the range.
    Yields keys, bucket, `busy_ms` (the overlap total) and `active_at_end`.
--------------------------------------------------------------------------------------- -#}
{% macro ms_base() -%}1704067200{%- endmacro %}

{% macro ms_of(ts) -%}
    cast(round(({{ epoch_s(ts) }} - {{ ms_base() }}) * 1000) as bigint)
{%- endmacro %}

{% macro time_weighted(spans, grid, keys) -%}
    {%- set k = keys | join(", ") -%}
    select
        {% for key in keys %}{{ key }}, {% endfor %}
        bucket,
        integral - coalesce(lag(integral) over (partition by {{ k }} order by bucket), 0) as busy_ms,
        active_at_end
    from (
        select
            {% for key in keys %}grid.{{ key }}, {% endfor %}
            grid.bucket,
            grid.bucket_end_ms * sum(coalesce(events.starts, 0)) over running
                - sum(coalesce(events.start_ms, 0)) over running
                - grid.bucket_end_ms * sum(coalesce(events.ends, 0)) over running
                + sum(coalesce(events.end_ms, 0)) over running as integral,
            sum(coalesce(events.starts, 0)) over running - sum(coalesce(events.ends, 0)) over running as active_at_end
        from {{ grid }} as grid
        left join (
            select {{ k }}, bucket, sum(starts) as starts, sum(start_ms) as start_ms, sum(ends) as ends, sum(end_ms) as end_ms
            from (
                select {{ k }}, start_bucket as bucket, 1 as starts, from_ms as start_ms, 0 as ends, 0 as end_ms from {{ spans }}
                union all
                select {{ k }}, end_bucket as bucket, 0 as starts, 0 as start_ms, 1 as ends, to_ms as end_ms from {{ spans }}
            ) as span_events
            group by {{ k }}, bucket
        ) as events
            on {% for key in keys %}events.{{ key }} = grid.{{ key }} and {% endfor %}events.bucket = grid.bucket
        window running as (partition by {% for key in keys %}grid.{{ key }}{% if not loop.last %}, {% endif %}{% endfor %} order by grid.bucket rows unbounded preceding)
    ) as integrated
{%- endmacro %}

{#- The lower bound (timestamptz) of what an incremental run recomputes, at a grain:
    rows active at or after it may contribute to recomputed buckets. -#}
{% macro refresh_bound_ts(grain) -%}
    {%- if not is_incremental() -%}
        cast('1900-01-01T00:00:00Z' as {{ dbt.type_timestamp() }} with time zone)
    {%- elif grain == "day" -%}
        {{ local_to_utc("cast(" ~ local_date(refresh_from_ts()) ~ " as " ~ dbt.type_timestamp() ~ ")") }}
    {%- else -%}
        {{ interval_start(refresh_from_ts()) }}
    {%- endif -%}
{%- endmacro %}
