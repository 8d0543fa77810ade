"""Customers (with identities on several platforms, orders and a CRM mapping feed) and
agents (with accounts on the platforms they serve)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sandbox.config import INTERVAL_S, SimConfig
from sandbox.demand import ChannelGrid, to_ts

IDENTITY_RATE = {
    "taobao": 0.45,
    "jd": 0.30,
    "pinduoduo": 0.25,
    "douyin": 0.25,
    "wecom": 0.30,
    "wechat_oa": 0.25,
    "meiqia": 0.15,
    "sobot": 0.12,
    "zendesk": 0.06,
}
SHOP_CHANNELS = ("taobao", "jd", "pinduoduo", "douyin")
# Agents often serve two related back offices; a share of one pool joins the partner's.
POOL_PARTNER = {"jd": "taobao", "wechat_oa": "wecom", "sobot": "meiqia", "douyin": "pinduoduo"}
SHARED_AGENT_SHARE = 0.15
TEAMS = {
    "taobao": "Marketplace A",
    "jd": "Marketplace A",
    "pinduoduo": "Marketplace B",
    "douyin": "Marketplace B",
    "wecom": "WeChat",
    "wechat_oa": "WeChat",
    "meiqia": "Web",
    "sobot": "Web",
    "zendesk": "Global",
}
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞斌宇浩凯晨欣怡佳琪子涵梓轩")
ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _random_strings(rng: np.random.Generator, n: int, length: int, alphabet=ALNUM, prefix="") -> np.ndarray:
    raw = alphabet[rng.integers(0, alphabet.size, (n, length))]
    body = raw.view(f"S{length}").ravel().astype(str)
    return np.char.add(prefix, body) if prefix else body


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    s = np.asarray(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.asarray(GIVEN)[rng.integers(0, len(GIVEN), n)]
    g2 = np.where(rng.random(n) < 0.6, np.asarray(GIVEN)[rng.integers(0, len(GIVEN), n)], "")
    return np.char.add(np.char.add(s, g1), g2)


def platform_user_id_format(channel: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Identifiers in each platform's own shape (all fake)."""
    if channel == "wecom":
        return _random_strings(rng, n, 30, prefix="wm")  # external_userid
    if channel == "wechat_oa":
        return _random_strings(rng, n, 27, prefix="o")  # openid
    if channel == "taobao":
        return np.char.add("tb", rng.choice(10**10, n, replace=False).astype(str))  # buyer nick
    if channel == "jd":
        return _random_strings(rng, n, 12, HEX, prefix="jd_")  # pin
    if channel == "pinduoduo":
        return np.char.add("pdd", (10**10 + rng.choice(10**10, n, replace=False)).astype(str))
    if channel == "douyin":
        return np.char.add("dy", (10**9 + rng.choice(10**9, n, replace=False)).astype(str))
    if channel == "meiqia":
        return _random_strings(rng, n, 24, HEX)  # visitor track id
    if channel == "sobot":
        return _random_strings(rng, n, 32, HEX)  # partnerid
    if channel == "zendesk":
        return (360000000000 + rng.choice(10**9, n, replace=False)).astype(str)  # requester id
    raise ValueError(f"unknown channel {channel!r}")


