-- Taobao service evaluations (wangwang.eservice.evals.get eval_detail). eval_code 0 非常满意,
-- 1 满意, 2 一般, 3 不满意, 4 非常不满意: the `taobao_eval_code` rating scale maps it to CSAT
-- 5..1. The conversation is the sandbox's session_id extension (null on a real account).
with

source as (
    select * from {{ source("raw_taobao", "ratings") }}
),

latest as (
    {{ latest_version("source") }}
),

renamed as (
    select
        {{ json_str("payload", "session_id") }} as session_id,
        {{ json_str("payload", "eval_code") }} as eval_code,
        {{ json_str("payload", "eval_sender") }} as eval_sender,
        {{ json_str("payload", "eval_recer") }} as eval_recer,
        _record_time as rated_at,
        _source
    from latest
),

final as (
    select
        'taobao' as channel,
        'taobao:' || session_id as conversation_id,
        rated_at,
        cast('taobao_eval_code' as varchar) as rating_scale,
        eval_code as rating_raw,
        cast(null as integer) as nps,
        case when eval_sender like 'cntaobao%' then substr(eval_sender, 9) else eval_sender end as agent_account,
        {{ hash_id("case when eval_recer like 'cntaobao%' then substr(eval_recer, 9) else eval_recer end", "taobao") }} as customer_key,
        _source
    from renamed
)

select * from final
