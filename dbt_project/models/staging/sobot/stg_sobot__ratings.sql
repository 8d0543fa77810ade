-- Sobot 智齿 satisfaction evaluations (get_satisfaction): score 1-5 kept raw on the
-- `five_point` scale (the rating_scales seed maps it to CSAT), NPS 0-10 where asked (-1 = not
-- asked -> null). Key (cid, type): an agent (1) and a bot (0) evaluation may both exist.
with

source as (
    select * from {{ source("raw_sobot", "ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "cid") }} as cid,
        cast({{ json_str("payload", "type") }} as integer) as evaluation_type,
        {{ json_str("payload", "score") }} as score,
        cast({{ json_str("payload", "nps") }} as integer) as nps,
        _record_time as rated_at,
        _source
    from latest
),

final as (
    select
        'sobot' as channel,
        'sobot:' || cid as conversation_id,
        evaluation_type,
        rated_at,
        cast('five_point' as varchar) as rating_scale,
        score as rating_raw,
        case when nps between 0 and 10 then nps end as nps,
        _source
    from renamed
)

select * from final
