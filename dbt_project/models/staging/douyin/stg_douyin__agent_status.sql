-- Douyin Feige 飞鸽 agent presence (客服状态记录): online intervals by start, re-read until
-- they end; the newest version of each (account, start) has the end (null while online).
{{ console_agent_status("douyin") }}
