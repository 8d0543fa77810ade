-- Douyin Feige 飞鸽 satisfaction ratings (满意度评价): the customer's 1-5 score, kept raw
-- and mapped to CSAT by the rating_scales seed (`five_point`). Douyin asks no NPS.
{{ console_ratings("douyin") }}
