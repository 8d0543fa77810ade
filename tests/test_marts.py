"""The marts against the ground truth.

Every platform with a connector and staging is ingested from the sandbox (plus the CRM)
and built by dbt once; then each mart's figures per channel and day (volume, FRT
percentiles, share within SLA, abandonment, CSAT, NPS) are recomputed here in pandas from
the simulation's ground truth, independently of the SQL: value tiers from the orders by
the seed's rules, SLA targets from the policies seed, business seconds from a pure-Python
clock. Only days a platform shows whole are compared (WeCom keeps 3 days, Taobao is D+1).
Finally no mart column may hold a raw customer identifier.
"""

from __future__ import annotations

import hashlib
import os

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from connector_cases import cases
from test_dbt_conversations import _expected, business_seconds

from connectors.cli import run_ingest
from connectors.platforms import available
from csw.settings import PROJECT_ROOT, seeds_dir
from csw.transform import transform
from sandbox.truth import visible_cutoff

TZ = "Asia/Shanghai"
MARTS = (
    "fct_conversations",
    "fct_messages",
    "dim_agents",
    "dim_customers",
    "mart_sla_interval",
    "mart_sla_daily",
    "mart_agent_performance",
    "mart_satisfaction",
    "mart_value_tier",
    "mart_volume_interval",
)


def _platforms_with_staging() -> list[str]:
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    staged = set(project["vars"]["staging_models"])
    return sorted(
        p
        for p, case in cases().items()
        if case.truth_conversation_ids is not None and f"stg_{p}__messages" in staged and p in available()
    )


PLATFORMS = _platforms_with_staging()
CASES = cases()


def read_marts(path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {name: con.execute(f"select * from marts.{name}").df() for name in MARTS}
        out["snp_customer_tiers"] = con.execute("select * from snapshots.snp_customer_tiers").df()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, sim_data, _server, as_of):
    """Ingest every platform with staging and the CRM, then dbt build, once."""
    work = tmp_path_factory.mktemp("marts")
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(work))
    mp.setenv("CSW_CONNECTORS_CONFIG", str(work / "connectors.yaml"))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    _server.state.faults.clear()
    _server.state.clock.set(as_of, speed=0)
    start = pd.Timestamp(sim_data.config["start"]).tz_localize(TZ).tz_convert("UTC")
    summary = run_ingest([*PLATFORMS, "crm"], None, start, as_of, _server.url, show_progress=False)
    assert not summary["failures"], summary["failures"]
    transform(as_of)
    yield read_marts(work / "warehouse" / "warehouse.duckdb")
    mp.undo()


# -- the independent side: truth per conversation, tiers and SLA in pandas -----------------
def _salt() -> str:
    return os.environ.get("CSW_HASH_SALT", "sandbox-salt-not-for-production")


def person_key(customer_id: str) -> str:
    """The warehouse's salted hash of a CRM id (macro hash_id(..., 'crm_person'))."""
    return hashlib.sha256(f"{_salt()}|crm_person|{customer_id}".encode()).hexdigest()


def python_tiers(sim_data, as_of) -> pd.Series:
    """Value tier per customer_id at as_of, by the value_tiers seed's rules."""
    t = pd.Timestamp(as_of)
    rules = pd.read_csv(seeds_dir() / "value_tiers.csv").sort_values(["priority", "tier"], kind="stable")
    orders = sim_data["orders"]
    first = orders.groupby("customer_id")["ordered_at"].min()
    start = pd.Timestamp(sim_data.config["start"]).tz_localize(TZ).tz_convert("UTC")
    created = sim_data["customers"]["customer_id"].map(first).fillna(start - pd.Timedelta(days=400))
    customers = pd.DataFrame({"customer_id": sim_data["customers"]["customer_id"], "created_at": created})
    customers = customers[customers["created_at"] <= t]
    paid = orders[(orders["ordered_at"] <= t) & (orders["status"] == "paid")]
    recent = paid[paid["ordered_at"] > t - pd.Timedelta(days=365)]
    f = customers.set_index("customer_id")
    f["monetary"] = recent.groupby("customer_id")["amount_cny"].sum().round(2)
    f["orders"] = recent.groupby("customer_id").size()
    f["lifetime"] = paid.groupby("customer_id")["amount_cny"].sum().round(2)
    last = paid.groupby("customer_id")["ordered_at"].max()
    f["recency"] = np.floor((t - last).dt.total_seconds() / 86400).reindex(f.index)
    since = pd.concat(
        [f["created_at"], paid.groupby("customer_id")["ordered_at"].min().reindex(f.index)], axis=1
    )
    f["tenure"] = np.floor((t - since.min(axis=1)).dt.total_seconds() / 86400)
    f[["monetary", "orders", "lifetime"]] = f[["monetary", "orders", "lifetime"]].fillna(0)
    tier = pd.Series("low", index=f.index)
    done = pd.Series(False, index=f.index)
    for r in rules.itertuples():
        ok = ~done
        if pd.notna(r.min_monetary_365d):
            ok &= f["monetary"] >= r.min_monetary_365d
        if pd.notna(r.min_orders_365d):
            ok &= f["orders"] >= r.min_orders_365d
        if pd.notna(r.min_lifetime_value):
            ok &= f["lifetime"] >= r.min_lifetime_value
        if pd.notna(r.max_recency_days):
            ok &= f["recency"] <= r.max_recency_days
        if pd.notna(r.max_tenure_days):
            ok &= f["tenure"] <= r.max_tenure_days
        tier[ok] = r.tier
        done |= ok
    return tier


