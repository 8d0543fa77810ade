{#- Engine differences the models need beyond time.sql, json.sql and privacy.sql, one
    dispatched macro each: `duckdb__` for the embedded warehouse, `default__` for
    PostgreSQL (and engines that follow it). Models call the macro, never the engine's
    own spelling, so `dbt build --target postgres` builds the same models
    (tests/test_dbt_portability.py). -#}

{#- Number of elements of a JSON array (null for null, 0 for a JSON value that is not an
    array, as DuckDB's json_array_length). -#}
{% macro json_array_len(expr) -%}{{ adapter.dispatch("json_array_len", "cs_warehouse")(expr) }}{%- endmacro %}
{% macro default__json_array_len(expr) -%}
    (case
        when {{ expr }} is null then null
        when jsonb_typeof(cast({{ expr }} as jsonb)) = 'array' then jsonb_array_length(cast({{ expr }} as jsonb))
        else 0
    end)
{%- endmacro %}
{% macro duckdb__json_array_len(expr) -%}json_array_length({{ expr }}){%- endmacro %}

{#- `expr` rounded to `places` decimals, as a double. PostgreSQL rounds to decimals only
    numerics (there is no round(double precision, integer)); half away from zero on both. -#}
{% macro round_to(expr, places) -%}{{ adapter.dispatch("round_to", "cs_warehouse")(expr, places) }}{%- endmacro %}
{% macro default__round_to(expr, places) -%}
    cast(round(cast({{ expr }} as numeric), {{ places }}) as double precision)
{%- endmacro %}
{% macro duckdb__round_to(expr, places) -%}round({{ expr }}, {{ places }}){%- endmacro %}

{#- ---------------------------------------------------------------------------------------
    Physical design for engines that need it. DuckDB keeps statistics itself and turns
    correlated look-ups (macro business_clock) into hash joins; PostgreSQL plans a freshly
    created table blind until autovacuum analyzes it, and runs a correlated look-up as a
    scan per row. Both hooks render to nothing on DuckDB (dbt skips an empty hook).
    Wired in dbt_project.yml as post-hooks.
--------------------------------------------------------------------------------------- -#}

{#- Fresh planner statistics for the table just built (tables and incremental models). -#}
{% macro refresh_statistics() -%}{{ adapter.dispatch("refresh_statistics", "cs_warehouse")() }}{%- endmacro %}
{% macro default__refresh_statistics() -%}
    {%- if config.get("materialized") in ("table", "incremental") -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
{% macro duckdb__refresh_statistics() -%}{%- endmacro %}

{#- An index for equality look-ups on `columns` of a table model (rebuilt with the table,
    so it is created once per build). -#}
{% macro lookup_index(columns) -%}{{ adapter.dispatch("lookup_index", "cs_warehouse")(columns) }}{%- endmacro %}
{% macro default__lookup_index(columns) -%}
    {%- if config.get("materialized") == "table" -%}
        create index on {{ this }} ({{ columns | join(", ") }})
    {%- endif -%}
{%- endmacro %}
{% macro duckdb__lookup_index(columns) -%}{%- endmacro %}
