"""Incremental marts and tier history.

A warehouse is filled by bulk mode (sandbox/bulk.py: WeCom and CRM batches, the shapes
the servers serve) up to T1 and built; then hourly batches up to T2 arrive and an
incremental build runs; then a full refresh at T2. The incremental marts must equal the
full refresh row for row, and conversations started before T1 keep the tier and SLA
target they had at T1 although the CRM tiers were recomputed at T2.
"""

from __future__ import annotations

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


# the marts and everything they need, without the tests (test_marts.py runs those)
BUILD = "+marts,resource_type:model +marts,resource_type:snapshot +marts,resource_type:seed"


def _load() -> None:
    with Loader(warehouse_path(), all_streams()) as loader:
        loader.load_pending()


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
        writer.write(T1, T2, batch_hours=1)  # hourly syncs
        _load()
    transform(T2, select=BUILD)
    incremental = read_marts(warehouse_path())
    # the same warehouse, every incremental mart rebuilt from scratch
    transform(T2, select=BUILD, full_refresh=True)
    full = read_marts(warehouse_path())
    yield {"t1": at_t1, "incremental": incremental, "full": full}
    mp.undo()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_incremental_build_equals_full_refresh(builds, name):
    inc, full = builds["incremental"][name], builds["full"][name]
    assert len(full) > 0
    inc = inc.sort_values(KEYS[name]).reset_index(drop=True)
    full = full.sort_values(KEYS[name]).reset_index(drop=True)
    pd.testing.assert_frame_equal(inc, full, check_exact=True)


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
