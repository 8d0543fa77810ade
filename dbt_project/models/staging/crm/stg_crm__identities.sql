-- The CRM mapping feed. `customer_key` uses the same salted hash as each platform's
-- staging (hash_id(<platform user id>, <platform>)), so conversations join to persons.
with

source as (
    select * from {{ source("raw_crm", "identities") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select distinct
        {{ json_str("payload", "customer_id") }} as crm_customer_id,
        {{ json_str("payload", "channel") }} as channel,
        {{ hash_id(json_str("payload", "platform_user_id"), json_str("payload", "channel"), namespace_sql=true) }} as customer_key
    from latest
)

select * from final
