-- Every platform's agent accounts (stg_<platform>__agents), one row per account, with
-- the person behind it from the agent_accounts seed (one person may hold accounts on
-- several platforms). An account the seed does not know is a person of its own.
with

unioned as (
    {{ union_platforms("agents", ["channel", "agent_account", "agent_name", "team"],
        empty="select cast(null as varchar) as channel, cast(null as varchar) as agent_account, cast(null as varchar) as agent_name, cast(null as varchar) as team where 1 = 0") }}
),

mapping as (
    select * from {{ ref("agent_accounts") }}
),

accounts as (
    select
        channel,
        agent_account,
        max(agent_name) as agent_name,
        max(team) as team
    from unioned
    where agent_account is not null
    group by channel, agent_account
),

known as (
    select channel, agent_account from accounts
    union
    select channel, agent_account from mapping
),

final as (
    select
        known.channel || ':' || known.agent_account as agent_account_key,
        known.channel,
        known.agent_account,
        coalesce(mapping.agent_id, known.channel || ':' || known.agent_account) as agent_id,
        coalesce(mapping.agent_name, accounts.agent_name) as agent_name,
        coalesce(mapping.team, accounts.team) as team,
        mapping.agent_id is not null as is_mapped,
        accounts.agent_account is not null as seen_on_platform
    from known
    left join accounts on accounts.channel = known.channel and accounts.agent_account = known.agent_account
    left join mapping on mapping.channel = known.channel and mapping.agent_account = known.agent_account
)

select * from final
