"""`csw ingest` and `csw quarantine`: extract, land and load from the command line."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.core.config import ConfigError, load_config, sandbox_overrides
from connectors.core.http import ConnectorError, install_redaction
from connectors.core.loader import Loader
from connectors.core.runner import extract
from connectors.platforms import all_streams, available, connector_class
from csw.settings import warehouse_path

console = Console(stderr=True)
ingest_app = typer.Typer(help="Extract from the platforms, land batches, load DuckDB raw.")
quarantine_app = typer.Typer(help="List and release quarantined batches and records.", no_args_is_help=True)


def parse_time(value: str | None) -> pd.Timestamp | None:
    """ISO time; without a zone it is Asia/Shanghai (the platforms' local time)."""
    if not value:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a time like '2026-11-20 15:00' or 2026-11-20T07:00Z"
        ) from exc
    return ts.tz_localize("Asia/Shanghai").tz_convert("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr)
    install_redaction()


def run_ingest(
    platforms: list[str] | None,
    stream: str | None,
    since: pd.Timestamp | None,
    until: pd.Timestamp,
    sandbox_url: str | None,
    max_pages: int | None = None,
    load: bool = True,
    show_progress: bool = True,
    quality_gate: bool = True,
) -> dict:
    """Extract the chosen streams, then load everything pending through the batch quality
    gate (`expectations.batch_gate`; as_of = `until`). Returns a summary."""
    overrides = sandbox_overrides(sandbox_url) if sandbox_url else None
    config = load_config(overrides=overrides)
    chosen = platforms or [p for p in available() if p in config]
    extracted, failures = [], []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=True,
    ) as progress:
        for platform in chosen:
            if platform not in config:
                failures.append(
                    {"platform": platform, "stream": "*", "error": f"no configuration for {platform}"}
                )
                continue
            try:
                connector = connector_class(platform)(config[platform])
            except (ConfigError, KeyError) as exc:
                failures.append({"platform": platform, "stream": "*", "error": str(exc)})
                continue
            for name, st in connector.streams.items():
                if stream and name != stream:
                    continue
                task = progress.add_task(f"{platform}.{name}", total=None)
                try:
                    res = extract(
                        connector,
                        st,
                        until=until,
                        since=since,
                        max_pages=max_pages,
                        on_page=lambda n, t=task: progress.advance(t, n),
                    )
                    extracted.append(res)
                except ConnectorError as exc:
                    failures.append({"platform": platform, "stream": name, "error": str(exc)})
                progress.update(task, total=progress.tasks[task].completed)
        load_result = quality = None
        if load:
            gate = _batch_gate(until) if quality_gate else None
            with Loader(warehouse_path(), all_streams(), validator=gate) as loader:
                pending = loader.pending()  # the gate validates them up front (`prepare`)
                task = progress.add_task("loading batches", total=len(pending))
                load_result = loader.load_pending(progress=lambda _m: progress.advance(task))
            quality = gate.finish().as_dict() if gate is not None else None
    return {
        "until": until.isoformat(),
        "extracted": [asdict(r) for r in extracted],
        "loaded": asdict(load_result) if load_result else None,
        "failures": failures,
        "warehouse": str(warehouse_path()),
        "quality": quality,
    }


def _batch_gate(until=None):
    """The default validator: the GX batch gate (imported here: GX takes seconds to import)."""
    from expectations.batch_gate import BatchGate

    return BatchGate(as_of=until)


def _summary_table(summary: dict) -> Table:
    table = Table(title=f"Ingest up to {summary['until']}")
    for col in ("stream", "landed rows", "batches", "source", "loaded", "duplicates", "quarantined"):
        table.add_column(col, justify="left" if col in ("stream", "source") else "right")
    loaded = (summary.get("loaded") or {}).get("per_stream", {})
    for r in summary["extracted"]:
        key = f"{r['platform']}.{r['stream']}"
        ld = loaded.get(key, {})
        table.add_row(
            key,
            f"{r['rows']:,}",
            str(r["batches"]),
            r["source"] if r["source"] == "api" else f"[yellow]{r['source']}[/]",
            f"{ld.get('rows', 0):,}",
            f"{ld.get('duplicates', 0):,}",
            f"[red]{ld.get('quarantined', 0)}[/]" if ld.get("quarantined") else "0",
        )
    for f in summary["failures"]:
        table.add_row(f"{f['platform']}.{f['stream']}", "[red]failed[/]", "", "", "", "", "")
    return table


