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
    table.add_row(f"Scheduled headcount (shrinkage {shrinkage:.0%})", str(values["required_headcount"]))
    table.add_row(f"Service level (within {sl_seconds:g} s)", f"{values['service_level']:.1%}")
    table.add_row("Average speed of answer", f"{values['asa_s']:.1f} s")
    table.add_row("Occupancy", f"{values['occupancy']:.1%}")
    table.add_row("Waiting probability", f"{values['p_wait']:.1%}")
    if model == "erlang_a":
        table.add_row("Abandonment", f"{values['p_abandon']:.1%}")
    Console().print(table)


# ------------------------------------------------------------------------ csw forecast

forecast_app = typer.Typer(
    help="Volume forecasts (Prophet + baselines, backtested) and staffing recommendations.",
    invoke_without_command=True,
    pretty_exceptions_show_locals=False,
)


def _progress_bar(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]fitting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _print_backtest(console: Console, backtest, json_output: bool) -> None:
    rows = backtest[backtest["role"] == "held_out"]
    if json_output:
        return
    table = Table(title="Backtest on held-out origins (open intervals)")
    for col in ("series", "model", "origins", "MAE", "sMAPE %", "MASE", "published"):
        table.add_column(col, justify="left" if col in ("series", "model") else "right")
    for r in rows.itertuples():
        table.add_row(
            f"{r.channel}/{r.medium}",
            r.model,
            str(r.origins),
            f"{r.mae:.3f}",
            f"{r.smape:.1f}",
            f"{r.mase:.3f}",
            "yes" if r.is_published else "",
        )
    console.print(table)


@forecast_app.callback()
def forecast(
    ctx: typer.Context,
    input_path: str | None = typer.Option(
        None, "--input", help="A CSV of your own series (columns ds,y); without it the warehouse is forecast."
    ),
    output_path: str | None = typer.Option(
        None, "--output", help="Where to write ds,yhat,yhat_lower,yhat_upper (with --input; '-' = stdout)."
    ),
    freq: str = typer.Option("30min", help="Interval length of the series, e.g. 15min, 30min, 1h."),
    horizon: str = typer.Option("7d", help="How far ahead: 30min .. 72h for intraday, up to 14d."),
    backtest: bool = typer.Option(
        False,
        "--backtest",
        help="With --input: backtest and print MAE, sMAPE and MASE (the warehouse run always does).",
    ),
    calendar: str = typer.Option(
        None,
        help="Calendar seed events to use: all, holidays (no promotions) or none. "
        "Default: all for the warehouse, holidays for --input.",
    ),
    as_of: str | None = typer.Option(
        None,
        help="Forecast origin for the warehouse run (default: the end of the data). Naive = Asia/Shanghai.",
    ),
    roster: str | None = typer.Option(
        None,
        help="CSV channel,interval_start,scheduled_agents: people rostered per interval (warehouse run).",
    ),
    shrinkage: float = typer.Option(0.3, help="Share of paid time not on the floor."),
    max_occupancy: float = typer.Option(0.85, help="Highest acceptable occupancy."),
    erlang_model: str = typer.Option(
        "erlang_c", help="erlang_c (abandons count as misses) or erlang_a (uses the measured patience)."
    ),
    workers: int | None = typer.Option(None, help="Processes fitting in parallel (default: CPU count)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary instead of tables."),
) -> None:
    """Forecast contact volume and publish staffing recommendations.

    \b
    csw forecast                                   # every series in the warehouse, published
    csw forecast --input history.csv --output forecast.csv --horizon 7d --backtest
    """
    if ctx.invoked_subcommand is not None:
        return
    import pandas as pd

    from forecasting.series import HistoryError
    from forecasting.volume import ForecastConfig, ForecastConfigError

    console = Console(stderr=True)
    try:
        config = ForecastConfig(
            freq=freq, horizon=horizon, calendar=calendar or ("holidays" if input_path else "all")
        )
    except ForecastConfigError as exc:
        raise _fail(f"{exc}") from None
    try:
        if input_path:
            if not output_path:
                raise _fail("--output is required with --input (use '-' for stdout)")
            _forecast_csv(console, input_path, output_path, config, backtest, workers, json_output)
        else:
            if output_path:
                raise _fail("--output needs --input; the warehouse run publishes to the forecast schema")
            roster_frame = None
            if roster:
                try:
                    roster_frame = pd.read_csv(roster)
                except OSError as exc:
                    raise _fail(f"cannot read --roster {roster}: {exc}") from None
            _forecast_warehouse(
                console,
                config,
                as_of,
                roster_frame,
                shrinkage,
                max_occupancy,
                erlang_model,
                workers,
                json_output,
            )
    except HistoryError as exc:
        raise _fail(str(exc)) from None


