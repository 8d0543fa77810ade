"""Batch suites: what every landed batch of a raw stream must satisfy before it loads.

A suite per stream (`batch.<platform>__<stream>`) is built from two sources:

- the stream's declaration (`connectors.core.streams.Stream`): its key, time field and format,
  cursor kind and retention, required fields. Every stream gets these checks:
    * the key fields, the time field and the required fields exist as columns;
    * the record key is present (mostly: isolated records without one go to `raw._quarantine`
      by the loader, DESIGN §6; more than `RECORD_GRAIN_SHARE` of the batch means the batch
      itself is malformed) and unique within the batch;
    * the record time parses (mostly, as above), is not after `as_of` (the run's `until` plus
      `FUTURE_TOLERANCE`), and lies in the window of the stream's cursor kind;
- a `StreamSpec` below, per stream (reviewed code): the platform's field types, enum codes,
  non-negative durations and counts, other timestamps (parse, not in the future), and which
  fields are customer identifiers.

A stream without a spec still gets the declaration checks. The suites are written to the GX
project by `csw quality build-suites`. `frame()` reads batches with DuckDB into the pandas
frame the suite validates (key and time derived exactly as the loader derives them; identifier
columns replaced by hashes, so their values never reach GX).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd

from connectors.core.streams import Stream, TimeFormat

RECORD_GRAIN_SHARE = 0.10  # records the loader may quarantine one by one before the batch fails
FUTURE_TOLERANCE = dt.timedelta(minutes=10)  # clock skew, and records arriving while a run extracts
WINDOW_TOLERANCE = dt.timedelta(minutes=1)  # inclusive window bounds at second precision
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")  # "no lower bound" for cursor kinds without one

ISO_REGEX = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
LOCAL_REGEX = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


@dataclass(frozen=True)
class Field:
    """A field of a stream's records and what it must satisfy.

    `name` is the field as received (a dotted path for nested objects: `event.change_type`).
    `types`: allowed JSON types (`int`, `float`, `str`, `bool`, `dict`, `list`; null is always
    allowed unless `not_null`). `values`: the known codes. `min`/`max`: bounds on the number
    (durations and counts are not negative). `time_format`: another timestamp of the record,
    which must parse and not be in the future. `identifier`: a customer identifier; its values
    never reach GX (pseudonymised) nor any result.
    """

    name: str
    types: tuple[str, ...] = ()
    values: tuple = ()
    min: float | None = None
    max: float | None = None
    time_format: TimeFormat | None = None
    required: bool = False
    not_null: bool = False
    identifier: bool = False


@dataclass(frozen=True)
class StreamSpec:
    fields: tuple[Field, ...] = ()
    note: str = ""


def _id(name: str, **kw) -> Field:
    return Field(name, identifier=True, **kw)


# -- the specs, per raw table -------------------------------------------------------------------
def _console_streams(platform: str, note: str) -> dict[str, StreamSpec]:
    """Douyin and Pinduoduo: the console export's canonical shape (connectors.scrapers.console)."""
    iso = {"types": ("str",), "time_format": "iso"}
    return {
        f"{platform}__sessions": StreamSpec(
            (
                Field("session_id", ("str",), required=True),
                _id("customer_id"),
                Field("agent_account", ("str",)),
                Field("started_at", **iso),
                Field("handoff_at", **iso),
                Field("assigned_at", **iso),
                Field("first_response_at", **iso),
                Field("closed_at", **iso),
                Field("wait_s", ("int",), min=0),
                Field("frt_s", ("int",), min=0),
                Field("status", ("str",), ("open", "closed", "reopened"), required=True),
                Field("rating", ("int",), min=1, max=5),
            ),
            note,
        ),
        f"{platform}__messages": StreamSpec(
            (
                Field("message_id", ("str",)),
                Field("session_id", ("str",)),
                Field("sent_at", **iso),
                Field("sender", ("str",), ("customer", "agent", "bot", "system")),
                Field("event", ("str",), ("handoff", "assign", "transfer", "close", "reopen")),
                Field("agent_account", ("str",)),
                _id("customer_id"),
                Field("content", ("str",)),
            ),
            note,
        ),
        f"{platform}__ratings": StreamSpec(
            (
                Field("rating_id", ("str",)),
                Field("session_id", ("str",), required=True),
                _id("customer_id"),
                Field("agent_account", ("str",)),
                Field("rated_at", **iso),
                Field("rating", ("int",), min=1, max=5, required=True, not_null=True),
            ),
            note,
        ),
        f"{platform}__agents": StreamSpec(
            (
                Field("agent_account", ("str",)),
                Field("online", ("str",), ("online", "offline")),
                Field("snapshot_at", **iso),
            ),
            note,
        ),
        f"{platform}__agent_status": StreamSpec(
            (
                Field("agent_account", ("str",)),
                Field("status", ("str",), ("online", "offline")),
                Field("started_at", **iso),
                Field("ended_at", **iso),
                Field("duration_s", ("int",), min=0),
            ),
            note,
        ),
    }


