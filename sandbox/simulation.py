"""The contact-centre simulation: seeded, deterministic, column-wise.

`simulate(cfg)` builds one company's data for `cfg.days` days: customers and their
identities on each platform, orders, agents and their platform accounts, conversations
with every message, ratings, agent status intervals and the roster. Nothing is a Python
object per message: every table is built from numpy arrays (message texts are
categorical codes). Ground truth lives beside the data (`sandbox.truth`).

The generator knows the true timeline of each conversation:

    arrival ─ customer block ─ [bot greets ─ (bot resolves | asks for a human ─ hand-off)]
      ─ queue ─ (abandon | assign ─ first reply ─ turns … ─ close ─ [reopen ─ reply ─ close])

Everything after assignment is drawn before the queue runs, as offsets from assignment,
so the queue knows how long each conversation keeps its slot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sandbox import texts
from sandbox.config import INTERVAL_S, SESSION_ID_CHANNELS, TOPIC_MIX, TOPIC_MIX_PROMO, TOPICS, SimConfig
from sandbox.demand import ChannelGrid, channel_grid, epoch_s, planned_roster, sample_arrivals, to_ts
from sandbox.queueing import serve

SENDERS = ("customer", "agent", "bot", "system")
EVENTS = ("", "handoff", "assign", "transfer", "close", "reopen")
CUSTOMER, AGENT, BOT, SYSTEM = range(4)
NO_EVENT, HANDOFF, ASSIGN, TRANSFER, CLOSE, REOPEN = range(6)
MAX_CHAT_PATIENCE_S = 20 * 60  # below the 30-minute sessionisation gap (DESIGN §7)
SESSION_GAP_S = 30 * 60  # the idle gap that splits sessions downstream (dbt var session_gap_minutes)
CHANNEL_IDS = {c: i for i, c in enumerate(SimConfig().channels)}


def _rng(cfg: SimConfig, *salt: object) -> np.random.Generator:
    """An independent, reproducible stream per purpose (and per channel)."""
    digest = hashlib.sha256(repr((cfg.seed, *salt)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass
class _Parts:
    """Message rows under construction: one array per column."""

    conv: list = field(default_factory=list)
    at: list = field(default_factory=list)
    sender: list = field(default_factory=list)
    event: list = field(default_factory=list)
    agent_role: list = field(default_factory=list)  # 0 none, 1 first agent, 2 second agent
    text: list = field(default_factory=list)

    def add(self, conv, at, sender, event=NO_EVENT, agent_role=0, text=-1) -> None:
        conv = np.asarray(conv, dtype=np.int64)
        n = conv.size
        self.conv.append(conv)
        self.at.append(np.broadcast_to(np.asarray(at, float), n).copy())
        self.sender.append(np.full(n, sender, np.int8))
        self.event.append(np.full(n, event, np.int8))
        self.agent_role.append(np.broadcast_to(np.asarray(agent_role, np.int8), n).copy())
        self.text.append(np.broadcast_to(np.asarray(text, np.int32), n).copy())

    def frame(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.array([]) for k, v in asdict(self).items()}


def _grouped_cumsum(values: np.ndarray, group_sizes: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every group (groups are consecutive)."""
    total = np.cumsum(values)
    ends = np.cumsum(group_sizes)
    starts = ends - group_sizes
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
    return total - np.repeat(before, group_sizes)


@dataclass
class ChannelSim:
    """One channel's conversations before messages are materialised."""

    channel: str
    grid: ChannelGrid
    roster: np.ndarray
    arrival: np.ndarray
    queue_start: np.ndarray  # NaN when the bot resolved it
    busy_s: np.ndarray
    patience_s: np.ndarray
    assigned_at: np.ndarray
    rank: np.ndarray


