-- CRM customers. The CRM id is pseudonymous; union id and phone hash are hashed again
-- with the warehouse salt so marts never carry a linkable identifier.
with

source as (
    select * from {{ source("raw_crm", "customers") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        {{ json_str("payload", "customer_id") }} as crm_customer_id,
        {{ hash_id(json_str("payload", "union_id"), "union_id") }} as union_id_hash,
        {{ hash_id(json_str("payload", "phone_hash"), "phone") }} as phone_hash,
        _record_time as created_at
    from latest
)

select * from final
