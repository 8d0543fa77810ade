-- Zendesk tickets (Incremental Ticket Export). The export returns a changed ticket again with
-- its new state, so raw holds one row per version (key id + updated_at); this keeps the
-- newest version of each ticket: its requester (the customer), current assignee and status.
-- A ticket's record shows only its current state: the timeline (assignment, transfers,
-- solving, reopening) comes from the ticket events (stg_zendesk__messages).
with

source as (
    select * from {{ source("raw_zendesk", "tickets") }}
),

latest as (
    {{ latest_version("source", key=json_str("payload", "id")) }}
),

renamed as (
    select
        {{ json_str("payload", "id") }} as ticket_id,
        {{ json_str("payload", "requester_id") }} as requester_id,
        {{ json_str("payload", "assignee_id") }} as assignee_id,
        {{ json_str("payload", "recipient") }} as recipient,
        {{ json_str("payload", "status") }} as status,
        {{ json_str("payload", "subject") }} as subject,
        {{ json_str("payload", "via.channel") }} as via_channel,
        {{ json_str("payload", "satisfaction_rating.score") }} as satisfaction_score,
        cast({{ json_str("payload", "created_at") }} as {{ dbt.type_timestamp() }} with time zone) as created_at,
        _record_time as updated_at,
        _source
    from latest
),

final as (
    select
        'zendesk' as channel,
        ticket_id,
        requester_id,
        {{ hash_id("requester_id", "zendesk") }} as customer_key,
        recipient as service_account,
        assignee_id as agent_account,
        status,
        subject,
        via_channel,
        satisfaction_score,
        created_at,
        updated_at,
        _source
    from renamed
)

select * from final
