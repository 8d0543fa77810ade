-- JD 京东咚咚 chat messages (jingdong.im.pop.chatlog.get) plus each session's end from the
-- session list (sessionlist.get `endTime`) as a `close` system row, so the timeline lives in
-- one place. waiterSend false is the customer; a waiter message is the shop robot's when the
-- waiter is a robot account (var `jd_robot_waiters`, the groupinfo accounts with robot=true;
-- the console fallback leaves the robot's waiter empty), else an agent's. JOS shows no
-- hand-off or assignment moment, and endTime is the LAST close (a reopened session shows one
-- close). Times are epoch milliseconds.
{%- set robots = var("jd_robot_waiters", ["jd_shop_robot"]) %}
with

messages_source as (
    select * from {{ source("raw_jd", "messages") }}
),

sessions_source as (
    select * from {{ source("raw_jd", "sessions") }}
),

latest_messages as (
    {{ latest_version("messages_source") }}
),

latest_sessions as (
    {{ latest_version("sessions_source") }}
),

messages as (
    select
        {{ json_str("payload", "msg_key") }} as msg_key,
        {{ json_str("payload", "sid") }} as sid,
        {{ json_str("payload", "customer") }} as customer,
        {{ json_str("payload", "waiter") }} as waiter,
        {{ json_str("payload", "waiterSend") }} as waiter_send,
        {{ json_str("payload", "content") }} as content,
        _record_time as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest_messages
),

chat as (
    select
        'jd' as channel,
        msg_key as platform_message_id,
        sid as platform_conversation_id,
        {{ hash_id("customer", "jd") }} as customer_key,
        cast(null as varchar) as service_account,
        case
            when waiter_send = 'false' then 'customer'
            when waiter is null or waiter in ({% for w in robots %}'{{ w }}'{% if not loop.last %}, {% endif %}{% endfor %}) then 'bot'
            else 'agent'
        end as sender_type,
        cast(null as varchar) as event_type,
        case
            when waiter_send = 'true' and waiter is not null
                and waiter not in ({% for w in robots %}'{{ w }}'{% if not loop.last %}, {% endif %}{% endfor %})
                then waiter
        end as agent_account,
        content,
        sent_at,
        _batch_id,
        _row_number,
        _source
    from messages
),

session_ends as (
    select
        'jd' as channel,
        {{ json_str("payload", "sid") }} || ':end' as platform_message_id,
        {{ json_str("payload", "sid") }} as platform_conversation_id,
        {{ hash_id(json_str("payload", "customer"), "jd") }} as customer_key,
        cast(null as varchar) as service_account,
        'system' as sender_type,
        'close' as event_type,
        cast(null as varchar) as agent_account,
        cast(null as varchar) as content,
        to_timestamp(cast({{ json_str("payload", "endTime") }} as {{ dbt.type_bigint() }}) / 1000.0) as sent_at,
        _batch_id,
        _row_number,
        _source
    from latest_sessions
    where {{ json_str("payload", "endTime") }} is not null
        and {{ json_str("payload", "sid") }} is not null
),

final as (
    select * from chat
    union all
    select * from session_ends
)

select * from final
