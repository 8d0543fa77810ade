"""`csw staffing ...`: staffing maths from the command line."""

from __future__ import annotations

import json
import math

import typer
from rich.console import Console
from rich.table import Table

from forecasting.erlang import StaffingInputError, required_agents

staffing_app = typer.Typer(
    help="Staffing: agents needed to meet a service-level target (Erlang C / Erlang A).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# library argument -> command-line option, so error messages name what the user typed
_OPTION = {
    "volume": "--volume",
    "aht_s": "--aht-seconds",
    "sl_target": "--sl-target",
    "sl_seconds": "--sl-seconds",
    "max_occupancy": "--max-occupancy",
    "shrinkage": "--shrinkage",
    "concurrency": "--concurrency",
    "model": "--model",
    "patience_s": "--patience-seconds",
}


@staffing_app.callback()
def _staffing() -> None:
    """Staffing: agents needed to meet a service-level target (Erlang C / Erlang A)."""


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=2)


@staffing_app.command()
def erlang(
    volume: float = typer.Option(..., help="Contacts offered in the interval."),
    interval_minutes: float = typer.Option(30.0, help="Interval length in minutes."),
    aht_seconds: float = typer.Option(..., help="Average handle time in seconds."),
    sl_target: float = typer.Option(0.8, help="Service-level target as a share, e.g. 0.8."),
    sl_seconds: float = typer.Option(20.0, help="Service-level threshold T in seconds."),
    max_occupancy: float = typer.Option(0.85, help="Highest acceptable agent occupancy."),
    shrinkage: float = typer.Option(0.3, help="Share of paid time not on the floor."),
    model: str = typer.Option(
        "erlang_c", help="erlang_c (nobody hangs up) or erlang_a (needs --patience-seconds)."
    ),
    patience_seconds: float | None = typer.Option(
        None, help="Mean time callers wait before hanging up (Erlang A)."
    ),
    concurrency: float = typer.Option(
        1.0, help="Contacts an agent handles at once (chat); effective AHT = AHT / this."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Required agents, scheduled headcount and the queue measures for one interval."""
    if not (math.isfinite(interval_minutes) and interval_minutes > 0):
        raise _fail(
            f"--interval-minutes must be > 0 (got {interval_minutes:g}); "
            "pass the interval length in minutes, e.g. 30"
        )
    try:
        result = required_agents(
            volume,
            interval_minutes * 60.0,
            aht_seconds,
            sl_target,
            sl_seconds,
            max_occupancy=max_occupancy,
            shrinkage=shrinkage,
            concurrency=concurrency,
            model=model,
            patience_s=patience_seconds,
        )
    except StaffingInputError as exc:
        option = _OPTION.get(exc.parameter, exc.parameter)
        raise _fail(f"{option} {exc.problem}; {exc.fix}") from None

    values = result.to_dict()
    if json_output:
        values["inputs"] = {
            "volume": volume,
            "interval_minutes": interval_minutes,
            "aht_seconds": aht_seconds,
            "sl_target": sl_target,
            "sl_seconds": sl_seconds,
            "max_occupancy": max_occupancy,
            "shrinkage": shrinkage,
            "model": model,
            "patience_seconds": patience_seconds,
            "concurrency": concurrency,
        }
        typer.echo(json.dumps(values, indent=2))
        return

    title = f"Staffing ({'Erlang A' if model == 'erlang_a' else 'Erlang C'})"
    table = Table(title=title, show_header=True)
    table.add_column("Measure")
    table.add_column("Value", justify="right")
    table.add_row("Traffic (Erlangs)", f"{values['traffic']:.2f}")
    table.add_row("Required agents (on the floor)", str(values["required_agents"]))
    table.add_row(
        f"Scheduled headcount (shrinkage {shrinkage:.0%})", str(values["required_headcount"])
    )
    table.add_row(f"Service level (within {sl_seconds:g} s)", f"{values['service_level']:.1%}")
    table.add_row("Average speed of answer", f"{values['asa_s']:.1f} s")
    table.add_row("Occupancy", f"{values['occupancy']:.1%}")
    table.add_row("Waiting probability", f"{values['p_wait']:.1%}")
    if model == "erlang_a":
        table.add_row("Abandonment", f"{values['p_abandon']:.1%}")
    Console().print(table)
