-- Where a response block's wait starts: its first customer message; for block 1, the
-- human queue start when that is later (bot first, then hand-off) - but only if the queue
-- started before the reply (a session that joins two contacts can carry a later hand-off).
{% macro block_wait_start(block_no, block_start_at, queue_start_at, replied_at) -%}
    case
        when {{ block_no }} = 1
            and {{ queue_start_at }} > {{ block_start_at }}
            and ({{ replied_at }} is null or {{ queue_start_at }} <= {{ replied_at }})
            then {{ queue_start_at }}
        else {{ block_start_at }}
    end
{%- endmacro %}