@dataclass
class People:
    customers: pd.DataFrame
    identities: pd.DataFrame
    orders: pd.DataFrame
    agent_seed: np.random.Generator
    days: int
    pools: dict[str, np.ndarray] = field(default_factory=dict)
    perms: dict[str, np.ndarray] = field(default_factory=dict)
    _agents: list[dict] = field(default_factory=list)
    _accounts: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.customer_ids = self.customers["customer_id"].to_numpy()
        weight = self.customers["activity"].to_numpy()
        self._by_channel = {}
        for channel, grp in self.identities.groupby("channel", sort=False):
            cust_pos = grp["customer_pos"].to_numpy()
            w = weight[cust_pos]
            self._by_channel[channel] = (cust_pos, grp["platform_user_id"].to_numpy(), np.cumsum(w) / w.sum())
        self._pos_in_channel = {
            ch: pd.Series(np.arange(v[0].size), index=v[0]) for ch, v in self._by_channel.items()
        }

    # -- customers -------------------------------------------------------------------
    def pick_customers(self, channel: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """Customer positions for `n` conversations, heavy users more often."""
        cust_pos, _, cdf = self._by_channel[channel]
        return cust_pos[np.searchsorted(cdf, rng.random(n), side="right").clip(0, cust_pos.size - 1)]

    def separate_sessions(
        self, channel: str, customer_pos: np.ndarray, start: np.ndarray, end: np.ndarray, gap_s: float, rng
    ) -> np.ndarray:
        """Re-pick customers so that one customer's conversations on `channel` never
        overlap and are at least `gap_s` apart. Platforms without conversation ids are
        sessionised downstream by the idle gap and session-end events; real customers
        do not chat in two parallel sessions with one service account."""
        pool, _, cdf = self._by_channel[channel]
        busy_until: dict[int, float] = {}
        out = customer_pos.copy()
        ends = np.where(np.isfinite(end), end, np.inf)
        for i in np.argsort(start, kind="stable").tolist():
            c = int(out[i])
            tries = 0
            while busy_until.get(c, -np.inf) > start[i] - gap_s and tries < 200:
                c = int(pool[min(int(np.searchsorted(cdf, rng.random(), side="right")), pool.size - 1)])
                tries += 1
            if tries == 200:
                raise RuntimeError(
                    f"{channel}: too few customers for non-overlapping sessions; raise customers_per_conversation"
                )
            out[i] = c
            busy_until[c] = ends[i]
        return out

    def platform_user_ids(self, channel: str, customer_pos: np.ndarray) -> pd.Categorical:
        _, uids, _ = self._by_channel[channel]
        codes = self._pos_in_channel[channel].loc[customer_pos].to_numpy()
        return pd.Categorical.from_codes(codes, categories=uids)

    # -- agents ----------------------------------------------------------------------
    def ensure_pool(self, channel: str, size: int) -> None:
        rng = self.agent_seed
        size = max(int(size), 1)
        partner = POOL_PARTNER.get(channel)
        shared = np.array([], dtype=np.int32)
        if partner in self.pools:
            k = max(1, int(round(min(size, self.pools[partner].size) * SHARED_AGENT_SHARE)))
            k = min(k, size - 1, self.pools[partner].size)
            shared = rng.choice(self.pools[partner], k, replace=False).astype(np.int32)
        new_n = size - shared.size
        first = len(self._agents) + 1
        new_ids = np.arange(first, first + new_n, dtype=np.int32)
        names = _names(rng, new_n)
        for aid, name in zip(new_ids.tolist(), names.tolist(), strict=True):
            self._agents.append(
                {"agent_id": aid, "name": name, "team": TEAMS[channel], "home_channel": channel}
            )
        pool = np.concatenate([new_ids, shared])
        for aid in pool.tolist():
            self._accounts.append(
                {"agent_id": aid, "channel": channel, "account_id": _account_id(channel, aid)}
            )
        self.pools[channel] = pool
        self.perms[channel] = np.stack([rng.permutation(pool.size) for _ in range(self.days + 2)])

    def agent_for(self, channel: str, rank: np.ndarray, at: np.ndarray, grid: ChannelGrid) -> np.ndarray:
        """Person behind the agent rank on duty at `at` (rank -> person changes daily)."""
        pool, perm = self.pools[channel], self.perms[channel]
        ok = (rank >= 0) & np.isfinite(at)
        day = np.where(ok, np.floor((np.where(ok, at, grid.t0) - grid.t0) / 86400), 0).astype(np.int64)
        day = day.clip(0, perm.shape[0] - 1)
        r = np.where(ok, rank, 0).clip(0, pool.size - 1)
        return np.where(ok, pool[perm[day, r]], -1).astype(np.int32)

    def tables(self) -> dict[str, pd.DataFrame]:
        cust = self.customers.drop(columns=["activity"])
        return {
            "customers": cust,
            "identities": self.identities.drop(columns=["customer_pos"]),
            "orders": self.orders,
            "agents": pd.DataFrame(self._agents),
            "agent_accounts": pd.DataFrame(self._accounts),
        }


def _account_id(channel: str, agent_id: int) -> str:
    return {
        "taobao": f"cs_shop:agent{agent_id:04d}",
        "jd": f"jd_waiter_{agent_id:04d}",
        "pinduoduo": f"pdd_cs_{agent_id:04d}",
        "douyin": f"dy_cs_{agent_id:04d}",
        "wecom": f"kf{agent_id:04d}",
        "wechat_oa": f"kf{agent_id:04d}@gh_cs",
        "meiqia": str(100000 + agent_id),
        "sobot": f"s{agent_id:06d}",
        "zendesk": str(900000000 + agent_id),
    }[channel]


def build(cfg: SimConfig, rng: np.random.Generator) -> People:
    expected = cfg.conversations_per_day * cfg.days
    n = max(200, int(expected * cfg.customers_per_conversation))
    activity = rng.lognormal(0, 1.0, n)
    phone = np.char.add("1", (3 * 10**9 + rng.choice(6 * 10**9, n, replace=False)).astype(str))
    phone = np.char.add(phone, rng.integers(0, 10, n).astype(str))
    union = _random_strings(rng, n, 26, prefix="oU")
    customers = pd.DataFrame(
        {
            "customer_id": np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 7)),
            "name": _names(rng, n),
            "phone": phone,
            "phone_hash": [hashlib.sha256(p.encode()).hexdigest() for p in phone.tolist()],
            "union_id": union,
            "activity": activity,
        }
    )
    has = {ch: rng.random(n) < IDENTITY_RATE[ch] for ch in cfg.channels}
    none = ~np.any(np.stack(list(has.values())), axis=0)
    has[cfg.channels[0]] |= none
    frames = []
    for ch in cfg.channels:
        pos = np.flatnonzero(has[ch])
        frames.append(
            pd.DataFrame(
                {
                    "customer_pos": pos,
                    "customer_id": customers["customer_id"].to_numpy()[pos],
                    "channel": ch,
                    "platform_user_id": platform_user_id_format(ch, rng, pos.size),
                }
            )
        )
    identities = pd.concat(frames, ignore_index=True)
    orders = _orders(cfg, rng, customers, has)
    return People(customers, identities, orders, rng, cfg.days)


