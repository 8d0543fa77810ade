{#- Time helpers. Everything that depends on "now" uses as_of(), never now(). -#}

{% macro as_of() -%}
    {%- set value = var("as_of", "") -%}
    {%- if execute and not value -%}
        {{ exceptions.raise_compiler_error("as_of is not set: run `csw transform` (it passes the data interval end) or `dbt build --vars '{as_of: \"2026-11-22T00:00:00Z\"}'`") }}
    {%- endif -%}
    cast('{{ value or "1970-01-01T00:00:00Z" }}' as {{ dbt.type_timestamp() }} with time zone)
{%- endmacro %}

{% macro epoch_s(ts) -%}{{ adapter.dispatch("epoch_s", "cs_warehouse")(ts) }}{%- endmacro %}
{% macro default__epoch_s(ts) -%}extract(epoch from {{ ts }}){%- endmacro %}
{% macro duckdb__epoch_s(ts) -%}epoch({{ ts }}){%- endmacro %}

{#- Exact seconds (with fractions) from a to b; null when either is null. -#}
{% macro seconds_between(a, b) -%}({{ epoch_s(b) }} - {{ epoch_s(a) }}){%- endmacro %}

{#- A local wall time in the business time zone -> timestamptz. -#}
{% macro local_to_utc(ts_local) -%}{{ adapter.dispatch("local_to_utc", "cs_warehouse")(ts_local) }}{%- endmacro %}
{% macro default__local_to_utc(ts_local) -%}(({{ ts_local }}) at time zone '{{ var("business_timezone") }}'){%- endmacro %}
{% macro duckdb__local_to_utc(ts_local) -%}timezone('{{ var("business_timezone") }}', {{ ts_local }}){%- endmacro %}

{#- Business seconds between a and b on `channel`, using int_business_hours (the
    channel's opening hours on each local day, holidays and make-up workdays applied). -#}
{% macro business_seconds(channel, a, b) -%}
    (
        select coalesce(sum({{ epoch_s("least(" ~ b ~ ", bh.close_at)") }} - {{ epoch_s("greatest(" ~ a ~ ", bh.open_at)") }}), 0)
        from {{ ref("int_business_hours") }} as bh
        where bh.channel = {{ channel }} and bh.open_at < {{ b }} and bh.close_at > {{ a }}
    )
{%- endmacro %}

{#- When this dbt invocation started (timestamptz): incremental intermediates stamp the
    rows they (re)build with it, so the next model knows what changed. Not "now" in the
    business sense: no metric depends on it. -#}
{% macro run_started() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") }}' as {{ dbt.type_timestamp() }} with time zone)
{%- endmacro %}