def _pre_queue(cfg: SimConfig, channel: str, arrival: np.ndarray, rng: np.random.Generator):
    """Customer's first block and the bot: returns the parts needed to build messages."""
    prof = cfg.profiles[channel]
    n = arrival.size
    first_block = 1 + (rng.random(n) < 0.35) + (rng.random(n) < 0.1)
    gaps = rng.uniform(3, 15, (n, 3))
    block_end = arrival + np.where(first_block > 1, gaps[:, 0], 0) + np.where(first_block > 2, gaps[:, 1], 0)
    bot = rng.random(n) < prof.bot_rate
    deflect = bot & (rng.random(n) < prof.bot_deflect)
    greet_at = block_end + rng.uniform(1, 3, n)
    ask_human_at = greet_at + rng.uniform(5, 30, n)
    handoff_at = ask_human_at + rng.uniform(1, 3, n)
    queue_start = np.where(bot, handoff_at, arrival)
    queue_start = np.where(deflect, np.nan, queue_start)
    return dict(
        first_block=first_block,
        gaps=gaps,
        bot=bot,
        deflect=deflect,
        greet_at=greet_at,
        ask_human_at=ask_human_at,
        handoff_at=handoff_at,
        queue_start=queue_start,
    )


def _service_plan(cfg: SimConfig, channel: str, n: int, rng: np.random.Generator):
    """Offsets from assignment of everything an agent does; how long the slot is held."""
    prof = cfg.profiles[channel]
    email = prof.medium == "email"
    first_reply = rng.uniform(300, 900, n) if email else rng.uniform(3, 12, n)
    turns = rng.poisson(max(prof.turns_mean - 1, 0), n)
    n_turns = int(turns.sum())
    turn_conv = np.repeat(np.arange(n), turns)
    block = 1 + (rng.random(n_turns) < 0.3) + (rng.random(n_turns) < 0.1)
    cust_delay = 5 + rng.exponential(prof.customer_delay_mean_s, n_turns)
    spacing = rng.uniform(3, 15, (n_turns, 2))
    block_span = np.where(block > 1, spacing[:, 0], 0) + np.where(block > 2, spacing[:, 1], 0)
    reply_delay = 3 + rng.exponential(prof.reply_delay_mean_s, n_turns)
    double = rng.random(n_turns) < 0.25
    extra = np.where(double, rng.uniform(5, 20, n_turns), 0.0)
    turn_len = cust_delay + block_span + reply_delay + extra
    turn_end = np.repeat(first_reply, turns) + _grouped_cumsum(turn_len, turns)
    turn_start = turn_end - turn_len  # the agent message the customer answers
    wrap = rng.uniform(600, 3600, n) if email else rng.uniform(30, 300, n)
    last_agent = first_reply.copy()
    if n_turns:
        last_idx = np.cumsum(turns)[turns > 0] - 1
        last_agent[turns > 0] = turn_end[last_idx]
    close = last_agent + wrap
    transfer = (rng.random(n) < cfg.transfer_rate) & (turns >= 2)
    transfer_turn = np.where(transfer, turns // 2, -1)  # 0-based turn index
    turn_no = np.arange(n_turns) - np.repeat(np.cumsum(turns) - turns, turns)
    second_agent_turn = transfer[turn_conv] & (turn_no >= transfer_turn[turn_conv])
    reopen = (rng.random(n) < cfg.reopen_rate) & (channel in SESSION_ID_CHANNELS)
    reopen_at = close + rng.uniform(2 * 3600, 30 * 3600, n)
    reopen_reply = reopen_at + rng.uniform(60, 900, n)
    reopen_close = reopen_reply + rng.uniform(60, 300, n)
    busy = first_reply + rng.uniform(120, 600, n) if email else close
    return dict(
        first_reply=first_reply,
        turns=turns,
        turn_conv=turn_conv,
        turn_start=turn_start,
        cust_delay=cust_delay,
        block=block,
        spacing=spacing,
        block_span=block_span,
        reply_delay=reply_delay,
        double=double,
        extra=extra,
        turn_end=turn_end,
        close=close,
        last_agent=last_agent,
        transfer=transfer,
        transfer_turn=transfer_turn,
        second_agent_turn=second_agent_turn,
        reopen=reopen,
        reopen_at=reopen_at,
        reopen_reply=reopen_reply,
        reopen_close=reopen_close,
        busy=busy,
    )


def _patience(cfg: SimConfig, channel: str, n: int, rng: np.random.Generator) -> np.ndarray:
    prof = cfg.profiles[channel]
    if not np.isfinite(prof.patience_mean_s):
        return np.full(n, np.inf)
    return np.minimum(rng.exponential(prof.patience_mean_s, n), MAX_CHAT_PATIENCE_S)


def mean_busy_s(cfg: SimConfig, channel: str) -> float:
    """Expected slot time per contact, estimated by a planner from a large sample."""
    plan = _service_plan(cfg, channel, 20000, _rng(cfg, "planner", channel))
    return float(plan["busy"].mean())


def run_channel(
    cfg: SimConfig,
    channel: str,
    grid: ChannelGrid,
    roster: np.ndarray,
    rng_salt: object = "base",
    keep_parts: bool = False,
):
    """Arrivals, bot, queue for one channel. `keep_parts` keeps what messages need."""
    rng = _rng(cfg, rng_salt, channel)
    arrival = sample_arrivals(grid, rng)
    pre = _pre_queue(cfg, channel, arrival, rng)
    plan = _service_plan(cfg, channel, arrival.size, rng)
    patience = _patience(cfg, channel, arrival.size, rng)
    conc = cfg.profiles[channel].concurrency
    result = serve(pre["queue_start"], plan["busy"], patience, roster, grid.t0, conc)
    sim = ChannelSim(
        channel=channel,
        grid=grid,
        roster=roster,
        arrival=arrival,
        queue_start=pre["queue_start"],
        busy_s=plan["busy"],
        patience_s=patience,
        assigned_at=result.assigned_at,
        rank=result.rank(conc),
    )
    return (sim, pre, plan, rng) if keep_parts else sim


@dataclass
class SimData:
    """Everything one simulation produced: data tables plus the true timelines."""

    config: dict
    tables: dict[str, pd.DataFrame]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in self.tables.items():
            frame.to_parquet(directory / f"{name}.parquet", index=False)
        (directory / "meta.json").write_text(json.dumps(self.config, indent=2, default=str))
        return directory

    @classmethod
    def read(cls, directory: Path) -> SimData:
        config = json.loads((directory / "meta.json").read_text())
        tables = {p.stem: pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))}
        return cls(config, tables)