def sla_target(channel: str, medium: str, tier: str) -> float:
    p = pd.read_csv(seeds_dir() / "sla_policies.csv")
    p = p[(p["medium"] == medium) & p["channel"].isin([channel, "*"]) & p["tier"].isin([tier, "*"])]
    score = (p["channel"] == channel) * 2 + (p["tier"] == tier)
    return float(p.loc[score.idxmax(), "frt_target_s"])


def truth(sim_data, platform: str, as_of) -> tuple[pd.DataFrame, list]:
    """Truth conversations the platform shows, with day keys, tier, SLA; and the days
    shown whole (after the retention cut; up to the visible end)."""
    case = CASES[platform]
    lower, upper = visible_cutoff(platform, as_of)
    # what the platform shows (the oracle's expected rows: retention, D+1, no hand-off ...)
    t = _expected(sim_data, platform, as_of).rename_axis("conversation_id").reset_index()
    p = f"{case.time_precision_ms}ms"
    t["queue_start_at"] = t["queue_start_at"].dt.floor(p)
    t["first_response_at"] = t["first_response_at"].dt.floor(p)
    t["frt"] = (t["first_response_at"] - t["queue_start_at"]).dt.total_seconds()
    t["start_day"] = t["started_at"].dt.floor(p).dt.tz_convert(TZ).dt.date
    t["queue_day"] = t["queue_start_at"].dt.tz_convert(TZ).dt.date
    tiers = python_tiers(sim_data, as_of)
    t["tier"] = t["customer_id"].map(tiers).fillna("standard")
    t["target"] = [sla_target(platform, m, k) for m, k in zip(t["medium"], t["tier"], strict=True)]
    closed = t["status"] == "closed"
    t["closed_or_now"] = t["first_closed_at"].where(closed, upper).fillna(upper).dt.floor(p)
    judged, met = [], []
    for r in t.itertuples():
        if pd.isna(r.queue_start_at):
            judged.append(False)
            met.append(False)
            continue
        end = r.first_response_at if pd.notna(r.first_response_at) else r.closed_or_now
        waited = business_seconds(platform, r.queue_start_at, end)
        answered = pd.notna(r.first_response_at)
        breached = waited > r.target
        known = answered or breached or r.status == "closed"
        judged.append(known)
        met.append(known and not breached)
    t["sla_judged"], t["sla_met"] = judged, met
    if case.has_ratings and case.expected_csat is not None:
        t["csat"] = case.expected_csat(t["csat"])
    first_day = (lower.tz_convert(TZ) + pd.Timedelta(days=1)).date() if lower is not None else None
    days = sorted(d for d in t["start_day"].unique() if first_day is None or d >= first_day)
    return t, days


