"""Retention per stream: landed batch files and raw rows older than the configured days go.

The policy is `csw/privacy/retention.yaml` (`CSW_RETENTION_CONFIG` names another file):
`defaults` plus per-stream overrides, in days, `null` = keep forever. `apply_retention`
runs as of an explicit time (the `cs_retention` DAG's data interval end, or
`csw privacy retain --as-of`), so a re-run repeats exactly:

- raw rows whose `_record_time` (else `_extracted_at`) is before `as_of - raw_days` are
  deleted, in one transaction;
- a landed batch older than `as_of - landing_days` (its window end, else its landing time)
  is deleted only when it is loaded (in `raw._batches`) and is not its stream's newest
  batch (extraction resumes from the newest manifest); the manifest goes first, so a
  batch is whole or absent.

Marts are not aged: they hold aggregates and salted keys only (DESIGN §11).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from connectors.core.landing import MANIFEST_SUFFIX, landing_root, manifests
from csw.privacy.identity import PrivacyError
from csw.settings import warehouse_path

DEFAULT_CONFIG = Path(__file__).with_name("retention.yaml")
KINDS = ("landing_days", "raw_days")


@dataclass(frozen=True)
class Retention:
    landing_days: int | None
    raw_days: int | None


@dataclass
class RetentionResult:
    as_of: str
    dry_run: bool
    landing_batches: dict[str, int] = field(default_factory=dict)
    raw_rows: dict[str, int] = field(default_factory=dict)
    kept_unloaded: int = 0
    seconds: float = 0.0


def config_path() -> Path:
    return Path(os.environ.get("CSW_RETENTION_CONFIG") or DEFAULT_CONFIG)


def _days(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PrivacyError(
            f"{where}: {value!r} is not a number of days; write a whole number >= 1, or null to keep forever"
        )
    return value


def _entry(raw, where: str, base: Retention | None) -> Retention:
    if not isinstance(raw, dict) or set(raw) - set(KINDS):
        raise PrivacyError(f"{where}: expected a mapping with {' and/or '.join(KINDS)}, got {raw!r}")
    values = {k: _days(raw[k], f"{where}.{k}") if k in raw else getattr(base, k, None) for k in KINDS}
    return Retention(**values)


def load_policy(path: Path | None = None, streams: list[str] | None = None) -> dict[str, Retention]:
    """`<platform>__<stream>` -> Retention for every declared stream; clear errors on a bad file."""
    from connectors.platforms import all_streams

    path = Path(path or config_path())
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PrivacyError(f"cannot read the retention config {path}: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"defaults", "streams"}:
        raise PrivacyError(f"{path}: top-level keys are `defaults` and `streams`")
    defaults = _entry(doc.get("defaults") or {}, f"{path}: defaults", None)
    tables = streams if streams is not None else list(all_streams())
    known = {t.replace("__", ".", 1): t for t in tables}
    policy = dict.fromkeys(tables, defaults)
    for name, raw in (doc.get("streams") or {}).items():
        if name not in known:
            raise PrivacyError(
                f"{path}: unknown stream {name!r}; write <platform>.<stream>, one of: {', '.join(sorted(known))}"
            )
        policy[known[name]] = _entry(raw, f"{path}: streams.{name}", defaults)
    return policy


def _utc(value) -> dt.datetime:
    from csw.pipeline import utc

    return utc(value)


def _batch_time(manifest) -> dt.datetime:
    until = (manifest.window or {}).get("until")
    return _utc(until or manifest.created_at)


def apply_retention(
    as_of, dry_run: bool = False, policy: dict[str, Retention] | None = None
) -> RetentionResult:
    import duckdb

    started = time.monotonic()
    as_of = _utc(as_of)
    policy = policy or load_policy()
    result = RetentionResult(as_of=as_of.strftime("%Y-%m-%dT%H:%M:%SZ"), dry_run=dry_run)
    loaded: set[str] = set()
    path = warehouse_path()
    if path.exists():
        con = duckdb.connect(str(path))
        try:
            con.execute("set timezone = 'UTC'")
            tables = {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = 'raw'"
                ).fetchall()
            }
            if "_batches" in tables:
                loaded = {r[0] for r in con.execute("select batch_id from raw._batches").fetchall()}
            con.execute("begin transaction")
            for table, keep in sorted(policy.items()):
                if keep.raw_days is None or table not in tables:
                    continue
                where = "coalesce(_record_time, _extracted_at) < ?::timestamptz"
                cutoff = as_of - dt.timedelta(days=keep.raw_days)
                n = con.execute(f'select count(*) from raw."{table}" where {where}', [cutoff]).fetchone()[0]
                if n and not dry_run:
                    con.execute(f'delete from raw."{table}" where {where}', [cutoff])
                if n:
                    result.raw_rows[table] = n
            con.execute("commit")
        finally:
            con.close()
    found = manifests(root=landing_root())
    newest: dict[tuple[str, str], str] = {}
    for _, m in found:
        key = (m.platform, m.stream)
        newest[key] = max(newest.get(key, ""), m.batch_id)
    for directory, m in found:
        keep = policy.get(f"{m.platform}__{m.stream}")
        if keep is None or keep.landing_days is None or m.batch_id == newest[(m.platform, m.stream)]:
            continue
        if _batch_time(m) >= as_of - dt.timedelta(days=keep.landing_days):
            continue
        if m.batch_id not in loaded:
            result.kept_unloaded += 1
            continue
        if not dry_run:
            (directory / f"{m.batch_id}{MANIFEST_SUFFIX}").unlink(missing_ok=True)
            (directory / m.file).unlink(missing_ok=True)
        name = f"{m.platform}__{m.stream}"
        result.landing_batches[name] = result.landing_batches.get(name, 0) + 1
    result.seconds = round(time.monotonic() - started, 1)
    return result
