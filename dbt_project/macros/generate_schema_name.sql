{#- Layers get their own schema (staging, intermediate, marts, seeds) without the target
    prefix dbt adds by default, so BI users see `marts.fct_conversations`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
