-- Meiqia 美洽 ratings: `comment_level` of the conversation records (Meiqia SDK codes 2 好评,
-- 1 中评, 0 差评) as the `three_level` scale's raw values good / medium / bad (the
-- rating_scales seed maps them to CSAT 5 / 3 / 1). Meiqia gives no rating time: the
-- conversation's end (`conv_end_tm`) stands in for it (ratings come minutes after the end).
-- No NPS.
with

source as (
    select * from {{ source("raw_meiqia", "conversations") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "conv_id") }} as platform_conversation_id,
        cast({{ json_str("payload", "comment_level") }} as integer) as comment_level,
        _record_time as ended_at,
        _source
    from latest
),

final as (
    select
        'meiqia' as channel,
        'meiqia:' || platform_conversation_id as conversation_id,
        ended_at as rated_at,
        cast('three_level' as varchar) as rating_scale,
        case comment_level when 2 then 'good' when 1 then 'medium' when 0 then 'bad' end as rating_raw,
        cast(null as integer) as nps,
        _source
    from renamed
    where comment_level is not null
)

select * from final
