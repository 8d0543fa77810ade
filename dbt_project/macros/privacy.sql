{#- Customer identifiers are hashed with a configured salt in staging (DESIGN §11):
    marts never carry a raw phone number, open id or name. Set CSW_HASH_SALT in
    production; the default salt is for the sandbox only.
    `namespace` is a literal (the platform) unless `namespace_sql` is true, when it is an
    SQL expression giving the platform; both spellings hash the same value alike. -#}
{% macro hash_id(expr, namespace, namespace_sql=false) -%}
    {%- set salt = env_var("CSW_HASH_SALT", "sandbox-salt-not-for-production") -%}
    {%- set ns = namespace if namespace_sql else "'" ~ namespace ~ "'" -%}
    case when {{ expr }} is null then null
         else {{ adapter.dispatch("sha256_hex", "cs_warehouse")("'" ~ salt ~ "|' || " ~ ns ~ " || '|' || " ~ expr) }} end
{%- endmacro %}
{% macro default__sha256_hex(expr) -%}encode(sha256(convert_to({{ expr }}, 'UTF8')), 'hex'){%- endmacro %}
{% macro duckdb__sha256_hex(expr) -%}sha256({{ expr }}){%- endmacro %}
