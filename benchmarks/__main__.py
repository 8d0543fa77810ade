"""Run every benchmark section in its own process and print the figures.

make bench                       # all sections
python -m benchmarks simulation  # one section
"""

from __future__ import annotations

import json
import subprocess
import sys

from rich.console import Console
from rich.table import Table

SECTIONS = {
    "simulation": "benchmarks.bench_simulation",
    "erlang": "benchmarks.bench_erlang",
    "serving": "benchmarks.bench_serving",
    "ingest_incremental": "benchmarks.bench_ingest_incremental",
    "forecast": "benchmarks.bench_forecast",
    "quality": "benchmarks.bench_quality",
    "dbt": "benchmarks.bench_dbt",
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SECTIONS)
    console = Console()
    table = Table(title="make bench")
    table.add_column("section")
    table.add_column("figures")
    table.add_column("target met", justify="center")
    failed = False
    for name in chosen:
        module = SECTIONS[name]
        console.print(f"[bold]running {name}[/] ...")
        proc = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            failed = True
            table.add_row(name, f"[red]failed[/]: {proc.stderr.strip()[-400:]}", "-")
            continue
        figures = json.loads(lines[-1])
        ok = figures.pop("ok", None)
        table.add_row(
            name,
            "\n".join(f"{k}: {v}" for k, v in figures.items()),
            {True: "yes", False: "[red]no[/]"}.get(ok, "-"),
        )
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
