-- Each CRM customer's value and complaint history as of as_of, and the value tier the
-- value_tiers seed gives (first matching rule by priority; a rule's empty cells are no
-- condition). Snapshotted by snp_customer_tiers, so tiers are kept as history.
with

customers as (
    select * from {{ ref("stg_crm__customers") }}
    where created_at <= {{ as_of() }}
),

orders as (
    select * from {{ ref("stg_crm__orders") }}
    where ordered_at <= {{ as_of() }} and status = 'paid'
),

identified as (
    select * from {{ ref("int_customers_identified") }}
),

rules as (
    select * from {{ ref("value_tiers") }}
),

flags as (
    select * from {{ ref("customer_flags") }}
    where flag = 'repeat_complainer'
),

persons as (
    select crm_customer_id, created_at from customers
    union
    select distinct crm_customer_id, cast(null as {{ dbt.type_timestamp() }} with time zone) as created_at from orders
),

person_created as (
    select crm_customer_id, min(created_at) as created_at
    from persons
    group by crm_customer_id
),

order_stats as (
    select
        crm_customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as lifetime_orders,
        {{ round_to("sum(amount_cny)", 2) }} as lifetime_value,
        sum(case when ordered_at > {{ dbt.dateadd("day", -365, as_of()) }} then 1 else 0 end) as orders_365d,
        {{ round_to("sum(case when ordered_at > " ~ dbt.dateadd("day", -365, as_of()) ~ " then amount_cny else 0 end)", 2) }} as monetary_365d
    from orders
    group by crm_customer_id
),

complaints as (
    select
        identified.crm_customer_id,
        count(*) as complaints_in_window
    from {{ ref("int_conversations_enriched") }} as conversations
    inner join {{ ref("int_conversation_topics") }} as topics on topics.conversation_id = conversations.conversation_id
    inner join identified on identified.customer_key = conversations.customer_key
    cross join flags
    where topics.topic = flags.topic
        and conversations.started_at <= {{ as_of() }}
        and conversations.started_at > {{ dbt.dateadd("day", "-flags.window_days", as_of()) }}
    group by identified.crm_customer_id
),

features as (
    select
        person_created.crm_customer_id,
        {{ hash_id("person_created.crm_customer_id", "crm_person") }} as person_key,
        coalesce(
            case when order_stats.first_order_at < person_created.created_at then order_stats.first_order_at end,
            person_created.created_at,
            order_stats.first_order_at
        ) as customer_since,
        order_stats.first_order_at,
        order_stats.last_order_at,
        coalesce(order_stats.lifetime_orders, 0) as lifetime_orders,
        coalesce(order_stats.lifetime_value, 0) as lifetime_value,
        coalesce(order_stats.orders_365d, 0) as orders_365d,
        coalesce(order_stats.monetary_365d, 0) as monetary_365d,
        coalesce(complaints.complaints_in_window, 0) as complaints_90d
    from person_created
    left join order_stats on order_stats.crm_customer_id = person_created.crm_customer_id
    left join complaints on complaints.crm_customer_id = person_created.crm_customer_id
),

measured as (
    select
        features.*,
        floor({{ seconds_between("features.last_order_at", as_of()) }} / 86400) as recency_days,
        floor({{ seconds_between("features.customer_since", as_of()) }} / 86400) as tenure_days
    from features
),

matched as (
    select
        measured.person_key,
        rules.tier,
        row_number() over (partition by measured.person_key order by rules.priority, rules.tier) as rule_rank
    from measured
    inner join rules
        on (rules.min_monetary_365d is null or measured.monetary_365d >= rules.min_monetary_365d)
        and (rules.min_orders_365d is null or measured.orders_365d >= rules.min_orders_365d)
        and (rules.min_lifetime_value is null or measured.lifetime_value >= rules.min_lifetime_value)
        and (rules.max_recency_days is null or measured.recency_days <= rules.max_recency_days)
        and (rules.max_tenure_days is null or measured.tenure_days <= rules.max_tenure_days)
),

final as (
    select
        measured.person_key,
        coalesce(matched.tier, 'low') as value_tier,
        measured.complaints_90d >= coalesce((select min(min_conversations) from flags), 2) as is_repeat_complainer,
        measured.customer_since,
        measured.first_order_at,
        measured.last_order_at,
        cast(measured.recency_days as integer) as recency_days,
        cast(measured.tenure_days as integer) as tenure_days,
        cast(measured.orders_365d as integer) as orders_365d,
        cast(measured.monetary_365d as double precision) as monetary_365d,
        cast(measured.lifetime_orders as integer) as lifetime_orders,
        cast(measured.lifetime_value as double precision) as lifetime_value,
        cast(measured.complaints_90d as integer) as complaints_90d,
        {{ as_of() }} as tiered_at
    from measured
    left join matched on matched.person_key = measured.person_key and matched.rule_rank = 1
)

select * from final
