-- Platform customer keys -> CRM persons (the CRM mapping feed). `person_key` is the
-- salted hash of the CRM customer id: marts carry it, never the CRM id itself. A
-- platform id mapped to two CRM records (a CRM duplicate) goes to the lower CRM id.
with

identities as (
    select * from {{ ref("stg_crm__identities") }}
),

ranked as (
    select
        customer_key,
        channel,
        crm_customer_id,
        row_number() over (partition by customer_key order by crm_customer_id) as mapping_rank
    from identities
    where customer_key is not null and crm_customer_id is not null
),

final as (
    select
        customer_key,
        channel,
        crm_customer_id,
        {{ hash_id("crm_customer_id", "crm_person") }} as person_key
    from ranked
    where mapping_rank = 1
)

select * from final