SPECS: dict[str, StreamSpec] = {
    # WeCom kf/sync_msg (https://developer.work.weixin.qq.com/document/path/94670)
    "wecom__messages": StreamSpec(
        (
            Field("msgid", ("str",)),
            Field("send_time", ("int",)),
            Field("origin", ("int",), (3, 4, 5), required=True),
            Field(
                "msgtype",
                ("str",),
                (
                    "text",
                    "image",
                    "voice",
                    "video",
                    "file",
                    "location",
                    "link",
                    "business_card",
                    "miniprogram",
                    "msgmenu",
                    "channels_shop_product",
                    "channels_shop_order",
                    "merged_msg",
                    "channels",
                    "note",
                    "event",
                ),
                required=True,
            ),
            Field("open_kfid", ("str",)),
            _id("external_userid"),
            Field("servicer_userid", ("str",)),
            Field("text", ("dict",)),
            Field("event", ("dict",)),
            Field(
                "event.event_type",
                ("str",),
                (
                    "enter_session",
                    "msg_send_fail",
                    "servicer_status_change",
                    "session_status_change",
                    "user_recall_msg",
                    "servicer_recall_msg",
                    "reject_customer_msg_switch_change",
                ),
            ),
            Field("event.change_type", ("int",), (0, 1, 2, 3, 4)),
        ),
        "origin 3 customer, 4 event, 5 agent; change_type 1 assign, 2 transfer, 3 close, "
        "4 reopen, 0 bot hand-off (a sandbox choice)",
    ),
    "wecom__servicers": StreamSpec(
        (
            Field("userid", ("str",)),
            Field("status", ("int",), (0, 1), required=True),
            Field("polled_at", ("int",)),
        ),
        "status 0 接待中, 1 停止接待",
    ),
    # the admin console's 满意度评价 report (WeCom's API has no ratings); no session id
    "wecom__ratings": StreamSpec(
        (
            Field("rating_id", ("str",), required=True, not_null=True),
            _id("customer_id", required=True, not_null=True),
            Field("agent_account", ("str",)),
            Field("rated_at", ("str",), time_format="iso"),
            Field("rating", ("int",), min=1, max=5, required=True, not_null=True),
        ),
        "the console export's canonical shape; rating 1-5",
    ),
    # WeChat OA customservice/msgrecord/getmsglist, getkflist, getonlinekflist, getwaitcase
    "wechat_oa__messages": StreamSpec(
        (
            _id("openid", not_null=True),
            Field("opercode", ("int",), (1000, 1001, 1002, 1003, 1004, 1005, 2001, 2002, 2003)),
            Field("time", ("int",)),
            Field("worker", ("str",)),
            Field("text", ("str",)),
        ),
        "opercode 2003 customer message, 2002 agent reply, 1000-1005 session events",
    ),
    "wechat_oa__agents": StreamSpec(
        (Field("kf_account", ("str",)), Field("kf_id", ("str", "int")), Field("polled_at", ("int",)))
    ),
    "wechat_oa__agent_status": StreamSpec(
        (
            Field("kf_account", ("str",)),
            Field("status", ("int",), (0, 1, 2, 3)),
            Field("accepted_case", ("int",), min=0),
            Field("polled_at", ("int",)),
        ),
        "status 1 web, 2 mobile, 3 both online",
    ),
    "wechat_oa__queue": StreamSpec(
        (
            Field("count", ("int",), min=0, required=True),
            Field("waitcaselist", ("list",)),
            Field("polled_at", ("int",)),
        )
    ),
    # Zendesk incremental tickets, comments, satisfaction ratings, users
    "zendesk__tickets": StreamSpec(
        (
            Field("id", ("int",)),
            Field("created_at", ("str",), time_format="iso"),
            Field("updated_at", ("str",)),
            Field("status", ("str",), ("new", "open", "pending", "hold", "solved", "closed"), required=True),
            Field("priority", ("str",), ("urgent", "high", "normal", "low")),
            Field("type", ("str",), ("problem", "incident", "question", "task")),
            _id("requester_id"),
            _id("submitter_id"),
            Field("assignee_id", ("int",)),
            Field("satisfaction_rating.score", ("str",), ("offered", "unoffered", "good", "bad")),
        )
    ),
    "zendesk__messages": StreamSpec(
        (
            Field("id", ("int",)),
            Field("ticket_id", ("int",)),
            _id("author_id"),
            Field("type", ("str",), ("Comment", "VoiceComment")),
            Field("public", ("bool",)),
            Field("created_at", ("str",)),
        )
    ),
    "zendesk__satisfaction_ratings": StreamSpec(
        (
            Field("id", ("int",)),
            Field("ticket_id", ("int",), required=True, not_null=True),
            Field("score", ("str",), ("offered", "unoffered", "good", "bad"), required=True, not_null=True),
            _id("requester_id"),
            Field("assignee_id", ("int",)),
            Field("created_at", ("str",)),
            Field("updated_at", ("str",), time_format="iso"),
        )
    ),
    "zendesk__agents": StreamSpec(
        (
            Field("id", ("int",)),
            Field("role", ("str",), ("end-user", "agent", "admin")),
            _id("email"),
            _id("name"),
            _id("phone"),
            Field("updated_at", ("str",)),
        )
    ),
    **_console_streams("douyin", "the 飞鸽 console export (scraper only)"),
    **_console_streams("pinduoduo", "the 多多客服 console export (scraper only)"),
    # Taobao TOP wangwang.eservice.* (times are GMT+8 strings)
    "taobao__messages": StreamSpec(
        (
            Field("direction", ("int",), (0, 1), required=True),
            Field("content", ("str",)),
            Field("session_id", ("int", "str")),
            Field("from_id", ("str",)),
            _id("to_id", not_null=True),
        ),
        "direction 0 account -> buyer, 1 buyer -> account",
    ),
    "taobao__ratings": StreamSpec(
        (
            Field("eval_code", ("int",), (0, 1, 2, 3, 4)),
            _id("eval_recer"),
            Field("eval_sender", ("str",)),
            Field("send_time", ("str",), time_format="local"),
            Field("session_id", ("int", "str")),
        ),
        "eval_code 0 非常满意 .. 4 非常不满意",
    ),
    "taobao__agent_status": StreamSpec(
        (Field("type", ("str",), ("0", "1"), required=True), Field("user_id", ("str",))),
        'type "0" login, "1" logout (strings, as TOP sends them)',
    ),
    "taobao__agents": StreamSpec(
        (
            Field("nick", ("str",)),
            Field("status", ("int",)),
            Field("is_online", ("int",)),
            Field("polled_at", ("int",)),
        )
    ),
    # JD JOS jingdong.im.pop.* (times are epoch ms)
    "jd__messages": StreamSpec(
        (
            Field("waiterSend", ("bool",), (True, False)),
            Field("sid", ("str",)),
            Field("time", ("int",)),
            Field("msg_key", ("str",)),
            Field("waiter", ("str",)),
            _id("customer"),
        ),
        "waiterSend true = waiter or robot",
    ),
    "jd__sessions": StreamSpec(
        (
            Field("sid", ("str",)),
            Field("startTime", ("int",)),
            Field("endTime", ("int",), time_format="unix_ms"),
            Field("waiter", ("str",)),
            _id("customer"),
        )
    ),
    "jd__ratings": StreamSpec(
        (Field("score", ("int",), (1, 2, 3, 4, 5), required=True), Field("time", ("int",)), _id("customer"))
    ),
    "jd__agents": StreamSpec(
        (Field("waiter", ("str",)), Field("robot", ("bool",)), Field("polled_at", ("int",)))
    ),
    "jd__agent_status": StreamSpec(
        (
            Field("status", ("int",), (0, 1, 2, 3)),
            Field("startTime", ("int",)),
            Field("endTime", ("int",), time_format="unix_ms"),
        ),
        "1 online, 2 busy, 3 away, 0 offline",
    ),
    "jd__queue": StreamSpec(
        (
            Field("waitingNum", ("int",), min=0),
            Field("onlineWaiterNum", ("int",), min=0),
            Field("polled_at", ("int",)),
        )
    ),
    # Meiqia (times are Asia/Shanghai strings)
    "meiqia__conversations": StreamSpec(
        (
            Field("conv_id", ("int", "str")),
            Field("conv_start_tm", ("str",), time_format="local"),
            Field("conv_end_tm", ("str",)),
            Field("conv_duration", ("int",), min=0),
            Field("conv_first_resp_wait_in_secs", ("int",), min=0),
            Field("msg_count", ("int",), min=0),
            Field("comment_level", ("int",), (0, 1, 2)),
            _id("track_id"),
            _id("visit_id"),
        ),
        "comment_level 0 差评, 1 中评, 2 好评; conv_end_tm is the update time (a later rating re-sends it)",
    ),
    "meiqia__messages": StreamSpec(
        (
            Field("id", ("int", "str")),
            Field("conv_id", ("int", "str")),
            Field("from", ("str",), ("client", "agent", "robot", "system")),
            Field("type", ("str",), ("message", "event")),
            Field("created_on", ("str",)),
        ),
        "from client | agent | robot | system; type message | event",
    ),
    "meiqia__agents": StreamSpec(
        (Field("agent_id", ("int", "str")), Field("status", ("str",)), Field("polled_at", ("int",)))
    ),
    "meiqia__agent_status": StreamSpec(
        (
            Field("agent_id", ("int", "str")),
            Field("status", ("str",)),
            Field("end_tm", ("str",), time_format="local"),
        )
    ),
    # Sobot 智齿 (t epoch ms, ts local strings)
    "sobot__sessions": StreamSpec(
        (
            Field("cid", ("str",)),
            Field("start_time", ("int",)),
            Field("end_time", ("int",), min=0),
            Field("first_response_seconds", ("int",), min=0),
            Field("robot_flag", ("int",), (0, 1)),
            Field("transfer_flag", ("int",), (0, 1)),
            _id("partnerid"),
            _id("visitorid"),
        ),
        "end_time 0 while the session is open",
    ),
    "sobot__messages": StreamSpec(
        (
            Field("sender_type", ("int",), (0, 1, 2, 3)),
            Field("msgid", ("str",)),
            Field("cid", ("str",)),
            Field("t", ("int",)),
            Field("ts", ("str",), time_format="local"),
            _id("sender"),
        ),
        "sender_type 0 user, 1 bot, 2 agent, 3 system",
    ),
    "sobot__ratings": StreamSpec(
        (
            Field("score", ("int",), (1, 2, 3, 4, 5)),
            Field("nps", ("int",), min=-1, max=10),
            Field("type", ("int",), (0, 1)),
            Field("t", ("int",)),
            Field("ts", ("str",), time_format="local"),
            _id("partnerid"),
        ),
        "nps -1 when not asked; type 1 agent, 0 bot evaluation",
    ),
    "sobot__agents": StreamSpec(
        (Field("staff_id", ("str",)), Field("status", ("int",)), Field("polled_at", ("int",)))
    ),
    "sobot__agent_status": StreamSpec(
        (
            Field("status", ("int",), (0, 1, 2, 3)),
            Field("start_time", ("int",)),
            Field("end_time", ("int",), min=0),
        ),
        "1 online, 2 busy, 3 away, 0 offline; end_time 0 while the status lasts",
    ),
    # the company's CRM (sandbox/server/platforms/crm.py)
    "crm__customers": StreamSpec(
        (_id("customer_id"), _id("union_id"), _id("phone_hash"), Field("created_at", ("str",))),
        "every field but the time identifies a person",
    ),
    "crm__identities": StreamSpec(
        (_id("customer_id"), _id("platform_user_id"), Field("channel", ("str",))),
        "which platform ids belong to one person",
    ),
    "crm__orders": StreamSpec(
        (
            Field("order_id", ("str", "int")),
            _id("customer_id"),
            Field("channel", ("str",)),
            Field("amount_cny", ("float", "int"), min=0),
            Field("status", ("str",)),
        )
    ),
}


