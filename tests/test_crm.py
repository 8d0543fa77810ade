"""The CRM source: customers, the identity mapping feed and orders land exactly, and the
salted hash of a platform id in the CRM feed equals the one platform staging computes,
so conversations join to the right person."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from connectors.cli import run_ingest
from csw.transform import transform


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CSW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CSW_CONNECTORS_CONFIG", str(tmp_path / "none.yaml"))
    return tmp_path


def test_crm_lands_exactly_and_joins_conversations_to_persons(workdir, sandbox, sim_data, as_of):
    sandbox.state.faults.set("crm", duplicate_rows=25, rate_limit=2, retry_after_s=0)
    summary = run_ingest(["crm", "wecom"], None, None, as_of, sandbox.url, show_progress=False)
    assert not summary["failures"]
    transform(as_of)
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    orders = con.execute("select order_id, amount_cny from staging.stg_crm__orders").df()
    identities = con.execute("select * from staging.stg_crm__identities").df()
    customers = con.execute("select count(*) from staging.stg_crm__customers").fetchone()[0]
    fct = con.execute(
        "select conversation_id, customer_key from marts.fct_conversations where channel = 'wecom'"
    ).df()
    con.close()
    truth_orders = sim_data["orders"][sim_data["orders"]["ordered_at"] <= as_of]
    assert sorted(orders["order_id"]) == sorted(truth_orders["order_id"])
    assert orders["amount_cny"].sum() == pytest.approx(truth_orders["amount_cny"].sum())
    assert customers == len(sim_data["customers"])
    assert len(identities) == len(sim_data["identities"])
    # every WeCom conversation's hashed customer joins to exactly the true person
    joined = fct.merge(identities[identities["channel"] == "wecom"], on="customer_key", how="left")
    assert joined["crm_customer_id"].notna().all()
    first_msg = joined["conversation_id"].str.removeprefix("wecom:s:from_msgid_").astype(int)
    conv_of = sim_data["messages"].set_index("message_id")["conversation_id"]
    truth_customer = sim_data["conversations"].set_index("conversation_id")["customer_id"]
    expected = truth_customer.loc[conv_of.loc[first_msg].to_numpy()].to_numpy()
    assert (joined["crm_customer_id"].to_numpy() == expected).all()
    # the raw identifiers never reach the staging output
    assert not set(sim_data["identities"]["platform_user_id"]) & set(identities["customer_key"])
    assert isinstance(pd.Timestamp(as_of), pd.Timestamp)