def simulate(cfg: SimConfig, progress=None) -> SimData:
    """Run the whole simulation for `cfg`. `progress(channel)` is called per channel."""
    from sandbox import population

    people = population.build(cfg, _rng(cfg, "population"))
    convs, msgs, rosters, statuses = [], [], [], []
    next_conv_id = 1
    for channel in cfg.channels:
        if progress:
            progress(channel)
        grid = channel_grid(cfg, channel, cfg.start, cfg.days)
        roster = planned_roster(cfg, grid, mean_busy_s(cfg, channel), _rng(cfg, "roster", channel))
        people.ensure_pool(channel, roster.max())
        sim, pre, plan, rng = run_channel(cfg, channel, grid, roster, keep_parts=True)
        conv, parts = _materialise(cfg, sim, pre, plan, rng, people, next_conv_id)
        next_conv_id += len(conv)
        convs.append(conv)
        msgs.append(parts)
        rosters.append(_roster_frame(channel, grid, roster))
        statuses.append(population.status_intervals(channel, grid, roster, people))
    conversations = pd.concat(convs, ignore_index=True)
    messages = _messages_frame(msgs)
    ratings = _ratings(cfg, conversations)
    conversations = conversations.merge(
        ratings[["conversation_id", "csat", "nps"]], on="conversation_id", how="left"
    )
    tables = {
        **people.tables(),
        "conversations": conversations,
        "messages": messages,
        "ratings": ratings,
        "roster": pd.concat(rosters, ignore_index=True),
        "agent_status": pd.concat(statuses, ignore_index=True),
    }
    from sandbox.truth import response_blocks

    tables["response_blocks"] = response_blocks(messages, conversations)
    meta = {
        "seed": cfg.seed,
        "start": cfg.start.isoformat(),
        "days": cfg.days,
        "end": cfg.end.isoformat(),
        "conversations_per_day": cfg.conversations_per_day,
        "channels": list(cfg.channels),
        "staffing_factor": cfg.staffing_factor,
    }
    return SimData(meta, tables)


def _roster_frame(channel: str, grid: ChannelGrid, roster: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "channel": channel,
            "interval_start": to_ts(grid.t0 + np.arange(grid.n) * INTERVAL_S),
            "agents_on_duty": roster.astype(np.int32),
            "expected_arrivals": grid.rate,
            "is_open": grid.open_,
        }
    )


