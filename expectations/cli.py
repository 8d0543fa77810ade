"""`csw quality`: run the data-quality gates on demand; build the GX project from the specs."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

console = Console(stderr=True)
quality_app = typer.Typer(
    help="Data-quality gates (Great Expectations): landed batches and marts; Data Docs.",
)


@quality_app.callback(invoke_without_command=True)
def quality(
    ctx: typer.Context,
    as_of: str = typer.Option(
        None,
        help="Check as of this time (naive = Asia/Shanghai). Default: each batch's window end, "
        "and the marts' own as_of.",
    ),
    batches: bool = typer.Option(True, "--batches/--no-batches", help="Run the batch gate."),
    marts: bool = typer.Option(True, "--marts/--no-marts", help="Run the mart gate."),
    all_batches: bool = typer.Option(
        False, "--all-batches", help="Check every batch still in landing, not only those not loaded yet."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Run both gates now and print a summary; exit 1 when a gate fails.

    The batch gate here only reports (nothing is quarantined or loaded: `csw ingest` does
    that); the mart gate reads the warehouse read-only. Data Docs are rebuilt under
    <data>/quality/data_docs/index.html."""
    if ctx.invoked_subcommand is not None:
        return
    from connectors.cli import parse_time
    from expectations.context import QualityError

    when = parse_time(as_of)
    results = {}
    try:
        if batches:
            from expectations.batch_gate import check_landed

            with console.status("batch gate ..."):
                results["batches"] = check_landed(when, all_batches=all_batches)
        if marts:
            from expectations.mart_gate import run_mart_gate

            with console.status("mart gate ..."):
                results["marts"] = run_mart_gate(when)
    except QualityError as exc:
        console.print(f"[red]quality gates could not run:[/] {exc}")
        raise typer.Exit(2) from exc
    ok = all(r.success for r in results.values())
    if as_json:
        print(json.dumps({k: r.as_dict() for k, r in results.items()} | {"success": ok}))
    else:
        for r in results.values():
            console.print(r.summary, highlight=False, markup=False, soft_wrap=True)
        console.print("[green]quality gates passed[/]" if ok else "[red]quality gates FAILED[/]")
    if not ok:
        raise typer.Exit(1)


@quality_app.command("build-suites")
def build_suites(
    check: bool = typer.Option(False, "--check", help="Only compare; exit 1 when expectations/gx differs."),
) -> None:
    """Write expectations/gx (suites, validation definitions, checkpoints) from the specs."""
    from expectations.build import build, differences

    if check:
        diff = differences()
        if diff:
            console.print("expectations/gx differs from the specs (run `csw quality build-suites`):")
            for d in diff:
                console.print(f"  {d}", markup=False)
            raise typer.Exit(1)
        console.print("expectations/gx is in sync with the specs")
        return
    console.print(f"wrote {build()}")


@quality_app.command("docs")
def docs() -> None:
    """Print where the Data Docs are (open index.html in a browser)."""
    from expectations.context import docs_index

    path = docs_index()
    print(path)
    if not path.exists():
        console.print("no Data Docs yet: they are built by `csw ingest`, `csw quality` and the DAG's gates")
        sys.exit(1)
