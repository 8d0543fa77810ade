-- Douyin Feige 飞鸽 messages and session events from the console's 聊天记录 report.
-- The console shows the session's events as message rows (发送方 系统, 事件 转人工 / 接入 /
-- 转接 / 结束会话 / 重新打开), mapped by the scraper to sender `system` and event
-- handoff | assign | transfer | close | reopen; so the timeline needs no synthesis from
-- the sessions report. Times are whole seconds (the console truncates).
{{ console_messages("douyin") }}
