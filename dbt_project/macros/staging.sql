{#- The newest version of each raw record (the loader keeps every distinct version, and
    (_record_key, _record_hash) is unique). Only keys with more than one version are
    ranked (few: late updates), and their older versions dropped by an anti-join, so the
    wide rows (payload) never go through a window. Another `key` (an entity id inside the
    payload: small tables) ranks every row. Portable: no QUALIFY. -#}
{% macro latest_version(relation, key="_record_key") -%}
    {%- if key != "_record_key" -%}
    select * from (
        select
            *,
            row_number() over (partition by {{ key }} order by _extracted_at desc, _batch_id desc, _row_number desc) as _version_rank
        from {{ relation }}
    ) as versions
    where _version_rank = 1
    {%- else -%}
    select {{ relation }}.*
    from {{ relation }}
    left join (
        select _record_key as _superseded_key, _record_hash as _superseded_hash
        from (
            select
                _record_key,
                _record_hash,
                row_number() over (partition by _record_key order by _extracted_at desc, _batch_id desc, _row_number desc) as _version_rank
            from {{ relation }}
            where _record_key in (select _record_key from {{ relation }} group by _record_key having count(*) > 1)
        ) as versions
        where _version_rank > 1
    ) as superseded
        on superseded._superseded_key = {{ relation }}._record_key
        and superseded._superseded_hash = {{ relation }}._record_hash
    where superseded._superseded_key is null
    {%- endif -%}
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
