-- The shop's sub-accounts (sellercenter.subusers.get), latest snapshot of each. The main
-- account is the shop (and its bot), not an agent, and is not listed.
with

source as (
    select * from {{ source("raw_taobao", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "nick")) }}
),

final as (
    select
        'taobao' as channel,
        {{ json_str("payload", "nick") }} as agent_account,
        {{ json_str("payload", "full_name") }} as agent_name,
        cast(null as varchar) as team,
        cast({{ json_str("payload", "status") }} as integer) as account_status,
        _record_time as polled_at,
        _source
    from latest
    where {{ json_str("payload", "nick") }} is not null
)

select * from final