def _materialise(cfg, sim: ChannelSim, pre, plan, rng, people, first_id: int):
    """Turn one channel's timelines into conversation rows and message parts."""
    channel = sim.channel
    prof = cfg.profiles[channel]
    n = sim.arrival.size
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    served = np.isfinite(sim.assigned_at)
    queued = np.isfinite(sim.queue_start)
    # patience ran out; e-mail never abandons, it waits (unattended) until someone is free
    abandoned = queued & ~served & np.isfinite(sim.patience_s)
    s = np.where(served, sim.assigned_at, 0.0)
    wait = np.where(served, sim.assigned_at - sim.queue_start, np.nan)

    # topic and the customer who writes
    day_idx = sim.grid.interval_of(sim.arrival)
    promo = sim.grid.promo_factor[np.clip(day_idx, 0, sim.grid.n - 1)] > 1.2
    topic = np.where(
        promo,
        rng.choice(len(TOPICS), n, p=TOPIC_MIX_PROMO),
        rng.choice(len(TOPICS), n, p=TOPIC_MIX),
    )
    customer_idx = people.pick_customers(channel, n, rng)

    # agents: rank -> person per day, second agent after a transfer
    agent1 = people.agent_for(channel, sim.rank, sim.assigned_at, sim.grid)
    n_on = sim.roster[np.clip(sim.grid.interval_of(np.where(served, s, sim.grid.t0)), 0, sim.grid.n - 1)]
    transfer = plan["transfer"] & served & (n_on > 1)
    other_rank = np.where(
        transfer, (sim.rank + 1 + rng.integers(0, np.maximum(n_on - 1, 1))) % np.maximum(n_on, 1), -1
    )
    agent2 = people.agent_for(channel, other_rank, np.where(transfer, s, np.nan), sim.grid)

    parts = _Parts()
    fb = pre["first_block"]
    gaps = pre["gaps"]
    # 1. the customer's first block; the first message carries the topic
    parts.add(ids, sim.arrival, CUSTOMER, text=texts.first_message_codes(topic, rng))
    m2 = fb > 1
    parts.add(ids[m2], sim.arrival[m2] + gaps[m2, 0], CUSTOMER, text=texts.code("customer_more"))
    m3 = fb > 2
    parts.add(
        ids[m3], sim.arrival[m3] + gaps[m3, 0] + gaps[m3, 1], CUSTOMER, text=texts.code("customer_more")
    )
    # 2. the bot
    bot = pre["bot"]
    parts.add(ids[bot], pre["greet_at"][bot], BOT, text=texts.code("bot_greet"))
    defl = pre["deflect"]
    parts.add(ids[defl], pre["ask_human_at"][defl], CUSTOMER, text=texts.code("customer_more"))
    parts.add(ids[defl], pre["ask_human_at"][defl] + 2, BOT, text=texts.code("bot_answer"))
    bot_close = pre["ask_human_at"] + 2 + rng.uniform(60, 180, n)
    parts.add(ids[defl], bot_close[defl], SYSTEM, CLOSE)
    hand = bot & ~defl
    parts.add(ids[hand], pre["ask_human_at"][hand], CUSTOMER, text=texts.code("ask_human"))
    parts.add(ids[hand], pre["handoff_at"][hand], SYSTEM, HANDOFF)
    # 3. waiting: a nudge from impatient customers; abandonment closes the session
    waited = np.where(served, wait, np.where(abandoned, sim.patience_s, 0.0))
    nudge = queued & (waited > 60) & (rng.random(n) < 0.5)
    nudge_at = sim.queue_start + waited * rng.uniform(0.3, 0.9, n)
    parts.add(ids[nudge], nudge_at[nudge], CUSTOMER, text=texts.code("nudge"))
    abandon_at = sim.queue_start + sim.patience_s
    parts.add(ids[abandoned], abandon_at[abandoned], SYSTEM, CLOSE)
    # 4. service, offsets from assignment
    parts.add(ids[served], s[served], SYSTEM, ASSIGN, agent_role=1)
    parts.add(
        ids[served],
        s[served] + plan["first_reply"][served],
        AGENT,
        agent_role=1,
        text=texts.code("agent_first"),
    )
    tc = plan["turn_conv"]
    tserved = served[tc]
    base = s[tc]
    cust_first = base + plan["turn_start"] + plan["cust_delay"]
    role = np.where(plan["second_agent_turn"] & transfer[tc], 2, 1).astype(np.int8)
    sel = tserved
    parts.add(ids[tc][sel], cust_first[sel], CUSTOMER, text=texts.code("customer_turn"))
    b2 = sel & (plan["block"] > 1)
    parts.add(
        ids[tc][b2], (cust_first + plan["spacing"][:, 0])[b2], CUSTOMER, text=texts.code("customer_more")
    )
    b3 = sel & (plan["block"] > 2)
    parts.add(
        ids[tc][b3],
        (cust_first + plan["spacing"][:, 0] + plan["spacing"][:, 1])[b3],
        CUSTOMER,
        text=texts.code("customer_more"),
    )
    reply_at = cust_first + plan["block_span"] + plan["reply_delay"]
    # transfer event just before the second agent's first reply
    tt = plan["transfer_turn"]
    turn_no = np.arange(tc.size) - np.repeat(np.cumsum(plan["turns"]) - plan["turns"], plan["turns"])
    first_of_second = sel & transfer[tc] & (turn_no == tt[tc])
    parts.add(ids[tc][first_of_second], reply_at[first_of_second] - 1, SYSTEM, TRANSFER, agent_role=2)
    parts.add(ids[tc][sel], reply_at[sel], AGENT, agent_role=role[sel], text=texts.code("agent_reply"))
    dbl = sel & plan["double"]
    parts.add(
        ids[tc][dbl],
        (reply_at + plan["extra"])[dbl],
        AGENT,
        agent_role=role[dbl],
        text=texts.code("agent_more"),
    )
    close_at = s + plan["close"]
    parts.add(ids[served], close_at[served], SYSTEM, CLOSE)
    # 5. reopen: the same agent picks the conversation up again
    ro = served & plan["reopen"]
    last_role = np.where(transfer, 2, 1).astype(np.int8)
    parts.add(ids[ro], (s + plan["reopen_at"])[ro], CUSTOMER, text=texts.code("customer_reopen"))
    parts.add(ids[ro], (s + plan["reopen_at"])[ro] + 1, SYSTEM, REOPEN, agent_role=last_role[ro])
    parts.add(
        ids[ro],
        (s + plan["reopen_reply"])[ro],
        AGENT,
        agent_role=last_role[ro],
        text=texts.code("agent_reply"),
    )
    parts.add(ids[ro], (s + plan["reopen_close"])[ro], SYSTEM, CLOSE)

    frame = parts.frame()
    conv_pos = frame["conv"] - first_id
    agent_id = np.where(
        frame["agent_role"] == 1,
        agent1[conv_pos],
        np.where(frame["agent_role"] == 2, agent2[conv_pos], -1),
    )
    frame["agent_id"] = agent_id.astype(np.int32)
    frame["channel"] = np.full(conv_pos.size, CHANNEL_IDS[channel], np.int8)
    del frame["agent_role"]

    first_resp = np.where(served, s + plan["first_reply"], np.nan)
    last_first_agent = _last_first_agent_message(plan, s, transfer)
    first_close = np.where(
        served, close_at, np.where(abandoned, abandon_at, np.where(defl, bot_close, np.nan))
    )
    final_close = np.where(served & plan["reopen"], s + plan["reopen_close"], first_close)
    if channel not in SESSION_ID_CHANNELS:
        customer_idx = people.separate_sessions(
            channel, customer_idx, sim.arrival, final_close, SESSION_GAP_S + 60, rng
        )
    conv = pd.DataFrame(
        {
            "conversation_id": ids,
            "channel": channel,
            "medium": prof.medium,
            "customer_id": people.customer_ids[customer_idx],
            "platform_user_id": people.platform_user_ids(channel, customer_idx),
            "topic": np.asarray(TOPICS)[topic],
            "started_at": to_ts(sim.arrival),
            "bot_first": bot,
            "bot_resolved": defl,
            "handoff_at": to_ts(np.where(hand, pre["handoff_at"], np.nan)),
            "queue_start_at": to_ts(sim.queue_start),
            "assigned_at": to_ts(np.where(served, s, np.nan)),
            "first_response_at": to_ts(first_resp),
            "first_agent_id": np.where(served, agent1, -1).astype(np.int32),
            "wait_s": wait,
            "frt_s": np.where(served, first_resp - sim.queue_start, np.nan),
            "handle_time_s": np.where(served, last_first_agent - s, np.nan),
            "first_closed_at": to_ts(first_close),
            "closed_at": to_ts(final_close),
            "reopen_count": (served & plan["reopen"]).astype(np.int8),
            "reopened_at": to_ts(np.where(served & plan["reopen"], s + plan["reopen_at"], np.nan)),
            "abandoned": abandoned,
            "abandon_at": to_ts(np.where(abandoned, abandon_at, np.nan)),
            "patience_s": sim.patience_s,
            "transfer_count": transfer.astype(np.int8),
            "agents_involved": np.where(served, 1 + transfer, 0).astype(np.int8),
        }
    )
    return conv, frame


