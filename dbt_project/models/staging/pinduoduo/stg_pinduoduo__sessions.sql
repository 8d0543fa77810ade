-- Pinduoduo 多多客服 conversations from the console's 会话记录 report, as the console shows
-- them at the newest read: hand-off, assignment, first response, first close, the
-- console's own wait and FRT seconds, status and rating. Not unioned into the canonical
-- model (the message log carries the same timeline); kept to reconcile the warehouse's
-- metrics with what the console reports.
{{ console_sessions("pinduoduo") }}
