-- Zendesk CSAT ratings (satisfaction_ratings.json): two-point `score` good | bad, the
-- `zendesk_good_bad` scale's raw values (the rating_scales seed maps them to CSAT 5 / 1).
-- `offered` / `unoffered` are not ratings. A customer may change a rating: the newest version
-- of each rating id is kept. The API asks no NPS; console rows (fallback) carry the
-- console's NPS column when the customer answered it.
with

source as (
    select * from {{ source("raw_zendesk", "satisfaction_ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "id") }} as rating_id,
        {{ json_str("payload", "ticket_id") }} as ticket_id,
        {{ json_str("payload", "score") }} as score,
        cast(nullif({{ json_str("payload", "nps") }}, '') as integer) as nps,
        _record_time as rated_at,
        _source
    from latest
),

final as (
    select
        'zendesk' as channel,
        'zendesk:' || ticket_id as conversation_id,
        rating_id,
        rated_at,
        cast('zendesk_good_bad' as varchar) as rating_scale,
        score as rating_raw,
        nps,
        _source
    from renamed
    where score in ('good', 'bad')
)

select * from final
