-- Pinduoduo 多多客服 agent presence (客服状态记录): online intervals by start, re-read until
-- they end; the newest version of each (account, start) has the end (null while online).
with

source as (
    select * from {{ source("raw_pinduoduo", "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        'pinduoduo' as channel,
        {{ json_str("payload", "agent_account") }} as agent_account,
        {{ json_str("payload", "status") }} as status,
        _record_time as started_at,
        cast({{ json_str("payload", "ended_at") }} as timestamp with time zone) as ended_at,
        _source
    from latest
)

select * from final
