"""`csw`: the command line of the customer-service warehouse.

Each package owns its commands (a typer app in `<package>/cli.py`); this module only
mounts them, so a new concern is one `add_typer` line here.
"""

from __future__ import annotations

import typer

from alerting.cli import alerts_app, report_app
from connectors.cli import backfill_command, ingest_app, quarantine_app
from csw.airflow_env import airflow_command
from csw.privacy.cli import privacy_app
from csw.publish import publish_command
from csw.transform import docs_command
from expectations.cli import quality_app
from forecasting.cli import forecast_app, staffing_app
from sandbox.cli import app as sandbox_app

app = typer.Typer(
    help="Customer-service warehouse: sandbox platforms, ingest, transform, forecast, publish.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(staffing_app, name="staffing")
app.add_typer(forecast_app, name="forecast")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(quality_app, name="quality")
app.add_typer(alerts_app, name="alerts")
app.add_typer(report_app, name="report")
app.add_typer(privacy_app, name="privacy")
app.command("backfill")(backfill_command)
app.command("publish")(publish_command)
app.command("airflow")(airflow_command)
app.command("docs")(docs_command)


@app.command()
def transform(
    as_of: str = typer.Option(
        None, help="Compute 'now'-dependent metrics as of this time (default: now). Naive = Asia/Shanghai."
    ),
    select: str = typer.Option(None, help="dbt selection, e.g. 'marts' or '+fct_conversations'."),
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Rebuild incremental models from scratch."
    ),
) -> None:
    """Build the dbt project (staging, intermediate, marts) and run its tests."""
    import pandas as pd
    from rich.console import Console

    from connectors.cli import parse_time
    from csw.transform import TransformError
    from csw.transform import transform as run_transform

    console = Console(stderr=True)
    when = parse_time(as_of) or pd.Timestamp.now(tz="UTC")
    try:
        with console.status(f"dbt build as of {when:%Y-%m-%d %H:%M} UTC ..."):
            result = run_transform(when, select=select, full_refresh=full_refresh)
    except TransformError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"dbt build as of {result.as_of}: {result.counts} in {result.seconds} s")


@app.command()
def demo() -> None:
    """Run the main job on the embedded default (the sandbox platforms)."""
    from csw.demo import run_demo

    run_demo()


if __name__ == "__main__":
    app()
