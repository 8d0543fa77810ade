{#- Value tiers as history (DESIGN §7): one version per customer and tier change, valid
    from the as_of of the build that first saw it. A conversation uses the version valid at
    its start (fct_conversations), so recomputing tiers never rewrites past SLA targets.

    `updated_at: tiered_at` makes versions start at as_of, not at the wall-clock time of
    the build, so re-runs and backfills repeat exactly. A build with an as_of at or before
    the newest recorded version (a re-run or a backfill) adds nothing: history only grows
    forward in time. -#}
{% snapshot snp_customer_tiers %}

{{ config(
    unique_key="person_key",
    strategy="check",
    check_cols=["value_tier", "is_repeat_complainer"],
    updated_at="tiered_at",
) }}

select
    person_key,
    value_tier,
    is_repeat_complainer,
    tiered_at
from {{ ref("int_customers_valued") }}
{%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) if execute else none %}
{%- if existing is not none %}
where tiered_at > (select coalesce(max(dbt_valid_from), cast('1900-01-01T00:00:00Z' as {{ dbt.type_timestamp() }} with time zone)) from {{ this }})
{%- endif %}

{% endsnapshot %}
