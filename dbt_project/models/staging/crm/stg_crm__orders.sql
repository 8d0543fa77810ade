with

source as (
    select * from {{ source("raw_crm", "orders") }}
),

latest as (
    {{ latest_version("source", json_str("payload", "order_id")) }}
),

final as (
    select
        {{ json_str("payload", "order_id") }} as order_id,
        {{ json_str("payload", "customer_id") }} as crm_customer_id,
        {{ json_str("payload", "channel") }} as channel,
        _record_time as ordered_at,
        cast({{ json_str("payload", "amount_cny") }} as double precision) as amount_cny,
        {{ json_str("payload", "status") }} as status
    from latest
)

select * from final
