"""Reference seeds derived from the sandbox company.

    python -m sandbox.seeds                 # the demo company (SimConfig(), seed 7)
    python -m sandbox.seeds --seed 11 --days 7 --conversations-per-day 400 --out /tmp/seeds

Writes `agent_accounts.csv`: one row per agent account on a platform (channel,
agent_account) with the person behind it (agent_id, agent_name) and their team. One
person often serves two back offices (e.g. Taobao and JD), so dim_agents and
mart_agent_performance count people, not accounts. A real company edits this file
(or exports it from its HR / workforce system) instead of generating it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from csw.settings import seeds_dir
from sandbox.config import SimConfig
from sandbox.simulation import SimData, simulate

AGENT_ACCOUNTS_COLUMNS = ["channel", "agent_account", "agent_id", "agent_name", "team"]


def agent_accounts(data: SimData) -> pd.DataFrame:
    """The agent-account mapping of a simulated company, in the seed's shape."""
    acc = data["agent_accounts"].merge(data["agents"], on="agent_id", how="inner", validate="many_to_one")
    out = pd.DataFrame(
        {
            "channel": acc["channel"].astype(str),
            "agent_account": acc["account_id"].astype(str),
            "agent_id": "A" + acc["agent_id"].astype(int).map("{:04d}".format),
            "agent_name": acc["name"].astype(str),
            "team": acc["team"].astype(str),
        }
    )
    return out.sort_values(["agent_id", "channel"], kind="stable").reset_index(drop=True)[
        AGENT_ACCOUNTS_COLUMNS
    ]


def write_seeds(cfg: SimConfig, out_dir: Path) -> list[Path]:
    data = simulate(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "agent_accounts.csv"
    agent_accounts(data).to_csv(path, index=False, lineterminator="\n")
    return [path]


def main(argv: list[str] | None = None) -> int:
    default = SimConfig()
    parser = argparse.ArgumentParser(prog="python -m sandbox.seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=default.start)
    parser.add_argument("--days", type=int, default=default.days)
    parser.add_argument("--conversations-per-day", type=float, default=default.conversations_per_day)
    parser.add_argument("--out", type=Path, default=seeds_dir(), help="directory (default: the dbt seeds)")
    args = parser.parse_args(argv)
    cfg = default.with_(
        seed=args.seed, start=args.start, days=args.days, conversations_per_day=args.conversations_per_day
    )
    for path in write_seeds(cfg, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
