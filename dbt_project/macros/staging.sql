{#- The newest version of each raw record (the loader keeps every distinct version).
    Portable: no QUALIFY. -#}
{% macro latest_version(relation, key="_record_key") -%}
    select * from (
        select
            *,
            row_number() over (partition by {{ key }} order by _extracted_at desc, _batch_id desc, _row_number desc) as _version_rank
        from {{ relation }}
    ) as versions
    where _version_rank = 1
{%- endmacro %}

{#- Union every platform's staging model of one entity (those listed in the
    `staging_models` var, in `platforms` order), selecting the canonical columns, so
    adding a platform is its staging models plus their names in dbt_project.yml. -#}
{% macro union_platforms(entity, columns, empty=none) -%}
    {%- set models = [] -%}
    {%- for platform in var("platforms") -%}
        {%- set model = "stg_" ~ platform ~ "__" ~ entity -%}
        {%- if model in var("staging_models") -%}{%- do models.append(model) -%}{%- endif -%}
    {%- endfor -%}
    {%- if not models and empty is not none %}
    {{ empty }}
    {%- endif %}
    {%- for model in models %}
    select {{ columns | join(", ") }} from {{ ref(model) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
