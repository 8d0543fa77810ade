"""dbt's own unit tests (`unit_tests:` in dbt_project/models/**/*.yml): DESIGN §7's edge
cases on hand-made rows, expected values computed by hand (the YAML says how).

dbt reads the column types of a unit test's inputs from their relations, so the project
is first built `--empty` (schemas only) on empty raw tables in a throwaway warehouse;
then `dbt test --select test_type:unit` runs them, as `csw transform` runs dbt. The
pipeline's `dbt build` leaves them out (csw/transform.py says why).
"""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml

from connectors.core.loader import DDL, RAW_COLUMNS
from connectors.platforms import all_streams
from csw.settings import dbt_target_dir, warehouse_path
from csw.transform import DBT_DIR, run_dbt

# Far from every fixture's dates: a unit test whose as_of override stopped applying fails.
CLI_AS_OF = "2030-01-01T00:00:00Z"

# The edge cases: removing one from the YAML fails here, not silently.
EDGE_CASES = {
    "sessionised_at_the_idle_gap",
    "consecutive_customer_messages_are_one_block",
    "bot_first_then_hand_off",
    "transfer_between_agents",
    "reopen_counts_and_closes",
    "business_hours_follow_the_holiday_calendar",
    "business_clock_runs_over_closed_days",
    "agent_with_accounts_on_two_platforms",
    "rating_scales_map_to_csat",
    "frt_from_hand_off_and_art_over_blocks",
    "business_seconds_outside_hours_over_a_night_and_a_holiday",
    "no_human_reply_abandoned_unattended_and_not_yet_due",
    "vip_stricter_target",
    "reopen_first_and_final_resolution",
}


def declared_unit_tests() -> set[str]:
    """Every unit test name in the project's model YAML."""
    names = set()
    for path in (DBT_DIR / "models").rglob("*.yml"):
        doc = yaml.safe_load(path.read_text()) or {}
        names |= {t["name"] for t in doc.get("unit_tests") or []}
    return names


def _tail(proc) -> str:
    return (proc.stdout[-4000:] + proc.stderr[-2000:]).strip()


@pytest.fixture(scope="module")
def unit_results(tmp_path_factory) -> dict[str, dict]:
    """Run every unit test once; results by unit test name."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CSW_DATA_DIR", str(tmp_path_factory.mktemp("dbt_unit")))
    mp.delenv("CSW_WAREHOUSE", raising=False)
    mp.setenv("DBT_USE_COLORS", "false")  # readable diffs in the failure messages
    try:
        warehouse_path().parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(warehouse_path())) as con:
            con.execute(DDL)
            for table in all_streams():
                con.execute(f"create table raw.{table} ({RAW_COLUMNS})")
        built = run_dbt(
            ["build", "--empty", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"],
            as_of=CLI_AS_OF,
        )
        assert built.returncode == 0, "dbt build --empty failed:\n" + _tail(built)
        ran = run_dbt(["test", "--select", "test_type:unit"], as_of=CLI_AS_OF)
        results = json.loads((dbt_target_dir() / "run_results.json").read_text())["results"]
    finally:
        mp.undo()
    out = {r["unique_id"].rsplit(".", 1)[-1]: r for r in results if r["unique_id"].startswith("unit_test.")}
    assert out or ran.returncode == 0, "dbt test ran no unit test:\n" + _tail(ran)
    return out


def test_every_declared_unit_test_ran(unit_results):
    declared = declared_unit_tests()
    assert declared >= EDGE_CASES, (
        f"edge-case unit tests missing from the YAML: {sorted(EDGE_CASES - declared)}"
    )
    assert set(unit_results) == declared, (
        f"declared but not run: {sorted(declared - set(unit_results))}; "
        f"run but not declared: {sorted(set(unit_results) - declared)}"
    )


def test_every_unit_test_passed(unit_results):
    failed = {name: r for name, r in unit_results.items() if r["status"] != "pass"}
    if failed:  # dbt's own diff (actual -> expected per cell), not a dict repr
        report = "\n\n".join(
            f"{name} ({r['status']}):\n{(r.get('message') or '').strip()}"
            for name, r in sorted(failed.items())
        )
        pytest.fail(
            f"{len(failed)} of {len(unit_results)} dbt unit tests did not pass:\n\n{report}", pytrace=False
        )