def _orders(cfg: SimConfig, rng, customers: pd.DataFrame, has: dict) -> pd.DataFrame:
    n = len(customers)
    activity = customers["activity"].to_numpy()
    big = rng.random(n) < cfg.vip_share
    count = rng.poisson(1.2 * activity + 6 * big)
    cust = np.repeat(np.arange(n), count)
    m = cust.size
    end = pd.Timestamp(cfg.end, tz="Asia/Shanghai").tz_convert("UTC").timestamp()
    age_days = np.where(rng.random(m) < 0.5, rng.uniform(0, 90, m), rng.uniform(0, 540, m))
    ordered_at = end - age_days * 86400
    amount = np.round(rng.lognormal(5.0, 0.9, m) * np.where(big[cust], 4.0, 1.0), 2)
    shops = [c for c in SHOP_CHANNELS if c in has]
    channel = np.full(m, "web", dtype=object)
    if shops:
        shop_has = np.stack([has[c] for c in shops], axis=1)[cust]
        pick = rng.random((m, len(shops))) * shop_has
        best = pick.argmax(axis=1)
        channel = np.where(shop_has.any(axis=1), np.asarray(shops)[best], "web")
    refunded = rng.random(m) < 0.06
    order = np.argsort(ordered_at, kind="stable")
    return pd.DataFrame(
        {
            "order_id": np.char.add("O", np.char.zfill(np.arange(1, m + 1).astype(str), 9)),
            "customer_id": customers["customer_id"].to_numpy()[cust[order]],
            "channel": np.asarray(channel)[order],
            "ordered_at": pd.to_datetime(np.round(ordered_at[order] * 1000), unit="ms", utc=True),
            "amount_cny": amount[order],
            "status": np.where(refunded[order], "refunded", "paid"),
        }
    )


def status_intervals(channel: str, grid: ChannelGrid, roster: np.ndarray, people: People) -> pd.DataFrame:
    """Online intervals per agent: a rank is online while the roster covers it."""
    k_max = int(roster.max()) if roster.size else 0
    if k_max == 0:
        return pd.DataFrame(columns=["agent_id", "channel", "status", "started_at", "ended_at"])
    on = roster[:, None] > np.arange(k_max)[None, :]
    padded = np.vstack([np.zeros((1, k_max), bool), on, np.zeros((1, k_max), bool)]).astype(np.int8)
    d = np.diff(padded, axis=0)
    s_i, s_k = np.nonzero(d == 1)
    e_i, e_k = np.nonzero(d == -1)
    # nonzero walks row-major; sort both by (rank, interval) so starts meet their ends
    so = np.lexsort((s_i, s_k))
    eo = np.lexsort((e_i, e_k))
    s_i, s_k, e_i = s_i[so], s_k[so], e_i[eo]
    start = grid.t0 + s_i * INTERVAL_S
    end = grid.t0 + e_i * INTERVAL_S
    agent = people.agent_for(channel, s_k, start.astype(float), grid)
    return pd.DataFrame(
        {
            "agent_id": agent,
            "channel": channel,
            "status": "online",
            "started_at": to_ts(start),
            "ended_at": to_ts(end),
        }
    )