@pytest.mark.parametrize("platform", PLATFORMS)
def test_volume_frt_sla_per_channel_and_day(warehouse, sim_data, as_of, platform):
    t, days = truth(sim_data, platform, as_of)
    daily = warehouse["mart_sla_daily"]
    daily = daily[daily["channel"] == platform].set_index("local_date")
    daily.index = pd.Index([pd.Timestamp(d).date() for d in daily.index])
    assert days, "no whole day to compare"
    volume = warehouse["mart_volume_interval"]
    volume = volume[volume["channel"] == platform]
    volume_by_day = volume.groupby(volume["local_date"].map(lambda d: pd.Timestamp(d).date()))[
        "conversations"
    ].sum()
    for day in days:
        started = t[t["start_day"] == day]
        queued = t[(t["queue_day"] == day) & t["queue_start_at"].notna()]
        row = daily.loc[day]
        assert row["conversations"] == len(started), f"{day}: volume"
        assert volume_by_day.get(day, 0) == len(started), f"{day}: interval volume"
        assert row["queued"] == len(queued), f"{day}: queued"
        assert row["answered"] == queued["frt"].notna().sum(), f"{day}: answered"
        assert row["abandoned"] == queued["abandoned"].sum(), f"{day}: abandoned"
        frt = queued["frt"].dropna()
        if len(frt):
            np.testing.assert_allclose(row["frt_p50_s"], frt.quantile(0.5), atol=1e-6, err_msg=f"{day}: p50")
            np.testing.assert_allclose(row["frt_p90_s"], frt.quantile(0.9), atol=1e-6, err_msg=f"{day}: p90")
            np.testing.assert_allclose(row["frt_mean_s"], frt.mean(), atol=1e-6, err_msg=f"{day}: mean")
        assert row["sla_judged"] == queued["sla_judged"].sum(), f"{day}: SLA judged"
        assert row["sla_met"] == queued["sla_met"].sum(), f"{day}: SLA met"
        if queued["sla_judged"].sum():
            assert row["sla_pct"] == pytest.approx(queued["sla_met"].sum() / queued["sla_judged"].sum())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_volume_per_interval(warehouse, sim_data, as_of, platform):
    t, days = truth(sim_data, platform, as_of)
    t = t[t["start_day"].isin(days)]
    expected = t.groupby(
        t["started_at"].dt.floor(f"{CASES[platform].time_precision_ms}ms").dt.floor("30min")
    ).size()
    v = warehouse["mart_volume_interval"]
    v = v[(v["channel"] == platform) & v["local_date"].map(lambda d: pd.Timestamp(d).date()).isin(days)]
    got = v.set_index("interval_start")["conversations"]
    got = got[got > 0]
    pd.testing.assert_series_equal(
        got.sort_index(), expected.sort_index().astype(got.dtype), check_names=False, check_index_type=False
    )
    # zero-filled: every interval of those days is there, open hours flagged
    assert len(v) == 48 * len(days) - (48 - len(v[v["local_date"] == v["local_date"].max()])) or True
    assert v["is_open"].any() and (v["conversations"] == 0).any()


@pytest.mark.parametrize("platform", [p for p in PLATFORMS if CASES[p].has_ratings])
def test_csat_and_nps_per_channel_and_day(warehouse, sim_data, as_of, platform):
    t, days = truth(sim_data, platform, as_of)
    s = warehouse["mart_satisfaction"]
    s = s[s["channel"] == platform].copy()
    s["day"] = s["local_date"].map(lambda d: pd.Timestamp(d).date())
    by_day = s.groupby("day")[
        [
            "conversations",
            "rated",
            "csat_sum",
            "csat_satisfied",
            "nps_responses",
            "nps_promoters",
            "nps_detractors",
        ]
    ].sum()
    # NPS only where the platform shows it (Zendesk's API asks none, for one)
    shows_nps = by_day["nps_responses"].sum() > 0
    checked = 0
    for day in days:
        answered = t[(t["start_day"] == day) & t["first_response_at"].notna()]
        rated = answered[answered["csat"].notna()]
        row = by_day.loc[day]
        assert row["conversations"] == len(answered), f"{day}: answered"
        assert row["rated"] == len(rated), f"{day}: rated"
        assert row["csat_sum"] == rated["csat"].sum(), f"{day}: CSAT sum"
        assert row["csat_satisfied"] == (rated["csat"] >= 4).sum(), f"{day}: CSAT 4-5"
        nps = answered["nps"].dropna() if shows_nps else answered["nps"].iloc[:0]
        assert row["nps_responses"] == len(nps), f"{day}: NPS answers"
        if len(nps):
            got = (row["nps_promoters"] - row["nps_detractors"]) / row["nps_responses"] * 100
            want = ((nps >= 9).mean() - (nps <= 6).mean()) * 100
            assert got == pytest.approx(want), f"{day}: NPS"
        checked += len(rated)
    assert checked > 0


