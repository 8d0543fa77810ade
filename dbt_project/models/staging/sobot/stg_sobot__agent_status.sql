-- Sobot 智齿 staff status intervals (get_staff_status_log) by start, re-read until they end:
-- status 1 online, 2 busy, 3 away, 0 offline; end_time 0 while the status lasts.
with

source as (
    select * from {{ source("raw_sobot", "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "staff_id") }} as staff_id,
        cast({{ json_str("payload", "status") }} as integer) as status_code,
        cast({{ json_str("payload", "end_time") }} as bigint) as end_time_ms,
        _record_time as started_at,
        _source
    from latest
),

final as (
    select
        'sobot' as channel,
        staff_id as agent_account,
        case status_code when 1 then 'online' when 2 then 'busy' when 3 then 'away' when 0 then 'offline' end as status,
        started_at,
        case when end_time_ms > 0 then to_timestamp(end_time_ms / 1000.0) end as ended_at,
        _source
    from renamed
)

select * from final
