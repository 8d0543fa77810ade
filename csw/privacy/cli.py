"""`csw privacy forget | retain | scan` (docs/privacy.md)."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

privacy_app = typer.Typer(
    help="Deletion requests (PIPL), retention and the raw-identifier scan.", no_args_is_help=True
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _table(title: str, rows: dict[str, int], header: str):
    from rich.table import Table

    table = Table(title=title)
    table.add_column(header)
    table.add_column("count", justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    return table


@privacy_app.command("forget")
def forget_command(
    customer: str = typer.Option(
        None, help="The person by one platform id: <platform>:<id>, e.g. wecom:wmXXXX."
    ),
    crm_id: str = typer.Option(None, "--crm-id", help="The person by their CRM customer id."),
    as_of: str = typer.Option(
        None, help="Rebuild the marts as of this time (default: the marts' own as_of)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Remove a person from landing, raw, quarantine, alerts and everything derived; rebuild."""
    from connectors.cli import parse_time
    from csw.privacy.forget import forget
    from csw.privacy.identity import PrivacyError, PrivacyUsageError

    console = _console()
    try:
        with console.status("forgetting the person and rebuilding the marts ..."):
            result = forget(customer=customer, crm_id=crm_id, as_of=parse_time(as_of))
    except PrivacyError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2 if isinstance(exc, PrivacyUsageError) else 1) from exc
    if as_json:
        print(json.dumps(asdict(result)))
        return
    console.print(_table(f"Removed (person {result.person[:16]}…)", result.removed, "store"))
    console.print(
        f"{result.identifiers} identifier(s), {result.conversations} conversation(s); marts rebuilt as of "
        f"{result.rebuilt_as_of or '- (no marts)'}; serving snapshot republished: "
        f"{'yes' if result.published else 'no'}; in {result.seconds} s"
    )


@privacy_app.command("retain")
def retain_command(
    as_of: str = typer.Option(..., help="Apply retention as of this time (ISO 8601; naive = Asia/Shanghai)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go, delete nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Delete landed batches and raw rows older than the per-stream retention (csw/privacy/retention.yaml)."""
    from connectors.cli import parse_time
    from csw.privacy.identity import PrivacyError
    from csw.privacy.retention import apply_retention

    console = _console()
    try:
        result = apply_retention(parse_time(as_of), dry_run=dry_run)
    except PrivacyError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(asdict(result)))
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(_table(f"Raw rows {verb} (as of {result.as_of})", result.raw_rows, "table"))
    console.print(_table(f"Landed batches {verb}", result.landing_batches, "stream"))
    console.print(f"{result.kept_unloaded} old batch(es) kept because not loaded yet; {result.seconds} s")


@privacy_app.command("scan")
def scan_command(
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Look for raw customer identifiers in marts, snapshot, reports, alerts, Data Docs and logs.

    Exit code 1 when any is found (each finding masked), 0 when clean."""
    from rich.table import Table

    from csw.privacy.scan import scan

    result = scan()
    if as_json:
        print(json.dumps({**asdict(result), "clean": result.clean}))
    else:
        console = _console()
        if result.findings:
            table = Table(title="Raw customer identifiers found")
            for column in ("store", "file / table", "column / line", "sample (masked)", "identifiers"):
                table.add_column(column)
            for f in result.findings:
                table.add_row(f.store, f.location, f.column, f.sample, str(f.identifiers))
            console.print(table)
        scanned = ", ".join(f"{store} {n}" for store, n in result.scanned.items())
        verdict = "[red]FOUND[/]" if result.findings else "[green]clean[/]"
        console.print(
            f"{verdict}: {result.identifiers:,} raw identifiers looked for in {scanned} in {result.seconds} s"
        )
    if result.findings:
        raise typer.Exit(1)
