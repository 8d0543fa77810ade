{#- Read a string at a dotted path from a JSON column (staging only). -#}
{% macro json_str(col, path) -%}{{ adapter.dispatch("json_str", "cs_warehouse")(col, path) }}{%- endmacro %}
{% macro default__json_str(col, path) -%}({{ col }} #>> '{ {{- path.split(".") | join(",") -}} }'){%- endmacro %}
{% macro duckdb__json_str(col, path) -%}json_extract_string({{ col }}, '$.{{ path }}'){%- endmacro %}

{#- `relation`'s rows plus the JSON fields `fields` ({alias: dotted path}) of `col` as
    varchar columns. DuckDB parses each record once (the list form of
    json_extract_string) instead of once per field; PostgreSQL's jsonb is parsed already. -#}
{% macro with_json_fields(relation, col, fields) -%}{{ adapter.dispatch("with_json_fields", "cs_warehouse")(relation, col, fields) }}{%- endmacro %}
{% macro default__with_json_fields(relation, col, fields) -%}
    select
        *{% for alias, path in fields.items() %},
        {{ default__json_str(col, path) }} as {{ alias }}{% endfor %}
    from {{ relation }}
{%- endmacro %}
{% macro duckdb__with_json_fields(relation, col, fields) -%}
    select
        *{% for alias in fields %},
        _json_fields[{{ loop.index }}] as {{ alias }}{% endfor %}
    from (
        select *, json_extract_string({{ col }}, [{% for path in fields.values() %}'$.{{ path }}'{% if not loop.last %}, {% endif %}{% endfor %}]) as _json_fields
        from {{ relation }}
    ) as parsed
{%- endmacro %}
