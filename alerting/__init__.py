"""Alerting: real-time and interval rules, root-cause hints, pipeline monitoring,
notifiers (WeCom / DingTalk robots, SMTP) and the daily and weekly manager reports.

- `rules`: the YAML rule file, validated on load (`load_rules`);
- `store`: the alert store (SQLite under `<data>/alerting/`, attached as `alerting`);
- `realtime`: every-minute rules on landed real-time batches and live-state endpoints;
- `interval`: rules on the marts after each transform, plus pipeline monitoring;
- `hints`: one-sentence root-cause hints with numbers;
- `notifiers`: delivery with retries, never raising into the pipeline;
- `engine`: de-duplication, cool-down, resolution and delivery bookkeeping;
- `reports`: self-contained HTML manager reports.

Alerts and reports never carry a raw customer identifier (DESIGN §11): sessions are named
by the same salted hash the marts use.
"""
