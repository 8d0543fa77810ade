-- Every platform's ratings, normalised: CSAT 1-5 by the rating-scale seed (the raw value
-- is kept), NPS 0-10 where the platform asks. One rating per conversation (the latest).
-- A rating without a conversation id (WeCom has none: sessions are cut in dbt) belongs to
-- the customer's latest conversation on that channel that started at or before rated_at;
-- one that finds no such conversation (older than the messages landed) is left out.
{#- the platforms whose ratings carry no conversation id but the customer (the channels seed's
    has_conversation_id = false); only those of their ratings models that are staged -#}
{%- set keyed = [] -%}
{%- for platform in ["wecom", "wechat_oa"] -%}
    {%- if "stg_" ~ platform ~ "__ratings" in var("staging_models") -%}
        {%- do keyed.append("stg_" ~ platform ~ "__ratings") -%}
    {%- endif -%}
{%- endfor %}
with

unioned as (
    {{ union_platforms("ratings", ["channel", "conversation_id", "rated_at", "rating_scale", "rating_raw", "nps"],
        empty="select cast(null as varchar) as channel, cast(null as varchar) as conversation_id, cast(null as timestamp with time zone) as rated_at, cast(null as varchar) as rating_scale, cast(null as varchar) as rating_raw, cast(null as integer) as nps where 1 = 0") }}
),

unattached as (
    select *, row_number() over (order by channel, customer_key, rated_at, rating_raw) as rating_row
    from (
        {%- for model in keyed %}
        select channel, customer_key, rated_at, rating_scale, rating_raw, nps
        from {{ ref(model) }}
        where conversation_id is null
        {% if not loop.last %}union all{% endif %}
        {%- else %}
        select cast(null as varchar) as channel, cast(null as varchar) as customer_key, cast(null as timestamp with time zone) as rated_at, cast(null as varchar) as rating_scale, cast(null as varchar) as rating_raw, cast(null as integer) as nps where 1 = 0
        {%- endfor %}
    ) as keyed_ratings
),

conversation_starts as (
    select channel, customer_key, conversation_id, sent_at as started_at
    from {{ ref("int_messages_sessionised") }}
    where message_seq = 1 and customer_key in (select customer_key from unattached)
),

attached as (
    select
        unattached.channel,
        conversation_starts.conversation_id,
        unattached.rated_at,
        unattached.rating_scale,
        unattached.rating_raw,
        unattached.nps,
        row_number() over (
            partition by unattached.rating_row
            order by conversation_starts.started_at desc, conversation_starts.conversation_id desc
        ) as start_rank
    from unattached
    inner join conversation_starts
        on conversation_starts.channel = unattached.channel
        and conversation_starts.customer_key = unattached.customer_key
        and conversation_starts.started_at <= unattached.rated_at
),

all_ratings as (
    select channel, conversation_id, rated_at, rating_scale, rating_raw, nps
    from unioned
    where conversation_id is not null
    union all
    select channel, conversation_id, rated_at, rating_scale, rating_raw, nps
    from attached
    where start_rank = 1
),

scales as (
    select * from {{ ref("rating_scales") }}
),

normalised as (
    select
        all_ratings.channel,
        all_ratings.conversation_id,
        all_ratings.rated_at,
        all_ratings.rating_scale,
        all_ratings.rating_raw,
        scales.csat,
        all_ratings.nps,
        row_number() over (partition by all_ratings.conversation_id order by all_ratings.rated_at desc) as rating_rank
    from all_ratings
    left join scales on scales.rating_scale = all_ratings.rating_scale and scales.raw_value = all_ratings.rating_raw
    where all_ratings.rated_at <= {{ as_of() }}
),

final as (
    select channel, conversation_id, rated_at, rating_scale, rating_raw, csat, nps
    from normalised
    where rating_rank = 1
)

select * from final
