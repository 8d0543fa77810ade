"""What `csw alerts run`, the DAGs and the failure callbacks call.

- `run_realtime(now)`: the minute rules (no warehouse access);
- `run_interval(as_of)`: mart rules and pipeline monitors (read-only warehouse), and the
  VIP keys copied into the alert store for the minute rules;
- `dag_failure_callback` / `dag_success_callback`: Airflow DAG callbacks (a failed run is
  an incident; the next successful run of that DAG resolves it).

Each returns a JSON-able summary; none raises because a notifier failed.
"""

from __future__ import annotations

import logging

import pandas as pd

from alerting.engine import Alert, process, record_note
from alerting.notifiers import build_notifiers
from alerting.rules import Rules, load_rules
from alerting.store import AlertStore

log = logging.getLogger("alerting.jobs")

REALTIME_RULES = ["queue_length", "unanswered_session", "vip_waiting"]


def _utc(value) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _summary(alerts: list[Alert], counts: dict, now, notes: dict) -> dict:
    return {
        "as_of": _utc(now).isoformat(),
        "alerts": [
            {
                "rule": a.rule,
                "key": a.key,
                "severity": a.severity,
                "title": a.title,
                "message": a.message,
                "hint": a.hint,
            }
            for a in alerts
        ],
        "outcome": counts,
        "notes": notes,
    }


def run_realtime(
    now=None, rules: Rules | None = None, store: AlertStore | None = None, platforms=None
) -> dict:
    from alerting.realtime import evaluate_realtime, sandbox_now

    rules = rules or load_rules()
    if now is None:
        now = sandbox_now() or pd.Timestamp.now(tz="UTC")
    own = store is None
    store = store or AlertStore()
    try:
        result = evaluate_realtime(rules, now, platforms=platforms, vip_keys=store.vip_keys())
        for platform, note in result.notes.items():
            record_note(
                store, now, "realtime_coverage", f"realtime_coverage:{platform}", f"{platform}: {note}"
            )
        counts = process(
            store,
            result.alerts,
            REALTIME_RULES,
            now,
            build_notifiers(rules.notifiers),
            cooldown_s=rules.defaults["cooldown_s"],
            repeat_after_s=rules.defaults["repeat_after_s"],
        )
        out = _summary(result.alerts, counts, now, result.notes)
        out["live"] = result.live
        out["waiting"] = len(result.waiting)
        return out
    finally:
        if own:
            store.close()


def run_interval(as_of, rules: Rules | None = None, store: AlertStore | None = None, warehouse=None) -> dict:
    from alerting.interval import INTERVAL_RULES, evaluate_interval

    rules = rules or load_rules()
    as_of = _utc(as_of)
    own = store is None
    store = store or AlertStore()
    try:
        result = evaluate_interval(rules, as_of, warehouse)
        store.replace_vips(result.vips, as_of)
        counts = process(
            store,
            result.alerts,
            INTERVAL_RULES,
            as_of,
            build_notifiers(rules.notifiers),
            cooldown_s=rules.defaults["cooldown_s"],
            repeat_after_s=rules.defaults["repeat_after_s"],
        )
        out = _summary(result.alerts, counts, as_of, result.notes)
        out["vip_keys"] = len(result.vips)
        return out
    finally:
        if own:
            store.close()


def _dag_event(context, failed: bool) -> dict:
    rules = load_rules()
    if not rules.pipeline["dag_failures"]["enabled"]:
        return {}
    dag_run = context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "unknown")
    run_id = getattr(dag_run, "run_id", "")
    ti = context.get("task_instance") or context.get("ti")
    task = getattr(ti, "task_id", None)
    reason = str(context.get("reason") or context.get("exception") or "")[:300]
    alerts = []
    if failed:
        alerts.append(
            Alert(
                rule="dag_failure",
                key=f"dag_failure:{dag_id}",
                severity=rules.pipeline["dag_failures"]["severity"],
                title=f"DAG {dag_id} failed",
                message=f"Airflow run {run_id} of {dag_id} failed"
                + (f" at task {task}" if task else "")
                + (f": {reason}" if reason else "")
                + ". Check the task log, fix, then clear the run.",
                details={"dag_id": dag_id, "run_id": run_id, "task": task},
            )
        )
    # the time Airflow recorded for the run's end: the event's time, not the callback's
    ended = getattr(dag_run, "end_date", None)
    when = pd.Timestamp(ended).tz_convert("UTC") if ended is not None else pd.Timestamp.now(tz="UTC")
    with AlertStore() as store:
        # only this DAG's incident is in scope: a success resolves it, a failure opens it
        open_keys = [i for i in store.open_incidents(["dag_failure"]) if i["key"] == f"dag_failure:{dag_id}"]
        if not failed and not open_keys:
            return {}
        counts = process(
            store,
            alerts,
            [],
            when,
            build_notifiers(rules.notifiers),
            cooldown_s=0,
            repeat_after_s=rules.defaults["repeat_after_s"],
        )
        if not failed:
            # resolve exactly this DAG's incident
            from alerting.engine import notify, render_resolved

            now = pd.Timestamp.now(tz="UTC")
            for inc in open_keys:
                event_id = store.record_event(
                    now, "dag_failure", inc["key"], inc["severity"], "resolved", inc["message"], notified=True
                )
                notify(store, build_notifiers(rules.notifiers), event_id, render_resolved(inc, now))
                store.upsert_incident({**inc, "status": "resolved", "resolved_at": now.isoformat()})
                counts["resolved"] += 1
        return counts


def dag_failure_callback(context) -> None:
    """`on_failure_callback` for any DAG: records and notifies; never raises."""
    try:
        _dag_event(context, failed=True)
    except Exception:  # a callback must never fail the scheduler's bookkeeping
        log.exception("alerting: could not record the DAG failure")


def dag_success_callback(context) -> None:
    """`on_success_callback`: resolves this DAG's open failure incident, if any."""
    try:
        _dag_event(context, failed=False)
    except Exception:
        log.exception("alerting: could not record the DAG success")