def _last_first_agent_message(plan, s: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Time of the first agent's last message before the first close."""
    n = s.size
    last = s + plan["first_reply"]
    tc = plan["turn_conv"]
    if tc.size:
        end = s[tc] + plan["turn_end"]
        mine = ~(plan["second_agent_turn"] & transfer[tc])
        out = np.full(n, -np.inf)
        np.maximum.at(out, tc[mine], end[mine])
        last = np.maximum(last, out)
    return last


def _messages_frame(parts: list[dict]) -> pd.DataFrame:
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # stable order: by conversation, then time, then the order events were written
    order = np.lexsort((cols["at"], cols["conv"]))
    conv = cols["conv"][order]
    seq = np.arange(conv.size) - np.repeat(
        np.flatnonzero(np.r_[True, conv[1:] != conv[:-1]]),
        np.diff(np.r_[np.flatnonzero(np.r_[True, conv[1:] != conv[:-1]]), conv.size]),
    )
    channels = SimConfig().channels
    return pd.DataFrame(
        {
            "message_id": np.arange(1, conv.size + 1, dtype=np.int64),
            "conversation_id": conv,
            "channel": pd.Categorical.from_codes(cols["channel"][order], channels),
            "seq": seq.astype(np.int32),
            "sent_at": to_ts(cols["at"][order]),
            "sender_type": pd.Categorical.from_codes(cols["sender"][order], SENDERS),
            "event": pd.Categorical.from_codes(cols["event"][order], EVENTS),
            "agent_id": cols["agent_id"][order],
            "content": texts.categorical(cols["text"][order]),
        }
    )


def _ratings(cfg: SimConfig, conversations: pd.DataFrame) -> pd.DataFrame:
    """Ratings after a human-served close; satisfaction falls as the wait grows."""
    rng = _rng(cfg, "ratings")
    c = conversations
    rate = c["channel"].map({k: p.rating_rate for k, p in cfg.profiles.items()}).to_numpy()
    served = c["assigned_at"].notna().to_numpy()
    rated = served & c["first_closed_at"].notna().to_numpy() & (rng.random(len(c)) < rate)
    wait = np.nan_to_num(c["wait_s"].to_numpy(), nan=0.0)
    latent = (
        4.7
        - 0.55 * np.log1p(wait / 30.0)
        - 1.0 * (c["topic"].to_numpy() == "complaint")
        - 0.3 * (c["transfer_count"].to_numpy() > 0)
        + rng.normal(0, 0.7, len(c))
    )
    csat = np.clip(np.round(latent), 1, 5).astype(np.int8)
    asks_nps = c["channel"].map({k: p.asks_nps for k, p in cfg.profiles.items()}).to_numpy(bool)
    nps = np.clip(np.round(2 * latent + rng.normal(0, 1.0, len(c))), 0, 10).astype(np.int8)
    closed = epoch_s(c["first_closed_at"])
    rated_at = closed + rng.uniform(10, 600, len(c))
    out = pd.DataFrame(
        {
            "conversation_id": c["conversation_id"].to_numpy(),
            "channel": c["channel"].to_numpy(),
            "rated_at": to_ts(rated_at),
            "csat": csat,
            "nps": np.where(asks_nps, nps, -1).astype(np.int8),
            "agent_id": c["first_agent_id"].to_numpy(),
        }
    )[rated].reset_index(drop=True)
    out["rating_id"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out