# -- suite -------------------------------------------------------------------------------------
def suite_name(stream: Stream) -> str:
    return f"batch.{stream.table}"


def spec_for(stream: Stream) -> StreamSpec:
    return SPECS.get(stream.table, StreamSpec(note="no spec: checks from the stream declaration only"))


def _required(stream: Stream, spec: StreamSpec) -> list[str]:
    names = [*stream.primary_key, *([stream.time_field] if stream.time_field else []), *stream.required]
    names += [f.name for f in spec.fields if f.required]
    return list(dict.fromkeys(names))


def _identifiers(spec: StreamSpec) -> set[str]:
    return {f.name for f in spec.fields if f.identifier}


def _window_words(stream: Stream) -> str:
    if stream.cursor == "time_window":
        late = ", re-read for late updates" if stream.lookback else ""
        extra = (
            " (D+1: from the start of the window's first local day)" if stream.freshness == "d_plus_1" else ""
        )
        return f"within the extraction window{extra}{late}"
    if stream.cursor == "server_cursor" and stream.retention is not None:
        return f"within the API's retention ({stream.retention}) before the window end"
    return "not after the window end"


def _json(value) -> str:
    """A code as a JSON value (3 -> `3`, "open" -> `"open"`), as the frame shows codes."""
    return json.dumps(value, ensure_ascii=False)


