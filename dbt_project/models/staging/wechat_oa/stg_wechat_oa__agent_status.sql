-- WeChat Official Account agent presence from the polls: getonlinekflist lists the agents
-- online at the poll (status 1 web, 2 mobile, 3 both; `accepted_case` their open sessions),
-- offline agents are absent. Every account of the same run's getkflist snapshot (the same
-- `polled_at`) that the online list lacks is offline at that poll. One row per account and
-- poll, `ended_at` null (int_agent_status_intervals runs each to the next poll).
with

online_source as (
    select * from {{ source("raw_wechat_oa", "agent_status") }}
),

account_source as (
    select * from {{ source("raw_wechat_oa", "agents") }}
),

online as (
    select
        {{ json_str("payload", "kf_account") }} as agent_account,
        cast({{ json_str("payload", "accepted_case") }} as integer) as accepted_case,
        _record_time as polled_at,
        _source
    from online_source
),

accounts as (
    select
        {{ json_str("payload", "kf_account") }} as agent_account,
        _record_time as polled_at,
        _source
    from account_source
),

offline as (
    select
        accounts.agent_account,
        cast(null as integer) as accepted_case,
        accounts.polled_at,
        accounts._source
    from accounts
    left join online
        on online.agent_account = accounts.agent_account
        and online.polled_at = accounts.polled_at
    where online.agent_account is null
),

final as (
    select
        'wechat_oa' as channel,
        agent_account,
        'online' as status,
        accepted_case,
        polled_at as started_at,
        cast(null as {{ dbt.type_timestamp() }} with time zone) as ended_at,
        _source
    from online
    union all
    select
        'wechat_oa' as channel,
        agent_account,
        'offline' as status,
        accepted_case,
        polled_at as started_at,
        cast(null as {{ dbt.type_timestamp() }} with time zone) as ended_at,
        _source
    from offline
)

select * from final
