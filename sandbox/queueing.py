"""A first-come-first-served multi-server queue with impatient customers and a roster
that changes every interval.

Each agent on duty offers `concurrency` slots. Agents are ranked per channel: the agent
of rank k is on duty in interval i when the roster has more than k agents then, so a
roster (agents per interval) fully defines who can take work when. Customers are served
in order of queue entry by the earliest free slot whose agent is on duty; a customer
whose wait would exceed their patience abandons. This is the one sequential loop of the
simulation (a heap operation or two per contact).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from sandbox.config import INTERVAL_S

INF = float("inf")


@dataclass
class QueueResult:
    assigned_at: np.ndarray  # NaN: abandoned or never served
    slot: np.ndarray  # slot index (agent rank = slot // concurrency); -1 when not served

    def rank(self, concurrency: int) -> np.ndarray:
        return np.where(self.slot >= 0, self.slot // concurrency, -1)


class _Roster:
    """When is the agent of rank k next on duty, at or after time t?"""

    def __init__(self, agents: np.ndarray, t0: float):
        self.agents = agents
        self.t0 = t0
        self.n = len(agents)
        self._next: dict[int, np.ndarray] = {}

    def _next_on(self, rank: int) -> np.ndarray:
        nxt = self._next.get(rank)
        if nxt is None:
            on = self.agents > rank
            idx = np.where(on, np.arange(self.n), self.n)
            # next on-duty interval index at or after i (n = never)
            nxt = np.minimum.accumulate(idx[::-1])[::-1]
            self._next[rank] = nxt
        return nxt

    def available(self, rank: int, t: float) -> float:
        if t == INF:
            return INF
        i = int((t - self.t0) // INTERVAL_S)
        if i >= self.n:
            return INF
        if i < 0:
            i, t = 0, self.t0
        j = int(self._next_on(rank)[i])
        if j >= self.n:
            return INF
        return t if j == i else self.t0 + j * INTERVAL_S


def serve(
    queue_start: np.ndarray,
    busy_s: np.ndarray,
    patience_s: np.ndarray,
    agents: np.ndarray,
    t0: float,
    concurrency: int,
) -> QueueResult:
    """Run the queue. `queue_start` need not be sorted; NaN entries never queue."""
    n = len(queue_start)
    assigned = np.full(n, np.nan)
    slots = np.full(n, -1, dtype=np.int64)
    max_agents = int(agents.max()) if len(agents) else 0
    if max_agents == 0 or n == 0:
        return QueueResult(assigned, slots)
    roster = _Roster(agents, t0)
    heap = [(t0, s) for s in range(max_agents * concurrency)]
    heapq.heapify(heap)
    order = np.argsort(queue_start, kind="stable")
    q_list = queue_start[order].tolist()
    busy_list = busy_s[order].tolist()
    pat_list = patience_s[order].tolist()
    available = roster.available
    for pos, q in enumerate(q_list):
        if q != q:  # NaN: the bot resolved it
            continue
        while True:
            free, slot = heap[0]
            t = free if free > q else q
            a = available(slot // concurrency, t)
            if a == t:
                break
            heapq.heapreplace(heap, (a, slot))
        if t == INF or t - q > pat_list[pos]:
            continue  # abandoned (or the roster ends before anyone is free)
        idx = order[pos]
        assigned[idx] = t
        slots[idx] = slot
        heapq.heapreplace(heap, (t + busy_list[pos], slot))
    return QueueResult(assigned, slots)
