"""Incremental marts and tier history.

A warehouse is filled by bulk mode (sandbox/bulk.py: WeCom and CRM batches, the shapes
the servers serve) up to T1 and built; then hourly batches up to T2 arrive and an
incremental build runs; then a full refresh at T2. The incremental marts, and the incremental intermediate models, must
equal the full refresh row for row, and conversations started before T1 keep the tier
and SLA target they had at T1 although the CRM tiers were recomputed at T2.

Among the batches after T1 is a late update: newer versions of customer messages sent
in the hours before T1 (already built at T1), their text now a complaint, so their
conversations' topic changes and the incremental run has to rebuild old threads.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from test_marts import read_marts

from connectors.core.loader import Loader
from connectors.platforms import all_streams
from csw.settings import warehouse_path
from csw.transform import transform
from sandbox.bulk import BulkWriter

TZ = "Asia/Shanghai"
T1 = pd.Timestamp("2026-11-10 13:00", tz=TZ).tz_convert("UTC")
T2 = pd.Timestamp("2026-11-11 16:00", tz=TZ).tz_convert("UTC")
KEYS = {
    "fct_conversations": ["conversation_id"],
    "dim_agents": ["agent_account_key"],
    "dim_customers": ["person_key"],
    "mart_sla_interval": ["channel", "medium", "interval_start"],
    "mart_sla_daily": ["channel", "medium", "local_date"],
    "mart_agent_performance": ["agent_id", "channel", "local_date"],
    "mart_satisfaction": ["local_date", "channel", "medium", "agent_id", "topic", "frt_band"],
    "mart_value_tier": ["local_date", "channel", "medium", "customer_tier"],
    "mart_volume_interval": ["channel", "medium", "interval_start"],
    "snp_customer_tiers": ["person_key", "dbt_valid_from"],
}
# incremental intermediate models, compared without their run stamps (_built_at ...)
INTERMEDIATE = {
    "int_messages_unioned": ["message_key"],
    "int_messages_sessionised": ["message_key"],
}
LATE = pd.Timedelta(hours=3)  # the late update rewrites customer messages of (T1 - LATE, T1]
COMPLAINT = "投诉 "  # a complaint keyword of the topic seed


# the marts and everything they need, without the tests (test_marts.py runs those)
BUILD = "+marts,resource_type:model +marts,resource_type:snapshot +marts,resource_type:seed"


def _load() -> None:
    with Loader(warehouse_path(), all_streams()) as loader:
        loader.load_pending()


def _read_intermediate() -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(warehouse_path()), read_only=True)
    try:
        out = {name: con.execute(f"select * from intermediate.{name}").df() for name in INTERMEDIATE}
    finally:
        con.close()
    return {name: df[[c for c in df.columns if not c.startswith("_")]] for name, df in out.items()}


def _land_late(writer: BulkWriter, record_sql: str) -> int:
    """A batch of WeCom records made from the customer messages sent in (T1 - LATE, T1]."""
    since, until = (T1 - LATE).tz_convert("UTC"), T1.tz_convert("UTC")
    manifest = writer._land_query(
        "wecom",
        "messages",
        f"select {record_sql} as record from wecom_rows "
        f"where sent_at > '{since.isoformat()}' and sent_at <= '{until.isoformat()}' "
        "and json_extract_string(record, '$.origin') = '3' order by sent_at, message_id",
        {"since": since.isoformat(), "until": until.isoformat()},
    )
    return manifest.row_count


# newer versions of the messages: their text a complaint now
UPDATED = (
    "json_merge_patch(record, json_object('text', json_object('content', "
    f"'{COMPLAINT}' || json_extract_string(record, '$.text.content'))))"
)
# a new message one second after each: its conversation, built at T1, continues
FOLLOW_UP = (
    "json_merge_patch(record, json_object('msgid', json_extract_string(record, '$.msgid') || '_late', "
    "'send_time', cast(json_extract_string(record, '$.send_time') as bigint) + 1))"
)


@pytest.fixture(scope="module")
def builds(tmp_path_factory, sim_data):
    work = tmp_path_factory.mktemp("incremental")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    with BulkWriter(sim_data) as writer:
        writer.write(None, T1)
        _load()
        transform(T1, select=BUILD)
        at_t1 = read_marts(warehouse_path())
        at_t1_int = _read_intermediate()
        writer.write(T1, T2, batch_hours=1)  # hourly syncs
        late = _land_late(writer, UPDATED)
        follow_ups = _land_late(writer, FOLLOW_UP)
        _load()
    transform(T2, select=BUILD)
    incremental = read_marts(warehouse_path())
    incremental_int = _read_intermediate()
    # the same warehouse, every incremental model rebuilt from scratch
    transform(T2, select=BUILD, full_refresh=True)
    full = read_marts(warehouse_path())
    full_int = _read_intermediate()
    yield {
        "t1": at_t1,
        "incremental": incremental,
        "full": full,
        "t1_int": at_t1_int,
        "incremental_int": incremental_int,
        "full_int": full_int,
        "late_rows": late,
        "follow_ups": follow_ups,
    }
    mp.undo()


@pytest.mark.parametrize(
    ("layer", "name"), [("", n) for n in sorted(KEYS)] + [("_int", n) for n in sorted(INTERMEDIATE)]
)
def test_incremental_build_equals_full_refresh(builds, layer, name):
    keys = {**KEYS, **INTERMEDIATE}[name]
    inc, full = builds["incremental" + layer][name], builds["full" + layer][name]
    assert len(full) > 0
    inc = inc.sort_values(keys).reset_index(drop=True)
    full = full.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(inc, full, check_exact=True)


def test_conversations_span_the_boundary(builds):
    """Conversations built at T1 continued in later batches, under the same id, renumbered."""
    old = builds["t1_int"]["int_messages_sessionised"]
    new = builds["incremental_int"]["int_messages_sessionised"].set_index("message_key")
    late = new[new.index.str.endswith("_late")]
    assert len(late) == builds["follow_ups"] > 10
    # each follow-up joined the conversation of the message it follows
    followed = new.loc[late.index.str.removesuffix("_late")]
    assert (late["conversation_id"].to_numpy() == followed["conversation_id"].to_numpy()).all()
    spanning = late["conversation_id"].unique()
    sizes = old.groupby("conversation_id").size()
    assert set(spanning) <= set(sizes.index)
    grown = new.groupby("conversation_id").size().loc[spanning]
    assert (grown == sizes.loc[spanning] + late.groupby("conversation_id").size().loc[spanning]).all()
    assert (late["message_seq"].to_numpy() > followed["message_seq"].to_numpy()).all()
    # messages built at T1 after a follow-up moved down: the old thread was renumbered
    was = old[old["conversation_id"].isin(spanning)].set_index("message_key")["message_seq"]
    assert (new.loc[was.index, "message_seq"] > was).any()


def test_late_update_rebuilt_old_messages(builds):
    """The late versions replaced messages built at T1, and their conversations' topic."""
    assert builds["late_rows"] > 10
    msgs = builds["incremental_int"]["int_messages_unioned"].set_index("message_key")
    before = builds["t1_int"]["int_messages_unioned"].set_index("message_key")
    window = before[
        (before["sent_at"] > T1 - LATE) & (before["sent_at"] <= T1) & (before["sender_type"] == "customer")
    ]
    assert len(window) == builds["late_rows"]
    assert not window["content"].str.startswith(COMPLAINT).any()
    assert msgs.loc[window.index, "content"].str.startswith(COMPLAINT).all()
    # conversations whose first customer message was rewritten are complaints now
    sess = builds["incremental_int"]["int_messages_sessionised"]
    customer = sess[sess["sender_type"] == "customer"].sort_values("message_seq")
    first = customer.groupby("conversation_id")["message_key"].first()
    rewritten = first[first.isin(window.index)].index
    old_topic = builds["t1"]["fct_conversations"].set_index("conversation_id")["topic"]
    changed = rewritten.intersection(old_topic[old_topic != "complaint"].index)
    assert len(changed) > 5, "no conversation's topic could change: the late update proves nothing"
    new_topic = builds["incremental"]["fct_conversations"].set_index("conversation_id")["topic"]
    assert (new_topic.loc[rewritten] == "complaint").all()


