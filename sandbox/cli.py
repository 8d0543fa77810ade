"""`csw sandbox ...`: generate the simulated company (later: serve its platforms)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from csw.settings import data_dir
from sandbox.config import CHANNELS, SimConfig

app = typer.Typer(help="The simulated platforms: a seeded contact-centre simulation.", no_args_is_help=True)
console = Console()


def default_dataset_dir() -> Path:
    return data_dir() / "sandbox" / "default"


def config_from_options(
    seed: int, start: str, days: int, per_day: float, channels: str, staffing: float
) -> SimConfig:
    chosen = tuple(c.strip() for c in channels.split(",") if c.strip()) if channels else CHANNELS
    unknown = sorted(set(chosen) - set(CHANNELS))
    if unknown:
        raise typer.BadParameter(f"unknown channel(s) {unknown}; choose from {', '.join(CHANNELS)}")
    try:
        start_day = dt.date.fromisoformat(start)
    except ValueError as exc:
        raise typer.BadParameter(f"--start {start!r} is not a date like 2026-10-18") from exc
    if days < 1 or per_day <= 0 or staffing <= 0:
        raise typer.BadParameter("--days, --per-day and --staffing must be positive")
    return SimConfig(
        seed=seed,
        start=start_day,
        days=days,
        conversations_per_day=per_day,
        channels=chosen,
        staffing_factor=staffing,
    )


def summary_table(data) -> Table:
    c = data["conversations"]
    m = data["messages"]
    table = Table(
        title=f"Sandbox {data.config['start']} .. {data.config['end']} (seed {data.config['seed']})"
    )
    for col in (
        "channel",
        "conversations",
        "messages",
        "bot resolved",
        "abandoned",
        "FRT p50 s",
        "FRT p90 s",
        "rated",
    ):
        table.add_column(col, justify="right" if col != "channel" else "left")
    per_msg = m.groupby("channel", observed=True).size()
    rated = data["ratings"].groupby("channel").size()
    for ch, g in c.groupby("channel", sort=False):
        table.add_row(
            ch,
            f"{len(g):,}",
            f"{int(per_msg.get(ch, 0)):,}",
            f"{g['bot_resolved'].mean():.0%}",
            f"{g['abandoned'].mean():.1%}",
            f"{g['frt_s'].quantile(0.5):.0f}",
            f"{g['frt_s'].quantile(0.9):.0f}",
            f"{int(rated.get(ch, 0)):,}",
        )
    return table


@app.command()
def generate(
    out: Path = typer.Option(None, help="Output directory (default: <data>/sandbox/default)."),
    seed: int = typer.Option(7, help="Random seed: same seed, same data."),
    start: str = typer.Option("2026-10-18", help="First simulated day (Asia/Shanghai)."),
    days: int = typer.Option(35, help="Number of simulated days."),
    per_day: float = typer.Option(1430.0, help="Conversations per plain weekday, all channels."),
    channels: str = typer.Option("", help="Comma-separated channels (default: all nine)."),
    staffing: float = typer.Option(1.0, help="Roster multiplier: <1 understaffs, >1 overstaffs."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate a company's customer service and write it as Parquet."""
    from sandbox.simulation import simulate

    cfg = config_from_options(seed, start, days, per_day, channels, staffing)
    out = out or default_dataset_dir()
    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("simulating", total=len(cfg.channels))

        def step(channel: str) -> None:
            progress.update(task, advance=1, description=f"simulating {channel}")

        data = simulate(cfg, progress=step)
        data.write(out)
    if as_json:
        counts = {name: len(frame) for name, frame in data.tables.items()}
        print(json.dumps({"out": str(out), "config": data.config, "rows": counts}))
        return
    console.print(summary_table(data))
    console.print(
        f"Wrote {len(data['conversations']):,} conversations, {len(data['messages']):,} messages to {out}"
    )


@app.command()
def serve(
    dataset: Path = typer.Option(
        None, help="Data set directory (default: <data>/sandbox/default; generated if missing)."
    ),
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0 picks a free one)."),
    as_of: str = typer.Option(
        "",
        help="Simulated clock start, e.g. '2026-11-20 15:00' (Asia/Shanghai). Default: end of the data set.",
    ),
    speed: float = typer.Option(0.0, help="Live mode: simulated seconds per wall second (0 = frozen clock)."),
    faults: Path = typer.Option(None, help="YAML file: {platform: {fault: value}} (see docs/sandbox)."),
) -> None:
    """Serve every simulated platform's API and admin console on 127.0.0.1."""
    import pandas as pd
    import uvicorn
    import yaml

    from sandbox.server.app import build_app, free_port
    from sandbox.server.faults import FaultBook
    from sandbox.server.state import SandboxState
    from sandbox.simulation import SimData, simulate

    dataset = dataset or default_dataset_dir()
    if (dataset / "meta.json").exists():
        data = SimData.read(dataset)
    else:
        console.print(f"No data set at {dataset}; generating the default one ...")
        data = simulate(SimConfig())
        data.write(dataset)
    clock = pd.Timestamp(as_of).tz_localize("Asia/Shanghai") if as_of else None
    book = FaultBook(yaml.safe_load(faults.read_text()) if faults else None)
    state = SandboxState(data, as_of=clock, speed=speed, faults=book)
    port = port or free_port()
    console.print(
        f"Sandbox platforms on http://127.0.0.1:{port} (clock {state.now().isoformat()}, speed {speed}). "
        f"Health: /_sandbox/health, API docs: /_sandbox/docs. Ctrl-C stops."
    )
    uvicorn.run(build_app(state), host="127.0.0.1", port=port, log_level="warning")