@ingest_app.callback(invoke_without_command=True)
def ingest(
    platform: list[str] = typer.Option(
        None, "--platform", "-p", help="Platform(s) to ingest (default: all configured)."
    ),
    stream: str = typer.Option(None, help="Only this stream (e.g. messages)."),
    since: str = typer.Option(
        None, help="Re-read from this time (backfill); default: resume from the last batch."
    ),
    until: str = typer.Option(None, help="Up to this time (default: now). Naive times are Asia/Shanghai."),
    sandbox: str = typer.Option(
        None, envvar="CSW_SANDBOX_URL", help="Base URL of the sandbox platforms (sets every account to it)."
    ),
    max_pages: int = typer.Option(None, help="Stop each stream after this many pages (resume next run)."),
    no_load: bool = typer.Option(False, "--no-load", help="Only extract and land; do not load DuckDB."),
    no_quality_gate: bool = typer.Option(
        False, "--no-quality-gate", help="Load without the GX batch gate (batches are not validated)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each retry and fallback."),
) -> None:
    """Extract every configured platform's streams, land batches and load DuckDB raw."""
    _setup_logging(verbose)
    try:
        summary = run_ingest(
            platform,
            stream,
            parse_time(since),
            parse_time(until) or pd.Timestamp.now(tz="UTC"),
            sandbox,
            max_pages,
            load=not no_load,
            show_progress=not as_json and sys.stderr.isatty(),
            quality_gate=not no_quality_gate,
        )
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        console.print(_summary_table(summary))
        for f in summary["failures"]:
            console.print(f"[red]{f['platform']}.{f['stream']} failed:[/] {f['error']}")
        if summary["loaded"]:
            ld = summary["loaded"]
            console.print(
                f"Loaded {ld['rows']:,} new rows in {ld['batches']} batches into {summary['warehouse']}"
                + (
                    f"; {ld['quarantined_rows']} records quarantined (`csw quarantine list`)"
                    if ld["quarantined_rows"]
                    else ""
                )
                + (
                    f"; {len(ld['quarantined_batches'])} batches quarantined"
                    if ld["quarantined_batches"]
                    else ""
                )
            )
        if summary["quality"] and not summary["quality"]["success"]:
            console.print(summary["quality"]["summary"])
    if summary["failures"]:
        raise typer.Exit(1)


def backfill_command(
    platform: str = typer.Option(..., "--platform", "-p", help="Platform, e.g. wecom."),
    stream: str = typer.Option("messages", help="Stream to backfill."),
    since: str = typer.Option(..., help="From this time (naive = Asia/Shanghai)."),
    until: str = typer.Option(..., help="Up to this time, e.g. the start of the API's retention."),
    sandbox: str = typer.Option(None, envvar="CSW_SANDBOX_URL", help="Base URL of the sandbox platforms."),
    load: bool = typer.Option(True, help="Load the landed batches into DuckDB afterwards."),
) -> None:
    """Land history the API no longer keeps (WeCom: 3 days) from the admin console export."""
    from connectors.scrapers import backfill

    _setup_logging(False)
    config = load_config(overrides=sandbox_overrides(sandbox) if sandbox else None)
    if platform not in config:
        console.print(f"[red]no configuration for {platform}[/]; see docs/connectors/{platform}.md")
        raise typer.Exit(2)
    try:
        result = backfill(platform, stream, parse_time(since), parse_time(until), config=config[platform])
    except ConnectorError as exc:
        console.print(f"[red]backfill failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"Landed {result.rows:,} {platform}.{stream} rows in {result.batches} batches from the console."
    )
    if load:
        gate = _batch_gate()  # each batch checked against its own window, as on ingest
        with Loader(warehouse_path(), all_streams(), validator=gate) as loader:
            loaded = loader.load_pending()
        console.print(f"Loaded {loaded.rows:,} new rows into {warehouse_path()}.")
        quality = gate.finish()
        if not quality.success:
            console.print(quality.summary)


@quarantine_app.command("list")
def quarantine_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Quarantined batches (whole) and records (with the reason), oldest first."""
    from connectors.core.quarantine import entries

    if not os.path.exists(warehouse_path()):
        console.print("No warehouse yet: nothing loaded, nothing quarantined.")
        return
    with Loader(warehouse_path(), all_streams()) as loader:
        items = entries(loader)
    if as_json:
        print(json.dumps([asdict(e) for e in items]))
        return
    table = Table(title="Quarantine")
    for col in ("grain", "batch", "stream", "rows", "reason"):
        table.add_column(col)
    for e in items:
        table.add_row(e.grain, e.batch_id, f"{e.platform}.{e.stream}", str(e.rows), e.reason)
    console.print(table if items else "Nothing is quarantined.")


@quarantine_app.command("release")
def quarantine_release(
    batch_id: str = typer.Argument(..., help="Batch id from `csw quarantine list`."),
) -> None:
    """Put a quarantined batch back in landing, or re-check a batch's quarantined records."""
    from connectors.core.quarantine import release

    gate = _batch_gate()  # a released batch is checked again, against its own window
    with Loader(warehouse_path(), all_streams(), validator=gate) as loader:
        try:
            out = release(loader, batch_id)
        except KeyError as exc:
            console.print(f"[red]{exc.args[0]}[/]")
            raise typer.Exit(1) from exc
        if out["grain"] == "batch":
            loaded = loader.load_pending()
            out["loaded_rows"] = loaded.rows
            out["quarantined_again"] = loaded.quarantined_batches
            out["quality"] = gate.finish().summary
    console.print(out)
