-- Every conversation of a known customer carries the tier of the snapshot version valid
-- at its start (or the first version, for conversations older than the tier history),
-- and its SLA target is that tier's policy: recomputing tiers never rewrites the past.
with

conversations as (
    select * from {{ ref("fct_conversations") }}
    where person_key is not null and started_at is not null
),

versions as (
    select
        *,
        row_number() over (partition by person_key order by dbt_valid_from) as version_no
    from {{ ref("snp_customer_tiers") }}
),

expected as (
    select conversations.conversation_id, versions.value_tier
    from conversations
    inner join versions
        on versions.person_key = conversations.person_key
        and (versions.dbt_valid_from <= conversations.started_at or versions.version_no = 1)
        and (versions.dbt_valid_to > conversations.started_at or versions.dbt_valid_to is null)
)

select conversations.conversation_id, conversations.customer_tier, expected.value_tier
from conversations
left join expected on expected.conversation_id = conversations.conversation_id
where expected.value_tier is null or expected.value_tier <> conversations.customer_tier
