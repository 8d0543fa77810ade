"""Message texts, held as categorical codes (never a Python string per message).

The first customer message of a conversation carries its topic's keywords as listed in
`dbt_project/seeds/topic_keywords.csv`; some mention two topics on purpose, so the
seed's priority decides (a late parcel *and* a refund is a refund). Every other
customer text contains no topic keyword.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sandbox.config import TOPICS

FIRST_MESSAGES: dict[str, tuple[str, ...]] = {
    "complaint": ("我要投诉，你们的客服太差了", "东西收到就坏了，给差评", "投诉：快递员态度很差"),
    "refund": ("我想申请退款", "快递一直不到，我要退款", "这个能退货吗？尺码不合适"),
    "shipping": ("我的快递到哪了？", "什么时候发货", "物流三天没更新了"),
    "order_change": ("能帮我改地址吗", "我想修改订单里的颜色"),
    "promotion": ("优惠券怎么用不了", "满减活动还有吗", "会员日活动什么时候开始"),
    "product": ("这件衣服尺码偏大吗", "请问是什么材质", "这个怎么用？"),
    "account": ("我登录不上了", "会员积分怎么查", "I forgot my password"),
    "other": ("你好", "在吗？", "有人吗"),
}
FIXED: dict[str, str] = {
    "customer_more": "嗯嗯，麻烦看一下",
    "customer_turn": "好的，还有一个问题",
    "customer_reopen": "你好，刚才的问题还是没解决",
    "nudge": "还在吗？等很久了",
    "ask_human": "转人工",
    "bot_greet": "您好，我是智能助手，请问有什么可以帮您？",
    "bot_answer": "已为您找到答案，请查看帮助中心链接。",
    "agent_first": "亲，您好，很高兴为您服务，我来帮您看一下",
    "agent_reply": "好的亲，已经为您处理了",
    "agent_more": "还有其他可以帮您的吗？",
}

_CATEGORIES: list[str] = []
_FIRST_CODES: dict[str, np.ndarray] = {}
for _topic in TOPICS:
    start = len(_CATEGORIES)
    _CATEGORIES.extend(FIRST_MESSAGES[_topic])
    _FIRST_CODES[_topic] = np.arange(start, len(_CATEGORIES), dtype=np.int32)
_FIXED_CODES = {}
for _kind, _text in FIXED.items():
    _FIXED_CODES[_kind] = len(_CATEGORIES)
    _CATEGORIES.append(_text)
CATEGORIES = tuple(_CATEGORIES)


def code(kind: str) -> int:
    return _FIXED_CODES[kind]


def first_message_codes(topic_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(topic_idx.size, np.int32)
    for i, topic in enumerate(TOPICS):
        sel = topic_idx == i
        out[sel] = rng.choice(_FIRST_CODES[topic], int(sel.sum()))
    return out


def categorical(codes: np.ndarray) -> pd.Categorical:
    """Codes -> categorical text; -1 (system events) -> missing."""
    return pd.Categorical.from_codes(codes, CATEGORIES)
