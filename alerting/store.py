"""The alert store: a small SQLite file of alerting's own (`<data>/alerting/alerts.sqlite`,
`CSW_ALERT_STORE` overrides), attached as schema `alerting`. Alerting never writes the
warehouse, and the real-time rules never wait for the warehouse writer.

Tables:
- `alerting.incidents`: one row per alert key (rule + subject): open / resolved, when it
  opened, was last seen, last notified, resolved;
- `alerting.alert_events`: every evaluation outcome that matters: fired, repeated,
  suppressed (cool-down), resolved, info notes (e.g. "taobao is D+1, not real time");
- `alerting.deliveries`: every delivery attempt of every notifier, ok or with its error;
- `alerting.vip_customers`: salted customer keys of VIP customers per channel, refreshed
  from the marts by the interval run, read by the real-time VIP rule;
- `alerting.state`: small key/value state (e.g. the last evaluation times).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from csw.settings import data_dir

DDL = """
create table if not exists alerting.incidents (
    key text primary key, rule text, severity text, status text, subject text, message text,
    opened_at text, last_seen_at text, last_notified_at text, resolved_at text, fire_count integer
);
create table if not exists alerting.alert_events (
    event_id text primary key, at text, rule text, key text, severity text, kind text,
    channel text, message text, hint text, details text, notified integer
);
create table if not exists alerting.deliveries (
    delivery_id text primary key, at text, event_id text, notifier text, attempt integer,
    ok integer, error text
);
create table if not exists alerting.vip_customers (
    channel text, customer_key text, refreshed_at text, primary key (channel, customer_key)
);
create table if not exists alerting.state (name text primary key, value text);
"""


def store_path() -> Path:
    return Path(os.environ.get("CSW_ALERT_STORE") or data_dir() / "alerting" / "alerts.sqlite").resolve()


def _iso(t: dt.datetime | Any) -> str:
    if hasattr(t, "to_pydatetime"):
        t = t.to_pydatetime()
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat()


class AlertStore:
    """Thread-safe wrapper of one SQLite connection (the file is attached as `alerting`)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path or store_path())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(":memory:", check_same_thread=False, timeout=30)
        self.con.row_factory = sqlite3.Row
        self.con.execute("attach database ? as alerting", [str(self.path)])
        self.con.executescript(DDL)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- generic ------------------------------------------------------------------------
    def query(self, sql: str, params: list | tuple = ()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.con.execute(sql, params).fetchall()]

    def execute(self, sql: str, params: list | tuple = ()) -> None:
        with self.lock, self.con:
            self.con.execute(sql, params)

    # -- incidents ----------------------------------------------------------------------
    def incident(self, key: str) -> dict | None:
        rows = self.query("select * from alerting.incidents where key = ?", [key])
        return rows[0] if rows else None

    def open_incidents(self, rules: list[str] | None = None) -> list[dict]:
        rows = self.query("select * from alerting.incidents where status = 'open' order by opened_at")
        return [r for r in rows if rules is None or r["rule"] in rules]

    def upsert_incident(self, row: dict) -> None:
        cols = list(row)
        self.execute(
            f"insert or replace into alerting.incidents ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
            [row[c] for c in cols],
        )

    # -- events and deliveries ----------------------------------------------------------
    def record_event(
        self,
        at,
        rule: str,
        key: str,
        severity: str,
        kind: str,
        message: str,
        *,
        channel: str | None = None,
        hint: str | None = None,
        details: dict | None = None,
        notified: bool = False,
    ) -> str:
        event_id = uuid.uuid4().hex
        self.execute(
            "insert into alerting.alert_events values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                event_id,
                _iso(at),
                rule,
                key,
                severity,
                kind,
                channel,
                message,
                hint,
                json.dumps(details or {}, ensure_ascii=False, default=str),
                int(notified),
            ],
        )
        return event_id

    def record_delivery(
        self, event_id: str, notifier: str, attempt: int, ok: bool, error: str | None
    ) -> None:
        self.execute(
            "insert into alerting.deliveries values (?, ?, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, _iso(dt.datetime.now(dt.UTC)), event_id, notifier, attempt, int(ok), error],
        )

    def events(self, since=None, rule: str | None = None) -> list[dict]:
        sql, params = "select * from alerting.alert_events where 1 = 1", []
        if since is not None:
            sql += " and at >= ?"
            params.append(_iso(since))
        if rule:
            sql += " and rule = ?"
            params.append(rule)
        return self.query(sql + " order by at, rowid", params)

    # -- VIP keys and state -------------------------------------------------------------
    def replace_vips(self, rows: list[tuple[str, str]], at) -> None:
        with self.lock, self.con:
            self.con.execute("delete from alerting.vip_customers")
            self.con.executemany(
                "insert or ignore into alerting.vip_customers values (?, ?, ?)",
                [(c, k, _iso(at)) for c, k in rows],
            )

    def vip_keys(self) -> set[tuple[str, str]]:
        return {(r["channel"], r["customer_key"]) for r in self.query("select * from alerting.vip_customers")}

    def get_state(self, name: str) -> str | None:
        rows = self.query("select value from alerting.state where name = ?", [name])
        return rows[0]["value"] if rows else None

    def set_state(self, name: str, value: str) -> None:
        self.execute("insert or replace into alerting.state values (?, ?)", [name, value])
