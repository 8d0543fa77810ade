-- WeCom 微信客服 satisfaction ratings (满意度评价), read from the admin console: the API has
-- none. The console's 1-5 score is kept raw and mapped to CSAT by the rating_scales seed
-- (`five_point`); no NPS. WeCom has no session id, so `conversation_id` is null here:
-- int_ratings_unioned attaches each rating to the customer's sessionised conversation.
{{ console_ratings("wecom") }}