def _forecast_csv(console, input_path, output_path, config, backtest, workers, json_output) -> None:
    import sys

    import pandas as pd

    from forecasting.backtest import BacktestConfig
    from forecasting.pipeline import run_forecasts
    from forecasting.series import from_csv

    history = from_csv(input_path, freq=config.freq, tz=config.tz)
    if history.empty:
        raise _fail(f"{input_path} has no rows with a y value")
    raw_ds = pd.read_csv(input_path, usecols=["ds"], nrows=1)["ds"]
    aware = pd.to_datetime(raw_ds).dt.tz is not None
    with _progress_bar(console) as bar:
        task = bar.add_task("fit", total=None)
        run = run_forecasts(
            history,
            config,
            backtest=BacktestConfig() if backtest else None,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    (result,) = run.series.values()
    f = result.forecast
    ds = f["interval_start"].dt.tz_convert(config.tz)
    out = pd.DataFrame(
        {
            "ds": ds.dt.strftime("%Y-%m-%dT%H:%M:%S%z") if aware else ds.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "yhat": f["yhat"].round(3),
            "yhat_lower": f["yhat_lower"].round(3),
            "yhat_upper": f["yhat_upper"].round(3),
        }
    )
    if output_path == "-":
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(output_path, index=False)
    summary = {
        "series": result.key.label,
        "intervals": len(out),
        "first": out["ds"].iloc[0],
        "last": out["ds"].iloc[-1],
        "model": result.chosen,
        "model_version": run.model_version,
        "note": result.note,
        "output": output_path,
    }
    if backtest:
        bt = run.backtest
        summary["backtest"] = (
            bt[bt["role"] == "held_out"][
                ["model", "origins", "intervals", "mae", "smape", "mase", "rel_mae", "is_published"]
            ]
            .round(4)
            .to_dict(orient="records")
            if len(bt)
            else []
        )
        if not len(bt):
            console.print(f"[yellow]no backtest: {result.note}[/]")
        else:
            _print_backtest(console, bt, json_output)
    if json_output:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        console.print(
            f"{summary['intervals']} intervals {summary['first']} .. {summary['last']} "
            f"(model {result.chosen}) written to {output_path}"
        )
        if result.note:
            console.print(f"[yellow]note: {result.note}[/]")


def _forecast_warehouse(
    console, config, as_of, roster, shrinkage, max_occupancy, erlang_model, workers, json_output
) -> None:
    from connectors.cli import parse_time
    from forecasting.job import forecast_warehouse
    from forecasting.staffing import StaffingConfig

    if erlang_model not in ("erlang_c", "erlang_a"):
        raise _fail(f"--erlang-model must be erlang_c or erlang_a (got {erlang_model!r})")
    staffing = StaffingConfig(shrinkage=shrinkage, max_occupancy=max_occupancy, model=erlang_model)
    origin = parse_time(as_of) if as_of else None
    try:
        with _progress_bar(console) as bar:
            task = bar.add_task("fit", total=None)
            result = forecast_warehouse(
                as_of=origin,
                config=config,
                staffing=staffing,
                roster=roster,
                workers=workers,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except StaffingInputError as exc:
        option = _OPTION.get(exc.parameter, exc.parameter)
        raise _fail(f"{option} {exc.problem}; {exc.fix}") from None
    bt = result.tables["forecast_backtest"]
    actions = result.tables["staffing_actions"]
    held = bt[(bt["role"] == "held_out") & bt["is_published"]] if len(bt) else bt
    summary = {
        "run_id": result.run_id,
        "warehouse": str(result.path),
        "origin": str(result.run.origin),
        "series": len(result.run.series),
        "published_models": {k.label: r.chosen for k, r in result.run.series.items()},
        "held_out_mase": {f"{r.channel}/{r.medium}": round(r.mase, 3) for r in held.itertuples()},
        "actions": actions["sentence"].head(10).tolist(),
        "notes": {k.label: r.note for k, r in result.run.series.items() if r.note},
    }
    if json_output:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    console.print(f"published run [bold]{result.run_id}[/] ({summary['series']} series) to {result.path}")
    if len(bt):
        _print_backtest(
            console, bt[bt["is_published"] | (bt["model"].isin(["prophet", "seasonal_naive"]))], False
        )
    for sentence in summary["actions"]:
        console.print(f"• {sentence}")
    for label, note in summary["notes"].items():
        console.print(f"[yellow]{label}: {note}[/]")
