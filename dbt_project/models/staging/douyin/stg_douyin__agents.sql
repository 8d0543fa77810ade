-- Douyin Feige 飞鸽 agent accounts (客服列表). The console list is read as a snapshot each
-- run (key: account + snapshot time); the newest snapshot of each account is its current
-- name, team and presence. An account that left the list keeps its last snapshot.
{{ console_agents("douyin") }}