def expectations(stream: Stream, spec: StreamSpec | None = None) -> list:
    """The stream's batch expectations (GX 1.x objects, in the order Data Docs show them).

    They read the frame `frame()` builds: `_key` and `_time` as the loader derives them,
    per-row bounds `_not_after`, `_window_start`, `_window_end` (the batch's parameters), and
    per spec field what its checks need: `<f>` (a code as JSON, a time's text, a hashed
    identifier, or a presence flag), `<f>__type` (JSON type), `<f>__number`, `<f>__time`.
    """
    import great_expectations.expectations as gxe

    spec = spec or spec_for(stream)
    ids = _identifiers(spec)
    key = "|".join(stream.primary_key)
    tf = stream.time_field
    hidden = {"identifier": True}
    pair = {"or_equal": True, "ignore_row_if": "either_value_is_missing"}
    out: list = [
        gxe.ExpectColumnToExist(
            column=c,
            description=f"`{c}` is present (a key, time or required field)",
            meta=hidden if c in ids else {},
        )
        for c in _required(stream, spec)
    ]
    out += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="_key",
            mostly=1 - RECORD_GRAIN_SHARE,
            description=f"record key ({key}) is present; single records without one go to raw._quarantine",
            meta=hidden,
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="_key",
            description=f"record key ({key}) is unique within the batch",
            meta=hidden,
        ),
    ]
    if tf:
        out += [
            gxe.ExpectColumnValuesToNotBeNull(
                column="_time",
                mostly=1 - RECORD_GRAIN_SHARE,
                description=f"`{tf}` parses as {stream.time_format}; single bad records go to raw._quarantine",
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="_not_after",
                column_B="_time",
                description=f"`{tf}` is not in the future (not after as_of)",
                **pair,
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="_time",
                column_B="_window_start",
                description=f"`{tf}` lies {_window_words(stream)} ({stream.cursor}): not before its start",
                **pair,
            ),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="_window_end",
                column_B="_time",
                description=f"`{tf}` lies {_window_words(stream)} ({stream.cursor}): not after its end",
                **pair,
            ),
        ]
    for f in spec.fields:
        meta = hidden if f.identifier else {}
        if f.not_null:
            out.append(
                gxe.ExpectColumnValuesToNotBeNull(column=f.name, description=f"`{f.name}` is set", meta=meta)
            )
        if f.identifier:
            continue  # identifiers: presence only, never their values
        if f.types and not f.values:  # a code check compares JSON values: it checks the type too
            json_types = sorted({t for name in f.types for t in JSON_TYPES[name]})
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f"{f.name}__type",
                    value_set=json_types,
                    description=f"`{f.name}` has JSON type {' or '.join(f.types)}",
                )
            )
        if f.values:
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=f.name,
                    value_set=[_json(v) for v in f.values],
                    description=f'`{f.name}` is a known code (as JSON: 3 is not "3")',
                )
            )
        if f.min is not None or f.max is not None:
            lo = f">= {f.min:g}" if f.min is not None else ""
            hi = f"<= {f.max:g}" if f.max is not None else ""
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=f"{f.name}__number",
                    min_value=f.min,
                    max_value=f.max,
                    description=f"`{f.name}` is a number {' and '.join(b for b in (lo, hi) if b)}",
                )
            )
        if f.time_format is not None:
            regex = {"iso": ISO_REGEX, "local": LOCAL_REGEX}.get(f.time_format)
            if regex:
                out.append(
                    gxe.ExpectColumnValuesToMatchRegex(
                        column=f.name, regex=regex, description=f"`{f.name}` parses as {f.time_format}"
                    )
                )
            out.append(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="_not_after",
                    column_B=f"{f.name}__time",
                    description=f"`{f.name}` is not in the future (not after as_of)",
                    **pair,
                )
            )
    return out