def test_new_batches_changed_buckets_built_before(builds):
    """Not vacuous: T2's batches changed a day the T1 build had already written."""
    old = builds["t1"]["mart_sla_daily"].set_index(["channel", "local_date"])
    new = builds["incremental"]["mart_sla_daily"].set_index(["channel", "local_date"])
    day_t1 = pd.Timestamp(T1.tz_convert(TZ).date())
    same_day = old.index.get_level_values("local_date") == day_t1
    both = old[same_day].index.intersection(new.index)
    assert len(both)
    assert (new.loc[both, "conversations"] > old.loc[both, "conversations"]).all()


def test_recomputing_tiers_keeps_past_sla_targets(builds):
    before = builds["t1"]["fct_conversations"].set_index("conversation_id")
    after = builds["full"]["fct_conversations"].set_index("conversation_id")
    snap = builds["full"]["snp_customer_tiers"]
    # tiers were recomputed at T2 and some changed
    changed = snap.groupby("person_key").filter(lambda g: len(g) > 1)["person_key"].unique()
    assert len(changed) > 0, "no tier changed between T1 and T2: the test proves nothing"
    assert (snap["dbt_valid_from"] <= T2).all()
    # every conversation started before T1 keeps its tier and target
    common = before.index.intersection(after.index)
    old = before.loc[common]
    old = old[old["started_at"] < T1]
    assert len(old) > 100
    pd.testing.assert_series_equal(old["customer_tier"], after.loc[old.index, "customer_tier"])
    pd.testing.assert_series_equal(old["sla_target_s"], after.loc[old.index, "sla_target_s"])
