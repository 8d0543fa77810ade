"""The batch gate: the loader's validator (DESIGN §2, §6).

    gate = BatchGate(as_of=until)                # `until` of the ingest run
    with Loader(db, streams, validator=gate) as loader:
        loader.load_pending()                     # calls gate.prepare(pending) first
    result = gate.finish()                        # Data Docs, summary

The loader calls `gate(manifest, records)` for each landed batch before it loads it; a
non-empty answer (the failures in words) makes the loader move the batch whole to
`data/quarantine/` with that reason and record `batch_quarantined` in `ops.events`; the other
batches still load.

How a batch is checked: DuckDB reads the batch file into the frame of its stream's suite
(`batch_suites.frame`: key and time derived as the loader derives them, identifiers hashed),
and the stream's checkpoint in `expectations/gx/` (its validation definition and result
format) validates it. GX costs about 10 ms per expectation per validation whatever the row
count, so `prepare()` validates all pending batches of a stream in one frame; when that
passes and every batch is within the record-grain tolerances on its own, each batch passes.
When it fails, each batch of the stream is validated on its own, so verdicts and reasons
are always per batch.

A stream without a reviewed suite in `expectations/gx/` (a platform added since the suites
were last built) is validated with the suite generated from its declaration, and a note says
to run `csw quality build-suites`. A gate that cannot evaluate a batch rejects it with the
reason: nothing passes unchecked.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from connectors.core.landing import Manifest
from connectors.core.streams import Stream
from expectations import batch_suites
from expectations.context import (
    Finding,
    GateResult,
    Runner,
    build_docs,
    docs_index,
    failures_of,
    get_context,
    result_page,
)

log = logging.getLogger("expectations.batch_gate")

MAX_FRAME_ROWS = 300_000  # batches of one stream validated together, at most this many rows


class BatchGate:
    """A `connectors.core.loader.Validator`: `gate(manifest, records) -> reasons`."""

    def __init__(
        self,
        as_of=None,
        streams: dict[str, Stream] | None = None,
        store_results: bool = True,
    ):
        self.as_of = pd.Timestamp(as_of) if as_of is not None else None
        self._streams = streams
        self.store_results = store_results
        self._context = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._runners: dict[str, Runner] = {}
        self._verdicts: dict[str, list[str]] = {}
        self._pages: dict[str, Path] = {}
        self.result_ids: list = []
        self.suites: set[str] = set()
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.checked: list[str] = []
        self._counted: set[str] = set()
        self.rows = 0
        self.seconds = 0.0

    # -- the validator ---------------------------------------------------------------------------
    def __call__(self, manifest: Manifest, records: list[dict]) -> list[str]:
        label = self._count(manifest)
        reasons = self._verdicts.pop(manifest.batch_id, None)
        if reasons is None and records:
            self._prepare_following(manifest)
            reasons = self._verdicts.pop(manifest.batch_id, None)
        if reasons is None:
            started = time.perf_counter()
            try:
                reasons = self.validate_records(manifest, records)
            except Exception as exc:  # noqa: BLE001 - a gate that cannot check must not let a batch through
                log.exception("quality gate could not validate batch %s", label)
                reasons = [f"quality gate could not validate the batch ({type(exc).__name__}: {exc})"]
            finally:
                self.seconds += time.perf_counter() - started
        if reasons:
            self.findings.append(Finding(label, reasons))
            page = self._pages.get(manifest.batch_id, docs_index())
            return [f"quality gate: {'; '.join(reasons)} (Data Docs: {page})"]
        return []

    def prepare(self, pending: Iterable[tuple[Path, Manifest]]) -> bool:
        """Validate every pending batch now, one GX validation per stream where they pass.

        Verdicts are kept for the loader's calls; a batch this step could not read is left to
        the per-call path (the loader rejects unreadable files itself). Returns True when every
        batch was read and passed: the caller may then load without asking the gate again
        (the loader parses each batch's records only to hand them to its validator)."""
        started = time.perf_counter()
        pending = list(pending)
        groups: dict[str, list[tuple[Path, Manifest]]] = {}
        for directory, manifest in pending:
            stream = self.streams.get(f"{manifest.platform}__{manifest.stream}")
            if stream is None:
                continue
            if manifest.row_count == 0:
                self._verdicts[manifest.batch_id] = []
                continue
            groups.setdefault(stream.table, []).append((directory, manifest))
        try:
            for table, items in groups.items():
                stream = self.streams[table]
                chunk: list[tuple[Path, Manifest]] = []
                rows = 0
                for item in [*items, None]:
                    if item is None or (chunk and rows + item[1].row_count > MAX_FRAME_ROWS):
                        self._prepare_chunk(stream, chunk)
                        chunk, rows = [], 0
                    if item is not None:
                        chunk.append(item)
                        rows += item[1].row_count
        finally:
            self.seconds += time.perf_counter() - started
        if all(self._verdicts.get(m.batch_id) == [] for _, m in pending):
            for _, m in pending:  # counted now: the caller may not ask again
                self._count(m)
            return True
        return False

    def _count(self, manifest: Manifest) -> str:
        label = f"{manifest.platform}.{manifest.stream} {manifest.batch_id}"
        if label not in self._counted:
            self._counted.add(label)
            self.checked.append(label)
            self.rows += manifest.row_count
        return label

    def _prepare_following(self, manifest: Manifest) -> None:
        """Without `prepare()`: validate this batch together with the landed batches of its stream
        that follow it (the loader asks for them next, oldest first), up to one frame's rows."""
        from connectors.core.landing import landing_root, manifests

        stream = self.streams.get(f"{manifest.platform}__{manifest.stream}")
        directory = landing_root() / manifest.platform / manifest.stream
        if stream is None or not (directory / manifest.file).exists():
            return
        started = time.perf_counter()
        try:
            items, rows = [], 0
            for d, m in manifests(manifest.platform, manifest.stream):
                if m.batch_id < manifest.batch_id or m.batch_id in self._verdicts or m.row_count == 0:
                    continue
                if items and rows + m.row_count > MAX_FRAME_ROWS:
                    break
                items.append((d, m))
                rows += m.row_count
            self._prepare_chunk(stream, items)
        finally:
            self.seconds += time.perf_counter() - started

    def _prepare_chunk(self, stream: Stream, items: list[tuple[Path, Manifest]]) -> None:
        if not items:
            return
        sources = [
            (m.batch_id, str(m.data_path(d)), batch_suites.bounds(stream, m.window, self.as_of))
            for d, m in items
        ]
        try:
            df = batch_suites.frame(self.con, stream, sources)
        except (duckdb.Error, OSError) as exc:
            log.warning(
                "batch gate: %s batches not read together (%s); checking them one by one", stream.table, exc
            )
            return
        self._decide(stream, df, [m.batch_id for _, m in items])

    def validate_records(self, manifest: Manifest, records: list[dict]) -> list[str]:
        """Failure reasons of one batch given its records (the per-call path)."""
        stream = self.streams.get(f"{manifest.platform}__{manifest.stream}")
        if stream is None:
            return [f"no stream declaration for {manifest.platform}.{manifest.stream}"]
        if not records:
            return []
        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as fh:
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
            path = fh.name
        try:
            df = batch_suites.frame(
                self.con,
                stream,
                [(manifest.batch_id, path, batch_suites.bounds(stream, manifest.window, self.as_of))],
            )
        finally:
            Path(path).unlink(missing_ok=True)
        self._decide(stream, df, [manifest.batch_id])
        return self._verdicts.pop(manifest.batch_id, [])

    # -- deciding --------------------------------------------------------------------------------
    def _decide(self, stream: Stream, df: pd.DataFrame, batch_ids: list[str]) -> None:
        """Verdicts for `batch_ids` from their frame: together when conclusive, else one by one."""
        present = [c for c in df.columns if c.endswith("__present")]
        if self._conclusive(stream, df, present):
            # screening: only the verdict matters, so the cheapest result format; a failure is
            # not stored, the batches are validated one by one with the checkpoint's format
            run_name = batch_ids[0] if len(batch_ids) == 1 else f"{batch_ids[0]}+{len(batch_ids) - 1}"
            result = self._run(stream, self._clean(df, present), run_name, "BOOLEAN_ONLY", store=False)
            if result.success:
                if self.store_results:
                    self.result_ids.append(self._runner(stream).save(self.context, result))
                for bid in batch_ids:
                    self._verdicts[bid] = []
                return
        for bid in batch_ids:
            part = df[df["_batch"] == bid].reset_index(drop=True)
            if part.empty:  # nothing readable in it: the loader's own checks decide
                self._verdicts[bid] = []
                continue
            missing = [c.removesuffix("__present") for c in present if not part[c].any()]
            part = self._clean(part.drop(columns=missing), present)
            result = self._run(stream, part, bid)
            self._verdicts[bid] = failures_of(result)
            if self._verdicts[bid] and self.result_ids:
                self._pages[bid] = result_page(self.result_ids[-1])

    @staticmethod
    def _clean(df: pd.DataFrame, present: list[str]) -> pd.DataFrame:
        return df.drop(columns=[c for c in present if c in df.columns])

    @staticmethod
    def _conclusive(stream: Stream, df: pd.DataFrame, present: list[str]) -> bool:
        """True when a pass of the batches together implies a pass of each batch: every batch
        has every required column and is within the record-grain tolerances on its own (the
        other expectations hold per row, so they hold per batch when they hold for all)."""
        grouped = df.groupby("_batch", sort=False)
        if present and not bool(grouped[present].any().all().all()):
            return False
        limit = batch_suites.RECORD_GRAIN_SHARE
        checks = ["_key"] + (["_time"] if stream.time_field else [])
        shares = grouped[checks].agg(lambda s: s.isna().mean())
        return bool((shares <= limit).all().all())

    # -- GX --------------------------------------------------------------------------------------
    @property
    def streams(self) -> dict[str, Stream]:
        if self._streams is None:
            from connectors.platforms import all_streams

            self._streams = all_streams()
        return self._streams

    @property
    def context(self):
        if self._context is None:
            self._context = get_context()
        return self._context

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("set timezone = 'UTC'")
        return self._con

    def _runner(self, stream: Stream) -> Runner:
        """The stream's checkpoint (or, without a reviewed suite, one generated from its declaration)."""
        name = batch_suites.suite_name(stream)
        if name not in self._runners:
            from great_expectations.exceptions import DataContextError

            try:
                self._runners[name] = Runner.from_checkpoint(self.context, name)
                self.suites.add(name)
            except DataContextError:
                self._runners[name] = self._generated_runner(stream)
                self.notes.append(
                    f"{name}: no reviewed suite in expectations/gx; validated with the suite generated "
                    "from the stream declaration (run `csw quality build-suites` and review the diff)"
                )
        return self._runners[name]

    def _generated_runner(self, stream: Stream) -> Runner:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from expectations.build import RESULT_FORMAT

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        definition = (
            ctx.data_sources.add_pandas("landed_batches")
            .add_dataframe_asset(stream.table)
            .add_batch_definition_whole_dataframe("whole_frame")
        )
        suite = gx.ExpectationSuite(
            name=batch_suites.suite_name(stream),
            expectations=batch_suites.expectations(stream),
            meta=batch_suites.suite_meta(stream),
        )
        return Runner(suite.name, definition, suite, RESULT_FORMAT)

    def _run(self, stream: Stream, df: pd.DataFrame, run_name: str, result_format=None, store: bool = True):
        """Validate a frame with the stream's checkpoint; keep the result id for Data Docs."""
        meta = {
            "as_of": str(self.as_of) if self.as_of is not None else "each batch's window end",
            "batches": int(df["_batch"].nunique()) if "_batch" in df else 0,
        }
        key, result = self._runner(stream).validate(
            self.context,
            df,
            None,
            run_name,
            meta,
            store=store and self.store_results,
            result_format=result_format,
        )
        if key is not None:
            self.result_ids.append(key)
        return result

    # -- the run's end ---------------------------------------------------------------------------
    def finish(self, build: bool = True) -> GateResult:
        """Build Data Docs for this run's validations and sum the run up."""
        docs: Path | None = None
        docs_s = 0.0
        if build and self.store_results and self.result_ids:
            started = time.perf_counter()
            try:
                docs = build_docs(self.context, self.result_ids, sorted(self.suites))
            except Exception as exc:  # noqa: BLE001 - docs are a report: record it, do not fail the load
                log.exception("Data Docs could not be built")
                self.notes.append(f"Data Docs could not be built: {type(exc).__name__}: {exc}")
            docs_s = time.perf_counter() - started
        if self._con is not None:
            self._con.close()
            self._con = None
        bad = len(self.findings)
        head = (
            f"Batch gate: {len(self.checked)} batch(es), {self.rows:,} rows checked in {self.seconds:.1f} s; "
            + (f"{bad} failed (quarantined)" if bad else "all passed")
        )
        lines = [head, *(f"  FAIL {f.line()}" for f in self.findings), *(f"  note: {x}" for x in self.notes)]
        if docs:
            lines.append(f"  Data Docs ({docs_s:.1f} s): {docs}")
        return GateResult(
            not bad,
            "\n".join(lines),
            docs,
            list(self.findings),
            list(self.notes),
            list(self.checked),
            self.rows,
            self.seconds,
            docs_s,
        )


def batch_validator(as_of=None) -> BatchGate:
    """The loader's validator (a factory, for callers that look it up by name). The loader
    calls its `prepare()` before loading; call `finish()` after it for Data Docs."""
    return BatchGate(as_of=as_of)


def check_landed(as_of=None, all_batches: bool = False) -> GateResult:
    """`csw quality`: validate landed batches now, report only (nothing moves, nothing loads).

    By default the batches not loaded yet; with `all_batches`, every batch still in landing.
    Without `as_of` each batch is checked against its own window end."""
    from connectors.core.landing import manifests, read_records
    from csw.settings import warehouse_path

    loaded: set[str] = set()
    path = warehouse_path()
    if not all_batches and path.exists():
        con = duckdb.connect(str(path), read_only=True)
        try:
            if con.execute(
                "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = '_batches'"
            ).fetchone()[0]:
                loaded = {r[0] for r in con.execute("select batch_id from raw._batches").fetchall()}
        finally:
            con.close()
    items = [(d, m) for d, m in manifests() if m.batch_id not in loaded]
    gate = BatchGate(as_of=as_of)
    gate.prepare(items)
    for directory, manifest in items:
        if manifest.batch_id in gate._verdicts:
            gate(manifest, [])
        else:
            try:
                records = read_records(directory, manifest)
            except (OSError, ValueError) as exc:
                gate.findings.append(
                    Finding(
                        f"{manifest.platform}.{manifest.stream} {manifest.batch_id}", [f"unreadable: {exc}"]
                    )
                )
                continue
            gate(manifest, records)
    result = gate.finish()
    scope = "every landed batch" if all_batches else "landed batches not loaded yet"
    result.summary = result.summary.replace("Batch gate:", f"Batch gate ({scope}):", 1)
    return result
