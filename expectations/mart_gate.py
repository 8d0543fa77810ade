"""The mart gate: after dbt, before publishing (DESIGN §2, §10).

    result = run_mart_gate(as_of)          # GateResult(success, summary, docs_path)
    if result.success:
        publish_snapshot()                 # else the previous snapshot stays served

or `publish_if_clean(as_of, publish_snapshot)`, which raises `MartGateFailed` instead of
calling `publish` when the gate fails.

The marts are read through a read-only DuckDB connection (the gate never writes the
warehouse and can run while readers are attached) into pandas frames; identifier columns
are replaced by hashes before GX sees them. Each mart's checkpoint in `expectations/gx/`
validates its frame; `mart.freshness` validates a frame of lags built from `raw._batches`
(per stream) and from the marts' newest activity against raw (per channel). A mart that does
not exist yet is skipped with a note. Row counts of passing runs are kept in
`<data>/quality/mart_row_counts.json`; the next run fails when a mart loses more than
`MAX_ROW_DROP` of its rows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from csw.settings import seeds_dir, warehouse_path
from expectations import mart_suites
from expectations.context import (
    Finding,
    GateResult,
    QualityError,
    Runner,
    build_docs,
    failures_of,
    get_context,
    quality_dir,
)

log = logging.getLogger("expectations.mart_gate")

MARTS_SCHEMA = "marts"


class MartGateFailed(Exception):
    """The mart gate failed: the snapshot was not published; the message is the summary."""

    def __init__(self, result: GateResult):
        super().__init__(result.summary)
        self.result = result


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def row_counts_path() -> Path:
    return quality_dir() / "mart_row_counts.json"


def _last_counts() -> dict:
    path = row_counts_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _save_counts(counts: dict, as_of: pd.Timestamp) -> None:
    data = _last_counts()
    now = dt.datetime.now(dt.UTC).isoformat()
    for mart, rows in counts.items():
        data[mart] = {"rows": rows, "as_of": as_of.isoformat(), "checked_at": now}
    path = row_counts_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def seed_values() -> dict[str, list[str]]:
    """Value sets the suites take from the seeds at validation time."""
    seeds = seeds_dir()
    channels = pd.read_csv(seeds / "channels.csv", dtype=str)["channel"].dropna().unique().tolist()
    topics = pd.read_csv(seeds / "topic_keywords.csv", dtype=str)["topic"].dropna().unique().tolist()
    scales = pd.read_csv(seeds / "rating_scales.csv", dtype=str)["rating_scale"].dropna().unique().tolist()
    return {
        "channels": sorted(channels),
        "topics": sorted({*topics, "other"}),
        "rating_scales": sorted(scales),
    }


def _pseudonymise(df: pd.DataFrame, spec: mart_suites.MartSpec) -> pd.DataFrame:
    for col in spec.columns:
        if col.identifier and col.name in df.columns:
            values = df[col.name].astype("string")
            hashed = pd.util.hash_pandas_object(values, index=False).astype("float64")
            df[col.name] = hashed.where(values.notna())
    return df


# -- freshness ---------------------------------------------------------------------------------
def freshness_frame(
    con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame], as_of: pd.Timestamp, notes: list[str]
) -> pd.DataFrame:
    """One row per stream (ingest lag) and per mart x channel (mart lag behind raw):
    `check`, `subject`, `freshness`, `lag_s`, `budget_s`."""
    from connectors.platforms import all_streams

    streams = all_streams()
    rows: list[dict] = []
    batches = con.execute(
        """
        select platform, stream,
               max(coalesce(try_cast(json_extract_string("window", '$.until') as timestamptz), landed_at)) as newest
        from raw._batches group by all
        """
    ).df()
    for r in batches.itertuples():
        stream = streams.get(f"{r.platform}__{r.stream}")
        if stream is None or pd.isna(r.newest):
            continue
        budget = mart_suites.FRESHNESS_BUDGET.get(stream.freshness)
        rows.append(
            {
                "check": "ingest",
                "subject": f"{r.platform}.{r.stream}",
                "freshness": stream.freshness,
                "lag_s": max(0.0, (as_of - _utc(r.newest)).total_seconds()),
                "budget_s": budget.total_seconds() if budget else math.nan,
            }
        )
    loaded = {f"{r.platform}__{r.stream}" for r in batches.itertuples()}
    never = sorted(
        t for t, s in streams.items() if t not in loaded and any(p == s.platform for p in batches["platform"])
    )
    if never:
        notes.append("freshness: no loaded batch yet for " + ", ".join(never))

    # raw: the newest record of each platform's message streams (activity, not snapshots)
    raw_newest: dict[str, pd.Timestamp] = {}
    budgets: dict[str, float] = {}
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }
    for table, stream in streams.items():
        if stream.name != "messages" or table not in tables:
            continue
        newest = con.execute(f'select max(_record_time) from raw."{table}"').fetchone()[0]
        if newest is not None:
            raw_newest[stream.platform] = min(_utc(newest), as_of)
            budget = mart_suites.FRESHNESS_BUDGET.get(stream.freshness)
            budgets[stream.platform] = budget.total_seconds() if budget else math.nan
    for name, df in frames.items():
        spec = mart_suites.MARTS_BY_NAME[name]
        cols = [c for c in spec.activity_columns if c in df.columns]
        if not cols or "channel" not in df.columns or df.empty:
            continue
        newest = df[cols].max(axis=1)
        per_channel = newest.groupby(df["channel"]).max()
        for channel, raw in raw_newest.items():
            mart = per_channel.get(channel)
            if mart is None or pd.isna(mart):
                notes.append(f"freshness: {channel} has raw messages but no rows in {name}")
                continue
            rows.append(
                {
                    "check": "mart",
                    "subject": f"{name}.{channel}",
                    "freshness": streams[f"{channel}__messages"].freshness,
                    "lag_s": max(0.0, (raw - _utc(mart)).total_seconds()),
                    "budget_s": budgets[channel],
                }
            )
    return pd.DataFrame(rows, columns=["check", "subject", "freshness", "lag_s", "budget_s"])


def _freshness_reasons(frame: pd.DataFrame) -> list[str]:
    late = frame[frame["lag_s"] > frame["budget_s"]]
    out = []
    for r in late.itertuples():
        what = "newest loaded batch ends" if r.check == "ingest" else "newest activity is"
        ref = "as_of" if r.check == "ingest" else "the newest raw message"
        out.append(
            f"{r.subject}: {what} {r.lag_s / 3600:.1f} h before {ref} "
            f"(budget {r.budget_s / 3600:.0f} h, {r.freshness})"
        )
    return out


# -- the gate ----------------------------------------------------------------------------------
class _Runs:
    """Runs checkpoints of the GX project on frames and keeps the result ids for Data Docs."""

    def __init__(self, context, run_name: str):
        self.context = context
        self.run_name = run_name
        self.result_ids: list = []
        self.suites: list[str] = []

    def run(self, name: str, df: pd.DataFrame, params: dict):
        from great_expectations.exceptions import DataContextError

        try:
            runner = Runner.from_checkpoint(self.context, name)
        except DataContextError as exc:
            raise QualityError(
                f"no checkpoint {name} in expectations/gx; run `csw quality build-suites`"
            ) from exc
        key, result = runner.validate(self.context, df, params, self.run_name)
        self.result_ids.append(key)
        self.suites.append(name)
        return result


def run_mart_gate(
    as_of=None,
    *,
    warehouse: Path | str | None = None,
    build: bool = True,
    record_counts: bool = True,
) -> GateResult:
    """Validate the marts (and freshness) as of `as_of`; default: the marts' own `as_of`.

    Returns GateResult(success, summary, docs_path). The publish step publishes only on
    success; on failure the previous snapshot stays served."""
    started = time.perf_counter()
    path = Path(warehouse or warehouse_path())
    if not path.exists():
        return GateResult(
            False, f"Mart gate: no warehouse at {path}; run `csw ingest` and `csw transform` first."
        )
    notes: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise QualityError(f"cannot open {path} read-only ({exc}); is a writer still running?") from exc
    try:
        con.execute("set timezone = 'UTC'")
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ?", [MARTS_SCHEMA]
            ).fetchall()
        }
        for spec in mart_suites.MARTS:
            if spec.name not in existing:
                notes.append(
                    f"{mart_suites.suite_name(spec.name)}: skipped, {MARTS_SCHEMA}.{spec.name} does not exist yet"
                )
                continue
            frames[spec.name] = con.execute(f'select * from {MARTS_SCHEMA}."{spec.name}"').df()
        if as_of is None:
            built = [
                f[s.as_of_column].max()
                for s in mart_suites.MARTS
                if (f := frames.get(s.name)) is not None and s.as_of_column and s.as_of_column in f and len(f)
            ]
            as_of = max(built) if built else pd.Timestamp.now(tz="UTC")
        as_of = _utc(as_of).floor("s")
        fresh = freshness_frame(con, frames, as_of, notes) if "_batches" in _raw_tables(con) else None
    finally:
        con.close()

    context = get_context()
    runner = _Runs(context, f"marts as of {as_of:%Y-%m-%dT%H:%M:%SZ}")
    seeds = seed_values()
    last = _last_counts()
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    for name, df in frames.items():
        spec = mart_suites.MARTS_BY_NAME[name]
        missing = [c for c in mart_suites.referenced_columns(spec) if c not in df.columns]
        if missing and spec.provisional:
            notes.append(
                f"{mart_suites.suite_name(name)}: provisional suite, columns not in the mart (skipped): {', '.join(missing)}"
            )
            df = df.assign(**{c: pd.Series([None] * len(df), dtype=object) for c in missing})
        df = _pseudonymise(df, spec)
        previous = (last.get(name) or {}).get("rows")
        params = {
            "as_of": as_of,
            "built_as_of": as_of,
            "min_rows": math.floor(previous * (1 - mart_suites.MAX_ROW_DROP)) if previous else 0,
            **seeds,
        }
        result = runner.run(mart_suites.suite_name(name), df, params)
        counts[name] = len(df)
        if not result.success:
            reasons = failures_of(result)
            if previous:
                reasons = [
                    r.replace(
                        "rows do not collapse", f"rows do not collapse (last passing run: {previous:,})"
                    )
                    for r in reasons
                ]
            findings.append(Finding(mart_suites.suite_name(name), reasons))
    if fresh is not None and len(fresh):
        result = runner.run(mart_suites.FRESHNESS_SUITE, fresh, {})
        if not result.success:
            findings.append(
                Finding(mart_suites.FRESHNESS_SUITE, _freshness_reasons(fresh) or failures_of(result))
            )
    elif fresh is None:
        notes.append("freshness: no raw._batches in the warehouse; skipped")

    success = not findings
    if success and record_counts:
        _save_counts(counts, as_of)
    docs = None
    if build and runner.result_ids:
        try:
            docs = build_docs(context, runner.result_ids, runner.suites)
        except Exception as exc:  # noqa: BLE001 - docs are a report: record, do not hide the verdict
            log.exception("Data Docs could not be built")
            notes.append(f"Data Docs could not be built: {type(exc).__name__}: {exc}")
    head = (
        f"Mart gate as of {as_of:%Y-%m-%d %H:%M:%S} UTC: {len(frames)} mart(s) checked"
        + (f", {len(fresh)} freshness rows" if fresh is not None else "")
        + ("; PASSED" if success else f"; FAILED ({len(findings)} suite(s)) - do not publish")
    )
    lines = [head]
    for f in findings:
        lines.append(f"  FAIL {f.name}:")
        lines += [f"    - {r}" for r in f.reasons]
    lines += [f"  note: {n}" for n in notes]
    if docs:
        lines.append(f"  Data Docs: {docs}")
    return GateResult(
        success,
        "\n".join(lines),
        docs,
        findings,
        notes,
        sorted(frames),
        sum(len(f) for f in frames.values()),
        time.perf_counter() - started,
    )


def _raw_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }


def publish_if_clean(as_of, publish: Callable[[], object], **kwargs) -> GateResult:
    """Run the mart gate and call `publish()` only when it passes; raise MartGateFailed otherwise."""
    result = run_mart_gate(as_of, **kwargs)
    if not result.success:
        log.error("mart gate failed; the previous snapshot stays served:\n%s", result.summary)
        raise MartGateFailed(result)
    publish()
    return result