def suite_meta(stream: Stream, spec: StreamSpec | None = None) -> dict:
    spec = spec or spec_for(stream)
    return {
        "stream": stream.table,
        "doc": stream.doc,
        "cursor": stream.cursor,
        "freshness": stream.freshness,
        "note": spec.note,
    }


# -- per-batch bounds ---------------------------------------------------------------------------
def _ts(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def bounds(stream: Stream, window: dict | None, as_of) -> dict[str, pd.Timestamp]:
    """One batch's bounds: `not_after` (as_of + tolerance) and the window its cursor kind implies.

    - time_window: [since, until] of the batch (D+1 streams read whole local days: from a day
      before `since`); a late update is re-read in a later window by its update time;
    - server_cursor: up to as_of; not before the API's retention before the window end;
    - snapshot and page: up to as_of, no lower bound.
    `as_of` defaults to the batch's window end (a check of an old batch on its own terms).
    """
    until = _ts(window["until"]) if window and window.get("until") else None
    since = _ts(window["since"]) if window and window.get("since") else None
    as_of_ts = _ts(as_of) if as_of is not None else (until or pd.Timestamp.now(tz="UTC"))
    not_after = as_of_ts + pd.Timedelta(FUTURE_TOLERANCE)
    start, end = EPOCH, not_after
    if until is not None and stream.cursor == "time_window" and since is not None:
        start = since - (
            pd.Timedelta(days=1) if stream.freshness == "d_plus_1" else pd.Timedelta(WINDOW_TOLERANCE)
        )
        end = min(until + pd.Timedelta(WINDOW_TOLERANCE), not_after)
    elif until is not None and stream.cursor == "server_cursor" and stream.retention is not None:
        start = until - pd.Timedelta(stream.retention) - pd.Timedelta(hours=1)
    return {"not_after": not_after, "window_start": start, "window_end": end}


# -- frame -------------------------------------------------------------------------------------
JSON_TYPES = {
    "int": ("BIGINT", "UBIGINT"),
    "float": ("DOUBLE",),
    "str": ("VARCHAR",),
    "bool": ("BOOLEAN",),
    "dict": ("OBJECT",),
    "list": ("ARRAY",),
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _time_expr(raw: str, fmt: TimeFormat) -> str:
    """As `connectors.core.loader._time_sql`, for any field."""
    if fmt == "unix_s":
        return f"to_timestamp(try_cast({raw} as double))"
    if fmt == "unix_ms":
        return f"to_timestamp(try_cast({raw} as double) / 1000.0)"
    if fmt == "iso":
        return f"try_cast({raw} as timestamptz)"
    return f"timezone('Asia/Shanghai', try_strptime({raw}, '%Y-%m-%d %H:%M:%S'))"


def _pseudonym(expr: str, salt: str | None = None) -> str:
    """64-bit hash (53 bits: exact in a float) of a text; NULL stays NULL. Never reversible from
    the docs, unique enough for a uniqueness check within a batch."""
    text = f"{salt} || chr(31) || {expr}" if salt else expr
    return f"case when {expr} is null then null else (hash({text}) >> 11)::bigint end"


def select_sql(stream: Stream, spec: StreamSpec | None = None) -> str:
    """The SQL of a stream's frame over `read_ndjson_objects(...) r` joined to the batch table `b`.

    Each record is read once (one `json_extract_string` and one `json_type` over the list of
    paths); the key and time expressions are the loader's (`connectors.core.loader`), applied
    to the extracted texts."""
    from connectors.core.loader import _key_sql, _time_sql

    spec = spec or spec_for(stream)
    fields = {f.name: f for f in spec.fields}
    required = _required(stream, spec)
    paths = list(
        dict.fromkeys(
            [*stream.primary_key, *([stream.time_field] if stream.time_field else []), *required, *fields]
        )
    )
    pos = {p: i + 1 for i, p in enumerate(paths)}

    def text(name: str) -> str:
        return f"xs[{pos[name]}]"

    def jtype(name: str) -> str:
        return f"ts[{pos[name]}]"

    def loader_expr(expr: str, names) -> str:
        for name in names:
            expr = expr.replace(f"json_extract_string(r.json, '$.{name}')", text(name))
        return expr

    key = loader_expr(_key_sql(stream, "r.json"), stream.primary_key)
    out = [
        "batch_id as _batch",
        f"{_pseudonym(key, 'batch_id')} as _key",
        f"{loader_expr(_time_sql(stream, 'r.json'), [stream.time_field] if stream.time_field else [])} as _time",
        "not_after as _not_after",
        "window_start as _window_start",
        "window_end as _window_end",
    ]
    for name in required:
        out.append(f"{jtype(name)} is not null as {_q(name + '__present')}")
    for name in dict.fromkeys([*required, *fields]):
        f = fields.get(name)
        if f is None:  # a declared field without a spec: its presence only
            out.append(f"case when {jtype(name)} is not null then 1 end as {_q(name)}")
            continue
        if f.identifier:
            if name in required or f.not_null:
                out.append(f"{_pseudonym(text(name))} as {_q(name)}")
            continue
        if f.values:  # codes as JSON values: 3 is not "3", so the code check is a type check too
            out.append(
                f"case {jtype(name)} when 'VARCHAR' then to_json({text(name)})::varchar when 'NULL' then null "
                f"else {text(name)} end as {_q(name)}"
            )
        elif f.time_format is not None or f.not_null:
            out.append(f"{text(name)} as {_q(name)}")
        elif name in required:
            out.append(f"case when {jtype(name)} is not null then 1 end as {_q(name)}")
        if f.types and not f.values:
            out.append(f"nullif({jtype(name)}, 'NULL') as {_q(name + '__type')}")
        if f.min is not None or f.max is not None:
            out.append(f"try_cast({text(name)} as double) as {_q(name + '__number')}")
        if f.time_format is not None:
            out.append(f"{_time_expr(text(name), f.time_format)} as {_q(name + '__time')}")
    path_list = ", ".join(f"'$.{p}'" for p in paths)
    return (
        f"select {', '.join(out)} from ("
        f"select b.*, r.json, json_extract_string(r.json, [{path_list}]) as xs, json_type(r.json, [{path_list}]) as ts "
        "from read_ndjson_objects($files, filename = true) r join _gate_batches b using (filename))"
    )


def frame(
    con, stream: Stream, sources: list[tuple[str, str, dict]], spec: StreamSpec | None = None
) -> pd.DataFrame:
    """The frame of one or more batches of a stream, read by DuckDB from their files.

    `sources`: (batch_id, path to the .jsonl[.gz] file, bounds) per batch. Columns as
    `expectations()` reads them, plus `_batch` and `<required>__present` flags.
    """
    con.execute(
        "create or replace temp table _gate_batches (filename varchar, batch_id varchar, "
        "not_after timestamptz, window_start timestamptz, window_end timestamptz)"
    )
    con.executemany(
        "insert into _gate_batches values (?, ?, ?, ?, ?)",
        [[path, bid, b["not_after"], b["window_start"], b["window_end"]] for bid, path, b in sources],
    )
    files = [path for _, path, _ in sources]
    table = con.execute(select_sql(stream, spec).replace("$files", repr(files))).to_arrow_table()
    # texts become categories (codes, types, batch ids: few distinct values; cheap for GX)
    return table.to_pandas(strings_to_categorical=True)
