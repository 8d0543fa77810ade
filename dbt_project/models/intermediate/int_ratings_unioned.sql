-- Every platform's ratings, normalised: CSAT 1-5 by the rating-scale seed (the raw value
-- is kept), NPS 0-10 where the platform asks. One rating per conversation (the latest).
with

unioned as (
    {{ union_platforms("ratings", ["channel", "conversation_id", "rated_at", "rating_scale", "rating_raw", "nps"],
        empty="select cast(null as varchar) as channel, cast(null as varchar) as conversation_id, cast(null as timestamp with time zone) as rated_at, cast(null as varchar) as rating_scale, cast(null as varchar) as rating_raw, cast(null as integer) as nps where 1 = 0") }}
),

scales as (
    select * from {{ ref("rating_scales") }}
),

normalised as (
    select
        unioned.channel,
        unioned.conversation_id,
        unioned.rated_at,
        unioned.rating_scale,
        unioned.rating_raw,
        scales.csat,
        unioned.nps,
        row_number() over (partition by unioned.conversation_id order by unioned.rated_at desc) as rating_rank
    from unioned
    left join scales on scales.rating_scale = unioned.rating_scale and scales.raw_value = unioned.rating_raw
    where unioned.rated_at <= {{ as_of() }}
),

final as (
    select channel, conversation_id, rated_at, rating_scale, rating_raw, csat, nps
    from normalised
    where rating_rank = 1
)

select * from final
