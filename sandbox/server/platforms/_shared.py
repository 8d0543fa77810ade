"""Helpers several platform servers share: epoch milliseconds, a small memo of prepared
windows, and a channel's messages sliced by conversation."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd


def epoch_ms(series: pd.Series) -> np.ndarray:
    return series.to_numpy("datetime64[ms]").astype(np.int64)


class WindowMemo:
    """The last few prepared windows, keyed by everything they depend on (window, clock, the
    late-updates fault), so reading one window in many calls costs one window, not many.
    A key of None (a running clock: nothing repeats) builds without keeping."""

    def __init__(self, size: int = 4):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key, build):
        if key is None:
            return build()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class MessagesByConversation:
    """A channel's messages ordered by conversation, so one conversation's messages are a
    slice (the visible window still comes from `state.window`; for channels that hide no
    sender)."""

    def __init__(self, state, platform: str):
        self.platform = platform
        msgs = state.data["messages"]
        msgs = msgs[msgs["channel"] == platform]
        self.frame = msgs.sort_values(
            ["conversation_id", "sent_at", "message_id"], kind="stable"
        ).reset_index(drop=True)
        self.ids = self.frame["conversation_id"].to_numpy()
        self.times = epoch_ms(self.frame["sent_at"])

    def messages(self, state, conversation_id: int) -> pd.DataFrame:
        lo = int(np.searchsorted(self.ids, conversation_id, "left"))
        hi = int(np.searchsorted(self.ids, conversation_id, "right"))
        lower, upper = state.window(self.platform)
        t = self.times[lo:hi]
        keep = t <= upper.value // 10**6
        if lower is not None:
            keep &= t >= lower.value // 10**6
        return self.frame.iloc[lo:hi][keep]
