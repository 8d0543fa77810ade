-- One row per customer (person, as the CRM knows them) with their value tier at as_of,
-- the tier history's size, the value and complaint figures the tier came from, and their
-- conversations. Keyed by person_key (salted hash of the CRM id): no raw identifier.
with

valued as (
    select * from {{ ref("int_customers_valued") }}
),

versions as (
    select * from {{ ref("snp_customer_tiers") }}
),

identified as (
    select * from {{ ref("int_customers_identified") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
),

-- the version valid at as_of (the current one unless this build is a backfill)
current_tier as (
    select person_key, value_tier, is_repeat_complainer, dbt_valid_from
    from versions
    where dbt_valid_from <= {{ as_of() }}
        and (dbt_valid_to > {{ as_of() }} or dbt_valid_to is null)
),

history as (
    select person_key, count(*) as tier_versions
    from versions
    where dbt_valid_from <= {{ as_of() }}
    group by person_key
),

identities as (
    select person_key, count(*) as platform_identities, count(distinct channel) as channels
    from identified
    group by person_key
),

contacts as (
    select
        person_key,
        count(*) as conversations,
        sum(case when topic = 'complaint' then 1 else 0 end) as complaint_conversations,
        max(started_at) as last_conversation_at
    from conversations
    where person_key is not null
    group by person_key
),

final as (
    select
        cast(valued.person_key as varchar) as person_key,
        cast(coalesce(current_tier.value_tier, valued.value_tier) as varchar) as value_tier,
        coalesce(current_tier.is_repeat_complainer, valued.is_repeat_complainer) as is_repeat_complainer,
        current_tier.dbt_valid_from as tier_valid_from,
        cast(coalesce(history.tier_versions, 0) as integer) as tier_versions,
        valued.customer_since,
        valued.first_order_at,
        valued.last_order_at,
        cast(valued.recency_days as integer) as recency_days,
        cast(valued.tenure_days as integer) as tenure_days,
        cast(valued.orders_365d as integer) as orders_365d,
        cast(valued.monetary_365d as double precision) as monetary_365d,
        cast(valued.lifetime_orders as integer) as lifetime_orders,
        cast(valued.lifetime_value as double precision) as lifetime_value,
        cast(valued.complaints_90d as integer) as complaints_90d,
        cast(coalesce(identities.platform_identities, 0) as integer) as platform_identities,
        cast(coalesce(identities.channels, 0) as integer) as channels,
        cast(coalesce(contacts.conversations, 0) as integer) as conversations,
        cast(coalesce(contacts.complaint_conversations, 0) as integer) as complaint_conversations,
        contacts.last_conversation_at,
        {{ as_of() }} as as_of
    from valued
    left join current_tier on current_tier.person_key = valued.person_key
    left join history on history.person_key = valued.person_key
    left join identities on identities.person_key = valued.person_key
    left join contacts on contacts.person_key = valued.person_key
)

select * from final
