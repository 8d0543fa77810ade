"""`csw`: the command line of the customer-service warehouse.

Each package owns its commands (a typer app in `<package>/cli.py`); this module only
mounts them, so a new concern is one `add_typer` line here.
"""

from __future__ import annotations

import typer

from connectors.cli import ingest_app, quarantine_app
from forecasting.cli import staffing_app
from sandbox.cli import app as sandbox_app

app = typer.Typer(
    help="Customer-service warehouse: sandbox platforms, ingest, transform, forecast, publish.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(staffing_app, name="staffing")
app.add_typer(ingest_app, name="ingest")
app.add_typer(quarantine_app, name="quarantine")


@app.command()
def demo() -> None:
    """Run the main job on the embedded default (the sandbox platforms)."""
    from csw.demo import run_demo

    run_demo()


if __name__ == "__main__":
    app()
