-- One row per agent account on a platform, with the person behind it (agent_accounts
-- seed; an unmapped account is a person of its own, agent_id = `<channel>:<account>`),
-- name and team, and when the account was first and last seen working or online.
with

accounts as (
    select * from {{ ref("int_agents_unioned") }}
),

conversations as (
    select * from {{ ref("fct_conversations") }}
),

status as (
    select * from {{ ref("int_agent_status_intervals") }}
),

activity as (
    select channel, first_agent_account as agent_account, first_response_at as active_at from conversations
    where first_agent_account is not null
    union all
    select channel, agent_account, started_at as active_at from status
    union all
    select channel, agent_account, ended_at as active_at from status
),

seen as (
    select
        channel,
        agent_account,
        min(active_at) as first_seen_at,
        max(active_at) as last_seen_at
    from activity
    group by channel, agent_account
),

answered as (
    select channel, first_agent_account as agent_account, count(*) as conversations_answered
    from conversations
    where first_agent_account is not null
    group by channel, first_agent_account
),

all_accounts as (
    select channel, agent_account from accounts
    union
    select channel, agent_account from seen
),

final as (
    select
        cast(all_accounts.channel || ':' || all_accounts.agent_account as varchar) as agent_account_key,
        cast(all_accounts.channel as varchar) as channel,
        cast(all_accounts.agent_account as varchar) as agent_account,
        cast(coalesce(accounts.agent_id, all_accounts.channel || ':' || all_accounts.agent_account) as varchar) as agent_id,
        cast(accounts.agent_name as varchar) as agent_name,
        cast(accounts.team as varchar) as team,
        coalesce(accounts.is_mapped, false) as is_mapped,
        coalesce(accounts.seen_on_platform, false) as in_agent_list,
        seen.first_seen_at,
        seen.last_seen_at,
        cast(coalesce(answered.conversations_answered, 0) as bigint) as conversations_answered,
        {{ as_of() }} as as_of
    from all_accounts
    left join accounts on accounts.channel = all_accounts.channel and accounts.agent_account = all_accounts.agent_account
    left join seen on seen.channel = all_accounts.channel and seen.agent_account = all_accounts.agent_account
    left join answered on answered.channel = all_accounts.channel and answered.agent_account = all_accounts.agent_account
)

select * from final
