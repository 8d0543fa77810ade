"""The main job on the embedded default. Grows with the pipeline: today it simulates the
sandbox company and summarises what it holds."""

from __future__ import annotations

from rich.console import Console

from sandbox.cli import default_dataset_dir, summary_table
from sandbox.config import SimConfig
from sandbox.simulation import simulate

console = Console()


def run_demo() -> None:
    cfg = SimConfig()
    console.rule("1. Simulate the sandbox company (5 weeks, 9 platforms)")
    with console.status("simulating ..."):
        data = simulate(cfg)
        out = data.write(default_dataset_dir())
    console.print(summary_table(data))
    console.print(f"Sandbox data set written to {out}")
