"""Where runtime data lives. One configurable root (default ./data, git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root of all runtime data: `CSW_DATA_DIR`, default `<project>/data`."""
    return Path(os.environ.get("CSW_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def seeds_dir() -> Path:
    return PROJECT_ROOT / "dbt_project" / "seeds"


def warehouse_path() -> Path:
    """The DuckDB file the pipeline writes (`CSW_WAREHOUSE`, default <data>/warehouse/warehouse.duckdb)."""
    return Path(os.environ.get("CSW_WAREHOUSE", data_dir() / "warehouse" / "warehouse.duckdb")).resolve()


def dbt_target_dir() -> Path:
    """dbt's artefacts (manifest, run results, compiled SQL) for this data dir, so two
    warehouses (tests, a bench, the demo) never overwrite each other's results."""
    return data_dir() / "dbt" / "target"


def dbt_log_dir() -> Path:
    return data_dir() / "dbt" / "logs"
