"""`csw alerts ...` and `csw report ...`."""

from __future__ import annotations

import json

import typer

alerts_app = typer.Typer(
    help="Alert rules: evaluate, check the rule file, list alerts.", no_args_is_help=True
)
report_app = typer.Typer(
    help="Manager reports (self-contained HTML under data/reports/).", no_args_is_help=True
)


def _time(value: str | None):
    from connectors.cli import parse_time

    return parse_time(value) if value else None


@alerts_app.command("run")
def run_command(
    as_of: str = typer.Option(
        None, help="Evaluate as of this time (default: the sandbox clock or now). Naive = Asia/Shanghai."
    ),
    realtime: bool = typer.Option(
        True, "--realtime/--no-realtime", help="The minute rules (queue, unanswered, VIP)."
    ),
    interval: bool = typer.Option(True, "--interval/--no-interval", help="Mart rules and pipeline monitors."),
    rules: str = typer.Option(None, help="Rule file (default: CSW_ALERT_RULES or alerting/rules.yaml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Evaluate the alert rules once, notify, and record everything in the alert store."""
    import pandas as pd

    from alerting.jobs import run_interval, run_realtime
    from alerting.rules import RulesError, load_rules

    try:
        cfg = load_rules(rules)
    except RulesError as exc:
        typer.echo(f"rule file error: {exc}", err=True)
        raise typer.Exit(2) from exc
    when = _time(as_of)
    out = {}
    try:
        if realtime:
            out["realtime"] = run_realtime(when, rules=cfg)
        if interval:
            out["interval"] = run_interval(when or pd.Timestamp.now(tz="UTC"), rules=cfg)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False, indent=1, default=str))
        return
    for part, summary in out.items():
        typer.echo(f"{part} as of {summary['as_of']}: {summary['outcome']}")
        for a in summary["alerts"]:
            typer.echo(
                f"  [{a['severity']}] {a['message']}" + (f"\n      hint: {a['hint']}" if a["hint"] else "")
            )
        for platform, note in summary["notes"].items():
            typer.echo(f"  note {platform}: {note}")


@alerts_app.command("check")
def check_command(rules: str = typer.Argument(None, help="Rule file to validate.")) -> None:
    """Validate a rule file; exit 2 with the offending path when it is wrong."""
    from alerting.rules import RulesError, load_rules

    try:
        cfg = load_rules(rules)
    except RulesError as exc:
        typer.echo(f"rule file error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{cfg.source}: ok ({len(cfg.notifiers)} notifier(s))")


@alerts_app.command("list")
def list_command(
    limit: int = typer.Option(50, help="How many recent events."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Recent alert events (fired, suppressed, resolved, notes) from the alert store."""
    from alerting.store import AlertStore

    with AlertStore() as store:
        rows = store.query(
            "select * from alerting.alert_events order by at desc, rowid desc limit ?", [limit]
        )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        typer.echo(f"{r['at'][:19]} {r['kind']:<10} {r['severity']:<8} {r['message']}")


def _report(kind: str, as_of: str | None, mail: bool) -> None:
    import pandas as pd

    from alerting.reports import build_report, mail_report

    try:
        report = build_report(kind, _time(as_of) or pd.Timestamp.now(tz="UTC"))
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{report.path} ({report.charts} charts)")
    if mail:
        sent = mail_report(report)
        typer.echo(f"mailed through {sent} smtp notifier(s)")
        if not sent:
            raise typer.Exit(1)


@report_app.command("daily")
def daily_command(
    as_of: str = typer.Option(None, help="Report the local day before this time (default: now)."),
    mail: bool = typer.Option(False, "--mail", help="Also mail it through the smtp notifiers."),
) -> None:
    """Render the daily manager report."""
    _report("daily", as_of, mail)


@report_app.command("weekly")
def weekly_command(
    as_of: str = typer.Option(None, help="Report the 7 days before this day (default: now)."),
    mail: bool = typer.Option(False, "--mail", help="Also mail it through the smtp notifiers."),
) -> None:
    """Render the weekly manager report."""
    _report("weekly", as_of, mail)