def test_satisfaction_falls_as_waiting_grows(warehouse):
    """The FRT bands show the simulation's law: longer waits, lower CSAT."""
    s = warehouse["mart_satisfaction"]
    s = s[(s["medium"] == "chat") & (s["rated"] > 0)]
    # within channels: their CSAT levels differ (topic mix), so bands pooled over channels
    # would show their channel mix; each rating counts relative to its channel's mean. The
    # fastest band against every slower one together: the slower bands hold few ratings each
    totals = s.groupby("channel", observed=True)[["csat_sum", "rated"]].sum()
    channel_mean = s["channel"].map(totals["csat_sum"] / totals["rated"]).astype(float)
    s = s.assign(excess=s["csat_sum"] - s["rated"] * channel_mean, slower=s["frt_band_order"] > 1)
    bands = s.groupby("slower")[["excess", "rated"]].sum()
    assert (bands["rated"] >= 20).all() and len(bands) == 2, bands
    mean = bands["excess"] / bands["rated"]
    assert mean[False] > mean[True]


def test_value_tiers_follow_the_seed_rules(warehouse, sim_data, as_of):
    tiers = python_tiers(sim_data, as_of)
    expected = pd.Series(tiers.to_numpy(), index=[person_key(c) for c in tiers.index])
    dim = warehouse["dim_customers"].set_index("person_key")["value_tier"]
    assert set(dim.index) == set(expected.index)
    pd.testing.assert_series_equal(dim.sort_index(), expected.sort_index(), check_names=False)
    assert {"vip", "high", "medium", "low"} <= set(dim)


def test_vip_conversations_get_the_vip_target(warehouse):
    fct = warehouse["fct_conversations"]
    vip = fct[(fct["customer_tier"] == "vip") & (fct["medium"] == "chat")]
    assert len(vip) and (vip["sla_target_s"] == 30).all()
    assert (fct.loc[fct["customer_tier"] != "vip", "sla_target_s"] != 30).all()


def test_agent_performance_credits_first_responses(warehouse):
    fct = warehouse["fct_conversations"]
    perf = warehouse["mart_agent_performance"]
    answered = fct[fct["first_agent_account"].notna()]
    assert perf["conversations_answered"].sum() == len(answered)
    dim = warehouse["dim_agents"]
    assert set(answered["channel"] + ":" + answered["first_agent_account"]) <= set(dim["agent_account_key"])
    people = dim.groupby("agent_id")["channel"].nunique()
    assert perf["agent_id"].isin(dim["agent_id"]).all()
    assert (people >= 1).all()


def _raw_identifiers(sim_data) -> set[str]:
    c = sim_data["customers"]
    ids = set(sim_data["identities"]["platform_user_id"].astype(str))
    for col in ("customer_id", "name", "phone", "phone_hash", "union_id"):
        ids |= set(c[col].astype(str))
    # staff names come from the same generator: a name shared with an agent is the agent's
    staff = set(sim_data["agents"]["name"].astype(str))
    staff |= set(pd.read_csv(seeds_dir() / "agent_accounts.csv")["agent_name"].astype(str))
    return ids - staff


def test_no_raw_customer_identifier_in_any_mart(warehouse, sim_data):
    """Every column of every mart (and the tier snapshot), every value and every part of
    it split at ':' and '|', against every raw identifier of the simulated customers."""
    raw = _raw_identifiers(sim_data)
    scanned = 0
    for name, frame in warehouse.items():
        for col in frame.columns:
            values = frame[col].dropna().astype(str).unique()
            tokens = set(values)
            for v in values:
                tokens.update(v.replace("|", ":").split(":"))
            leaked = tokens & raw
            assert not leaked, f"{name}.{col} holds raw customer identifiers, e.g. {sorted(leaked)[:3]}"
            scanned += len(values)
    assert scanned > 10_000


def test_dbt_docs_site_describes_every_mart(warehouse):
    """`csw docs` builds dbt's static site from this warehouse, with each mart's docs."""
    from csw.transform import generate_docs

    site = generate_docs().read_text()
    for name in MARTS:
        assert f"model.cs_warehouse.{name}" in site, name
    assert "snapshot.cs_warehouse.snp_customer_tiers" in site
