-- JD waiter status intervals (jingdong.im.pop.waiterstatus.get, a sandbox extension):
-- status 1 online, 2 busy, 3 away, 0 offline; endTime absent while the status lasts.
with

source as (
    select * from {{ source("raw_jd", "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        'jd' as channel,
        {{ json_str("payload", "waiter") }} as agent_account,
        case cast({{ json_str("payload", "status") }} as integer)
            when 1 then 'online' when 2 then 'busy' when 3 then 'away' else 'offline'
        end as status,
        _record_time as started_at,
        to_timestamp(cast({{ json_str("payload", "endTime") }} as {{ dbt.type_bigint() }}) / 1000.0) as ended_at,
        _source
    from latest
)

select * from final
