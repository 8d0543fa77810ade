-- Every platform's messages and session events in one canonical shape, as known at
-- as_of. sender_type: customer | agent | bot | system; event_type on system rows:
-- handoff | assign | transfer | close | reopen.
-- Incremental: a run adds the rows of batches it has not seen (new messages and newer
-- versions of old ones, which replace them by message_key) and the rows as_of now
-- reaches; `_built_at` (the run's start) tells int_messages_sessionised what changed.
-- Batch ids sort by landing time: batches landed up to var('incremental_lookback_hours')
-- before the newest one seen still count as new. The filter is made of literals so the
-- engine applies it while scanning raw, before staging parses any JSON.
{{ config(materialized="incremental", unique_key="message_key", incremental_strategy="delete+insert") }}
{%- set new_rows = "1 = 1" -%}
{%- if is_incremental() and execute -%}
    {%- set seen = run_query("select max(_batch_id), max(" ~ epoch_s("sent_at") ~ ") from " ~ this).rows[0] -%}
    {%- if seen[0] is not none and modules.re.match("^[0-9]{8}T[0-9]{12}Z", seen[0]) -%}
        {%- set s = seen[0] -%}
        {%- set newest = modules.datetime.datetime(s[0:4] | int, s[4:6] | int, s[6:8] | int, s[9:11] | int, s[11:13] | int, s[13:15] | int) -%}
        {#- the id prefix (YYYYMMDDTHHMMSS) of the look-back's start -#}
        {%- set cutoff = (newest - modules.datetime.timedelta(hours=var("incremental_lookback_hours", 72))).isoformat().replace("-", "").replace(":", "") -%}
        {%- set recent = run_query("select distinct _batch_id from " ~ this ~ " where _batch_id >= '" ~ cutoff ~ "'").columns[0].values() -%}
        {%- set new_rows -%}
            (_batch_id >= '{{ cutoff }}'{% if recent %} and _batch_id not in ('{{ recent | join("', '") }}'){% endif %})
            or sent_at > to_timestamp({{ seen[1] }})
        {%- endset -%}
    {%- elif seen[0] is not none -%}
        {#- batch ids not from connectors.core.landing: compare with every one seen (slower) -#}
        {%- set new_rows -%}
            _batch_id not in (select _batch_id from {{ this }}) or sent_at > to_timestamp({{ seen[1] }})
        {%- endset -%}
    {%- endif -%}
{%- endif %}
with

unioned as (
    {{ union_platforms("messages", [
        "channel", "platform_message_id", "platform_conversation_id", "customer_key", "service_account",
        "sender_type", "event_type", "agent_account", "content", "sent_at", "_batch_id", "_row_number"
    ]) }}
),

final as (
    select
        channel || ':' || platform_message_id as message_key,
        *,
        {{ run_started() }} as _built_at
    from unioned
    where sent_at <= {{ as_of() }} and ({{ new_rows }})
)

select * from final
