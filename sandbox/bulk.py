"""Bulk mode: turn a `SimData` into landing batches directly, without HTTP.

For large benchmarks (millions of conversations) serving every record through the
platform servers would take hours. This writer produces the same landed batches
(`data/landing/<platform>/<stream>/<batch>.jsonl.gz` + manifest, atomically) in the
platform's raw record shape, so the loader and dbt see what a connector would have
landed. JSON is built column-wise by DuckDB, never a Python object per record.

Shapes written (the record builders of the sandbox servers, vectorised):

- `wecom` - `kf/sync_msg` records exactly as `sandbox/server/platforms/wecom.py` serves
  them (same keys, key order and values), and `kf/servicer/list` snapshots with the
  connector's `polled_at` (one poll per `poll_minutes`);
- `crm` - customers, identities and orders as `sandbox/server/platforms/crm.py` serves
  them.

`tests/test_marts_bulk.py` checks the messages and the CRM records against the servers.

Other platforms' shapes are not written yet. With `all_as_wecom=True` every channel of
the simulation is written in WeCom shape (one WeCom customer-service account per
channel, bot replies hidden as WeCom hides them, CRM identities on `wecom`): the
benchmark's way to push all simulated volume through one platform's staging.

Platform limits are not simulated here (no 3-day retention, no D+1): bulk mode stands
for a history backfill from the console export plus regular syncs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import duckdb
import pandas as pd

from connectors.core.landing import DATA_SUFFIX, MANIFEST_SUFFIX, Manifest, landing_root, new_batch_id
from sandbox.server.platforms.wecom import CHANGE_TYPE
from sandbox.server.state import DEFAULT_CREDENTIALS
from sandbox.simulation import SimData
from sandbox.truth import as_utc

WECOM_KFID = DEFAULT_CREDENTIALS["wecom"]["open_kfid"]
SHAPES = ("wecom", "crm")


def _ts_sql(value: pd.Timestamp) -> str:
    return f"cast('{as_utc(value).isoformat()}' as timestamptz)"


class BulkWriter:
    """Writes landing batches for time windows of one simulation.

    `write(since, until)` lands everything that happened in (since, until]: messages
    and events sent, agent-status polls, CRM customers created and orders placed (CRM
    identities, a snapshot stream, are landed whole on the first call). Call it with
    consecutive windows to mimic regular syncs: one batch per stream per call, or one
    per `batch_hours` within it.
    """

    def __init__(
        self,
        data: SimData,
        shapes: tuple[str, ...] = SHAPES,
        all_as_wecom: bool = False,
        poll_minutes: int = 30,
        root: Path | None = None,
    ):
        unknown = set(shapes) - set(SHAPES)
        if unknown:
            raise ValueError(f"bulk mode writes {', '.join(SHAPES)} shapes only, not {sorted(unknown)}")
        self.data = data
        self.shapes = shapes
        self.all_as_wecom = all_as_wecom
        self.poll_minutes = poll_minutes
        self.root = root or landing_root()
        self._identities_done = False
        self.con = duckdb.connect()
        self.con.execute("set timezone = 'UTC'")
        self._register()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- setup ----------------------------------------------------------------------------
    def _channels(self) -> list[str]:
        return list(self.data.config["channels"]) if self.all_as_wecom else ["wecom"]

    def _register(self) -> None:
        d = self.data
        con = self.con
        channels = self._channels()
        conv = d["conversations"]
        conv = conv[conv["channel"].isin(channels)]
        con.register(
            "_conversations",
            pd.DataFrame(
                {
                    "conversation_id": conv["conversation_id"].to_numpy(),
                    "channel": conv["channel"].astype(str).to_numpy(),
                    "external_userid": conv["platform_user_id"].astype(str).to_numpy(),
                }
            ),
        )
        msgs = d["messages"]
        msgs = msgs[msgs["channel"].isin(channels) & (msgs["sender_type"] != "bot")]
        con.register(
            "_messages",
            pd.DataFrame(
                {
                    "message_id": msgs["message_id"].to_numpy(),
                    "conversation_id": msgs["conversation_id"].to_numpy(),
                    "seq": msgs["seq"].to_numpy(),
                    "sent_at": msgs["sent_at"].to_numpy(),
                    "sender_type": msgs["sender_type"].astype(str).to_numpy(),
                    "event": msgs["event"].astype(str).to_numpy(),
                    "agent_id": msgs["agent_id"].to_numpy(),
                    "content": msgs["content"].astype(object).where(msgs["content"].notna(), "").to_numpy(),
                }
            ),
        )
        acc = d["agent_accounts"]
        con.register("_accounts", acc[acc["channel"].isin(channels)][["agent_id", "channel", "account_id"]])
        st = d["agent_status"]
        con.register("_status", st[st["channel"].isin(channels)])
        kfid = {c: (WECOM_KFID if c == "wecom" else f"wkSANDBOX{c.upper()}") for c in channels}
        con.register("_kfids", pd.DataFrame({"channel": list(kfid), "open_kfid": list(kfid.values())}))
        change = " ".join(f"when '{k}' then {v}" for k, v in CHANGE_TYPE.items())
        # the agent holding the conversation after each row (assign / transfer / reopen set
        # it) and before it: as sandbox.server.platforms.wecom._agent_history
        con.execute(
            f"""
            create or replace temp table wecom_rows as
            with held as (
                select m.*, c.channel, c.external_userid, k.open_kfid,
                    last_value(case when m.event in ('assign', 'transfer', 'reopen') then m.agent_id end ignore nulls)
                        over (partition by m.conversation_id order by m.sent_at, m.seq
                              rows between unbounded preceding and current row) as cur_agent
                from _messages m
                join _conversations c using (conversation_id)
                join _kfids k using (channel)
            ),
            prev as (
                select *, lag(cur_agent) over (partition by conversation_id order by sent_at, seq) as prev_agent
                from held
            ),
            named as (
                select p.*,
                    a.account_id as agent_account,
                    pa.account_id as prev_account,
                    case event {change} end as change_type,
                    'from_msgid_' || message_id as msgid,
                    cast(floor(epoch_ms(sent_at) / 1000) as bigint) as send_time
                from prev p
                left join _accounts a
                    on a.channel = p.channel
                    and a.agent_id = case when p.agent_id >= 0 then p.agent_id else p.cur_agent end
                left join _accounts pa on pa.channel = p.channel and pa.agent_id = p.prev_agent
            )
            select
                sent_at, message_id,
                case sender_type
                    when 'system' then json_object(
                        'msgid', msgid, 'send_time', send_time, 'origin', 4, 'msgtype', 'event',
                        'event', json_merge_patch(
                            json_object('event_type', 'session_status_change', 'open_kfid', open_kfid,
                                        'external_userid', external_userid, 'change_type', change_type),
                            case when event in ('transfer', 'close') and prev_account is not null
                                then json_object('old_servicer_userid', prev_account) else '{{}}' end,
                            case when event in ('assign', 'transfer', 'reopen') and agent_account is not null
                                then json_object('new_servicer_userid', agent_account) else '{{}}' end,
                            case when event in ('assign', 'close', 'reopen')
                                then json_object('msg_code', 'MSG_CODE_' || lower(hex(message_id))) else '{{}}' end
                        ))
                    when 'agent' then json_object(
                        'msgid', msgid, 'open_kfid', open_kfid, 'external_userid', external_userid,
                        'send_time', send_time, 'origin', 5, 'servicer_userid', coalesce(agent_account, ''),
                        'msgtype', 'text', 'text', json_object('content', content))
                    else json_object(
                        'msgid', msgid, 'open_kfid', open_kfid, 'external_userid', external_userid,
                        'send_time', send_time, 'origin', 3, 'msgtype', 'text',
                        'text', json_object('content', content))
                end as record
            from named
            order by sent_at, message_id
            """
        )

    # -- writing --------------------------------------------------------------------------
    def write(self, since, until, batch_hours: float | None = 24) -> list[Manifest]:
        """Land what happened in (since, until]; `since` None = from the beginning."""
        until = as_utc(until)
        start = as_utc(since) if since is not None else self._first_time()
        edges = [start]
        step = pd.Timedelta(hours=batch_hours) if batch_hours else until - start
        while edges[-1] + step < until:
            edges.append(edges[-1] + step)
        edges.append(until)
        out: list[Manifest] = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if "wecom" in self.shapes:
                out += self._wecom(lo, hi)
            if "crm" in self.shapes:
                out += self._crm(lo if since is not None or lo != start else None, hi)
        return [m for m in out if m is not None]

    def _first_time(self) -> pd.Timestamp:
        first = self.data["conversations"]["started_at"].min()
        return as_utc(first) - pd.Timedelta(seconds=1)

    def _wecom(self, lo: pd.Timestamp, hi: pd.Timestamp) -> list[Manifest | None]:
        window = {"since": lo.isoformat(), "until": hi.isoformat()}
        messages = self._land_query(
            "wecom",
            "messages",
            f"select record from wecom_rows where sent_at > {_ts_sql(lo)} and sent_at <= {_ts_sql(hi)} "
            "order by sent_at, message_id",
            window,
        )
        # servicer/list polls: every account of the channel, status 0 while online
        step = pd.Timedelta(minutes=self.poll_minutes)
        first = lo.ceil(step) if lo.ceil(step) > lo else lo.ceil(step) + step
        polls = pd.date_range(first, hi, freq=step)
        if not len(polls):
            return [messages]
        self.con.register("_polls", pd.DataFrame({"polled_at": polls}))
        servicers = self._land_query(
            "wecom",
            "servicers",
            """
            with online as (
                select distinct p.polled_at, s.channel, s.agent_id
                from _polls p
                inner join _status s
                    on s.started_at <= p.polled_at and s.ended_at > p.polled_at and s.status = 'online'
            )
            select json_object('userid', a.account_id,
                               'status', case when o.agent_id is null then 1 else 0 end,
                               'polled_at', cast(epoch(p.polled_at) as bigint)) as record
            from _polls p
            cross join _accounts a
            left join online o on o.polled_at = p.polled_at and o.channel = a.channel and o.agent_id = a.agent_id
            order by p.polled_at, a.account_id
            """,
            window,
        )
        return [messages, servicers]

    def _crm(self, lo: pd.Timestamp | None, hi: pd.Timestamp) -> list[Manifest | None]:
        d = self.data
        out = []
        window = {"since": lo.isoformat() if lo is not None else None, "until": hi.isoformat()}
        orders = d["orders"]
        first_order = orders.groupby("customer_id")["ordered_at"].min()
        start = pd.Timestamp(d.config["start"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
        customers = d["customers"][["customer_id", "union_id", "phone_hash"]].copy()
        created = customers["customer_id"].map(first_order)
        customers["created_at"] = created.fillna(start - pd.Timedelta(days=400)).astype("datetime64[ms, UTC]")
        self.con.register("_customers", customers)
        self.con.register("_orders", orders)
        lower = f"> {_ts_sql(lo)}" if lo is not None else "is not null"
        out.append(
            self._land_query(
                "crm",
                "customers",
                f"""
                select json_object('customer_id', customer_id, 'union_id', union_id, 'phone_hash', phone_hash,
                                   'created_at', strftime(created_at, '%Y-%m-%dT%H:%M:%SZ')) as record
                from _customers where created_at {lower} and created_at <= {_ts_sql(hi)}
                order by created_at, customer_id
                """,
                window,
            )
        )
        if not self._identities_done:
            ident = d["identities"][["customer_id", "channel", "platform_user_id"]].copy()
            ident["platform_user_id"] = ident["platform_user_id"].astype(str)
            if self.all_as_wecom:
                ident["channel"] = "wecom"
            else:
                ident["channel"] = ident["channel"].astype(str)
            self.con.register("_identities", ident)
            out.append(
                self._land_query(
                    "crm",
                    "identities",
                    "select json_object('customer_id', customer_id, 'channel', channel, "
                    "'platform_user_id', platform_user_id) as record from _identities order by customer_id, channel",
                    None,
                )
            )
            self._identities_done = True
        out.append(
            self._land_query(
                "crm",
                "orders",
                f"""
                select json_object('order_id', order_id, 'customer_id', customer_id, 'channel', channel,
                                   'ordered_at', strftime(ordered_at, '%Y-%m-%dT%H:%M:%SZ'),
                                   'amount_cny', cast(amount_cny as double), 'status', status) as record
                from _orders where ordered_at {lower} and ordered_at <= {_ts_sql(hi)}
                order by ordered_at, order_id
                """,
                window,
            )
        )
        return out

    def _land_query(self, platform: str, stream: str, sql: str, window: dict | None) -> Manifest | None:
        """Write the query's `record` column as one JSON line each into a landed batch."""
        directory = self.root / platform / stream
        directory.mkdir(parents=True, exist_ok=True)
        batch_id = new_batch_id()
        data_tmp = directory / f".{batch_id}{DATA_SUFFIX}.tmp"
        fd, plain = tempfile.mkstemp(suffix=".csv.gz", dir=directory, prefix=".bulk-")
        os.close(fd)
        try:
            rows = self.con.execute(
                f"copy ({sql}) to '{plain}' "
                "(format csv, header false, quote '', escape '', delimiter '\t', compression gzip)"
            ).fetchone()[0]
            if not rows:
                return None
            os.replace(plain, data_tmp)
        finally:
            Path(plain).unlink(missing_ok=True)
        payload = data_tmp.read_bytes()
        manifest = Manifest(
            platform=platform,
            stream=stream,
            batch_id=batch_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
            source="api",
            row_count=int(rows),
            sha256=hashlib.sha256(payload).hexdigest(),
            window=window,
            events=[],
            file=f"{batch_id}{DATA_SUFFIX}",
        )
        os.replace(data_tmp, directory / manifest.file)
        man_tmp = directory / f".{batch_id}{MANIFEST_SUFFIX}.tmp"
        man_tmp.write_text(json.dumps(asdict(manifest), ensure_ascii=False, indent=1))
        os.replace(man_tmp, directory / f"{batch_id}{MANIFEST_SUFFIX}")
        return manifest


def write_landing(
    data: SimData,
    until,
    since=None,
    *,
    shapes: tuple[str, ...] = SHAPES,
    all_as_wecom: bool = False,
    batch_hours: float | None = 24,
    root: Path | None = None,
) -> list[Manifest]:
    """Land (since, until] of `data` in one call (see `BulkWriter`)."""
    with BulkWriter(data, shapes, all_as_wecom, root=root) as writer:
        return writer.write(since, until, batch_hours)
