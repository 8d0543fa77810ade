-- Meiqia 美洽 agent status intervals (GET /v1/agents/status_logs) by start, re-read until
-- they end; the newest version of each (agent, start) has the end (null while it lasts).
with

source as (
    select * from {{ source("raw_meiqia", "agent_status") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        'meiqia' as channel,
        {{ json_str("payload", "agent_id") }} as agent_account,
        {{ json_str("payload", "status") }} as status,
        _record_time as started_at,
        {{ local_to_utc("cast(" ~ json_str("payload", "end_tm") ~ " as " ~ dbt.type_timestamp() ~ ")") }} as ended_at,
        _source
    from latest
)

select * from final
