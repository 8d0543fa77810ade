"""WeCom specifics over real HTTP against the sandbox: ratings, which the API does not
have, come from the admin console's 满意度评价 report in a normal ingest (the generic
checks are in test_connectors.py; CSAT per conversation in the fct_conversations oracle)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from connectors.cli import run_ingest
from connectors.core.config import load_config, sandbox_overrides
from connectors.core.http import ConnectorError
from connectors.core.runner import extract
from connectors.platforms import wecom


def truth_ratings(sim_data, until: pd.Timestamp) -> pd.DataFrame:
    r = sim_data["ratings"]
    r = r[(r["channel"] == "wecom") & (r["rated_at"] <= until)]
    return r.assign(rating_id=r["rating_id"].astype(str)).set_index("rating_id")


def raw_ratings(workdir: Path) -> pd.DataFrame:
    con = duckdb.connect(str(workdir / "warehouse" / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "select payload->>'rating_id' as rating_id, cast(payload->>'rating' as int) as rating, "
            "_record_time as rated_at, _source from raw.wecom__ratings"
        ).df()
    finally:
        con.close()


def test_ratings_come_from_the_console_by_rated_at_windows(workdir, console, sim_data, as_of):
    start = pd.Timestamp(sim_data.config["start"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    earlier = as_of - pd.Timedelta(hours=6)
    console.state.clock.set(earlier, speed=0)
    first = run_ingest(["wecom"], "ratings", start, earlier, console.url, show_progress=False)
    assert not first["failures"], first["failures"]
    console.state.clock.set(as_of, speed=0)
    second = run_ingest(["wecom"], "ratings", None, as_of, console.url, show_progress=False)
    assert not second["failures"], second["failures"]

    raw = raw_ratings(workdir)
    truth = truth_ratings(sim_data, as_of)
    assert not raw["rating_id"].duplicated().any()
    assert set(raw["rating_id"]) == set(truth.index)
    assert (raw["_source"] == "scrape").all()
    got = raw.set_index("rating_id").loc[truth.index]
    assert (got["rating"].to_numpy() == truth["csat"].to_numpy()).all()
    # the console shows local time to the second
    assert ((got["rated_at"] - truth["rated_at"].dt.floor("s")).abs() < pd.Timedelta(seconds=1)).all()
    # the second run resumed from the first one's window: only the ratings new since then
    # land (the look-back's re-read rows are already landed unchanged)
    new = len(truth) - len(truth_ratings(sim_data, earlier))
    (res,) = second["extracted"]
    assert new > 0 and res["rows"] == new and res["source"] == "scrape"


def test_ratings_without_a_console_name_the_settings_to_add(workdir, sandbox, as_of):
    cfg = load_config(path=Path("/nonexistent/connectors.yaml"), overrides=sandbox_overrides(sandbox.url))[
        "wecom"
    ]
    values = {k: v for k, v in cfg.values.items() if not k.startswith("console_")}
    connector = wecom.Connector(type(cfg)("wecom", values, cfg.source))
    with pytest.raises(ConnectorError, match="console_url, console_username and console_password"):
        extract(connector, wecom.STREAMS["ratings"], until=as_of)
