-- JD session evaluations (jingdong.im.pop.evaluationlist.get): score 1..5 (5 best), the
-- `five_point` rating scale. One evaluation per session (a newer one replaces it).
with

source as (
    select * from {{ source("raw_jd", "ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

final as (
    select
        'jd' as channel,
        'jd:' || {{ json_str("payload", "sid") }} as conversation_id,
        _record_time as rated_at,
        cast('five_point' as varchar) as rating_scale,
        {{ json_str("payload", "score") }} as rating_raw,
        cast(null as integer) as nps,
        {{ json_str("payload", "waiter") }} as agent_account,
        {{ hash_id(json_str("payload", "customer"), "jd") }} as customer_key,
        _source
    from latest
)

select * from final
