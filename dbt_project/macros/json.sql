{#- Read a string at a dotted path from a JSON column (staging only). -#}
{% macro json_str(col, path) -%}{{ adapter.dispatch("json_str", "cs_warehouse")(col, path) }}{%- endmacro %}
{% macro default__json_str(col, path) -%}({{ col }} #>> '{ {{- path.split(".") | join(",") -}} }'){%- endmacro %}
{% macro duckdb__json_str(col, path) -%}json_extract_string({{ col }}, '$.{{ path }}'){%- endmacro %}
