"""`csw transform`: build the dbt project (one `dbt build` process) against as_of.

dbt runs as one child process, the single writer of the DuckDB file while it runs (DuckDB
allows one writing process); when it exits, the file is free again for readers and the
next writer. Results come from dbt's `run_results.json` under `<data>/dbt/target`
(one target directory per data dir, so concurrent builds never mix their artefacts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import typer

from csw.settings import PROJECT_ROOT, dbt_log_dir, dbt_target_dir, warehouse_path

DBT_DIR = PROJECT_ROOT / "dbt_project"


class TransformError(Exception):
    """dbt build failed; the message lists the failing nodes."""


@dataclass
class TransformResult:
    as_of: str
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _as_utc_iso(as_of) -> str:
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def dbt_env() -> dict[str, str]:
    """The environment dbt runs with; this process's own environment is left unchanged
    (a leaked CSW_WAREHOUSE would redirect every later warehouse write)."""
    return {
        **os.environ,
        "CSW_WAREHOUSE": str(warehouse_path()),
        "DBT_PROFILES_DIR": str(DBT_DIR),
        "DBT_TARGET_PATH": str(dbt_target_dir()),
        "DBT_LOG_PATH": str(dbt_log_dir()),
    }


def run_dbt(args: list[str], as_of=None, extra_vars: dict | None = None) -> subprocess.CompletedProcess:
    """Run one dbt command in a child process in the project directory."""
    env = dbt_env()
    vars_ = dict(extra_vars or {})
    if as_of is not None:
        vars_["as_of"] = _as_utc_iso(as_of)
    cli = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *args]
    cli += ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    if vars_:
        cli += ["--vars", json.dumps(vars_)]
    warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(cli, cwd=DBT_DIR, capture_output=True, text=True, env=env)


def transform(as_of, select: str | None = None, full_refresh: bool = False) -> TransformResult:
    """`dbt build` everything (or `select`) as of `as_of`. Raises TransformError on failure."""
    started = time.monotonic()
    # dbt unit tests check model logic on fixed rows: they run in development and CI
    # (tests/test_dbt_unit.py), not in every pipeline build, as dbt recommends; their
    # inputs never change between runs, so here they would only cost time.
    args = ["build", "--exclude-resource-type", "unit_test"]
    args += (["--select", select] if select else []) + (["--full-refresh"] if full_refresh else [])
    proc = run_dbt(args, as_of=as_of)
    counts: dict[str, int] = {}
    failures = []
    results_file = dbt_target_dir() / "run_results.json"
    if (
        results_file.exists()
        and results_file.stat().st_mtime >= time.time() - (time.monotonic() - started) - 1
    ):
        for r in json.loads(results_file.read_text()).get("results", []):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
            if r["status"] in ("error", "fail"):
                failures.append(f"{r['unique_id']}: {(r.get('message') or '').strip()[:300]}")
    out = TransformResult(_as_utc_iso(as_of), round(time.monotonic() - started, 1), counts, failures)
    if proc.returncode != 0:
        detail = "\n".join(failures) or proc.stdout[-3000:] + proc.stderr[-2000:]
        raise TransformError(
            f"dbt build failed as of {out.as_of}:\n{detail}\nFix the model or data, then re-run `csw transform`."
        )
    return out


def generate_docs() -> Path:
    """`dbt docs generate --static`: one self-contained HTML file (lineage, column docs,
    tests, the warehouse's catalog). Needs the warehouse free of writers while it reads."""
    proc = run_dbt(["docs", "generate", "--static"], as_of=pd.Timestamp.now(tz="UTC"))
    site = dbt_target_dir() / "static_index.html"
    if proc.returncode != 0 or not site.exists():
        raise TransformError(
            "dbt docs generate failed:\n"
            + (proc.stdout[-2000:] + proc.stderr[-1000:]).strip()
            + "\nIf the warehouse is locked, wait for the running `csw transform` (or cs_transform) to end."
        )
    return site


def docs_command(
    serve: bool = typer.Option(False, "--serve", help="Also serve the docs site on http://localhost:PORT."),
    port: int = typer.Option(8080, help="Port for --serve."),
) -> None:
    """Generate dbt's documentation (models, columns, tests, lineage) for the warehouse."""
    try:
        site = generate_docs()
    except TransformError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"dbt docs: {site} (open it in a browser)")
    if serve:
        typer.echo(f"serving on http://localhost:{port} (Ctrl-C stops)")
        cli = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", "docs", "serve"]
        cli += [
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--port",
            str(port),
            "--no-browser",
        ]
        subprocess.run(cli, cwd=DBT_DIR, env=dbt_env())
