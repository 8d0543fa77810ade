-- WeChat Official Account customer-service accounts (getkflist), read as a snapshot each run
-- (key kf_account + polled_at); the newest snapshot of each account is its current nickname.
with

source as (
    select * from {{ source("raw_wechat_oa", "agents") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "kf_account")) }}
),

final as (
    select
        'wechat_oa' as channel,
        {{ json_str("payload", "kf_account") }} as agent_account,
        {{ json_str("payload", "kf_nick") }} as agent_name,
        cast(null as varchar) as team,
        {{ json_str("payload", "kf_id") }} as kf_id,
        _record_time as snapshot_at,
        _source
    from latest
)

select * from final
