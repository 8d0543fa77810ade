"""The GX project: a file context in `expectations/gx/`, runtime stores under `<data>/quality/`.

    expectations/gx/great_expectations.yml       stores, Data Docs site, the pandas data sources
    expectations/gx/expectations/<suite>.json     suites             (reviewed; generated)
    expectations/gx/validation_definitions/       suite + data asset (reviewed; generated)
    expectations/gx/checkpoints/                  what runs, result format (reviewed; generated)
    <data>/quality/validations/                   validation results (runtime, pruned)
    <data>/quality/data_docs/index.html           Data Docs (runtime, rebuilt on every gate run)

The yml names `${CSW_QUALITY_DIR}` for the runtime stores; `get_context()` passes it (the
data directory's `quality/`), so the repository is never written at run time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csw.settings import data_dir

log = logging.getLogger("expectations")

PACKAGE_DIR = Path(__file__).resolve().parent
GX_DIR = PACKAGE_DIR / "gx"
SITE_NAME = "local_site"
KEEP_RESULTS_PER_SUITE = 100  # older validation results (and their pages) are pruned


class QualityError(Exception):
    """The quality gates cannot run (no warehouse, a broken GX project, ...)."""


def quality_dir() -> Path:
    return data_dir() / "quality"


def docs_dir() -> Path:
    return quality_dir() / "data_docs"


def docs_index() -> Path:
    """Where the Data Docs start: `<data>/quality/data_docs/index.html`."""
    return docs_dir() / "index.html"


def results_dir() -> Path:
    return quality_dir() / "validations"


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.WARNING)


_CONTEXTS: dict[tuple[str, float], Any] = {}


def _cache_docs_templates() -> None:
    """Keep GX's compiled Data Docs templates in jinja2's per-user cache directory.

    GX builds a new jinja2 environment for each view it renders, so every Data Docs build
    parsed and compiled its templates again (most of a build's time, in every process).
    jinja2 keys the cache on the template's name and source checksum (a changed template
    compiles again) and checks its own and Python's version; it holds templates, no data."""
    import jinja2
    from great_expectations.render.view.view import DefaultJinjaView

    init = DefaultJinjaView.__init__
    if getattr(init, "_csw_cached", False):
        return
    cache = jinja2.FileSystemBytecodeCache()

    def cached_init(view, *args, **kwargs):
        init(view, *args, **kwargs)
        view.env.bytecode_cache = cache

    cached_init._csw_cached = True
    DefaultJinjaView.__init__ = cached_init


def get_context():
    """The file context of `expectations/gx/` with its runtime stores in `<data>/quality/`.

    Loaded once per process and data directory (a few tenths of a second), again when the
    project's yml changes."""
    _quiet_gx()
    import great_expectations as gx

    _cache_docs_templates()

    qdir = quality_dir()
    qdir.mkdir(parents=True, exist_ok=True)
    yml = GX_DIR / "great_expectations.yml"
    if not yml.exists():
        raise QualityError(f"no GX project at {GX_DIR}; run `csw quality build-suites`")
    key = (str(qdir), yml.stat().st_mtime)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = gx.get_context(
            mode="file",
            project_root_dir=str(PACKAGE_DIR),
            runtime_environment={"CSW_QUALITY_DIR": str(qdir)},
        )
    return _CONTEXTS[key]


# -- results ---------------------------------------------------------------------------------
@dataclass
class Finding:
    """One failed validation: what was checked and why it failed, in words."""

    name: str  # suite or batch, e.g. "batch.wecom__messages 2026...-ab12" or "mart.fct_conversations"
    reasons: list[str]

    def line(self) -> str:
        return f"{self.name}: " + "; ".join(self.reasons)


@dataclass
class GateResult:
    """What a gate run says: success, a readable summary and where the Data Docs are."""

    success: bool
    summary: str
    docs_path: Path | None = None
    failures: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0  # validating (frames and GX), not counting Data Docs
    docs_seconds: float = 0.0

    def __str__(self) -> str:
        return self.summary

    def as_dict(self) -> dict:
        return {
            "success": self.success,
            "summary": self.summary,
            "docs_path": str(self.docs_path) if self.docs_path else None,
            "failures": [{"name": f.name, "reasons": f.reasons} for f in self.failures],
            "notes": self.notes,
            "checked": self.checked,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "docs_seconds": round(self.docs_seconds, 3),
        }


def _fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(item) -> str:
    """A failed `ExpectationValidationResult` in words; never the values of an identifier."""
    from expectations.privacy import is_identifier

    config = item.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or (
        f"{kwargs.get('column_A')}/{kwargs.get('column_B')}" if kwargs.get("column_A") else None
    )
    if config.description:  # the specs' descriptions name the field
        head = config.description
    else:
        label = config.type.removeprefix("expect_").replace("_", " ")
        head = f"{column}: {label}" if column else label
    info = item.exception_info or {}
    if info.get("raised_exception"):
        return f"{head} (could not be evaluated: {str(info.get('exception_message'))[:200]})"
    result = item.result or {}
    if "unexpected_count" in result:
        total = result.get("element_count")
        text = f"{head}: {result['unexpected_count']} of {total} rows fail"
        if is_identifier(config.meta):
            return text + " (values hidden: identifier column)"
        counts = result.get("partial_unexpected_counts") or []
        if counts:
            sample = ", ".join(f"{_fmt_value(c['value'])} x{c['count']}" for c in counts[:5])
            text += f" (e.g. {sample})"
        return text
    if "observed_value" in result:
        return f"{head}: observed {_fmt_value(result['observed_value'])}"
    return head


def failures_of(suite_result) -> list[str]:
    """Readable reasons of a failed suite validation (empty when it passed)."""
    from expectations.privacy import scrub_result

    scrub_result(suite_result)
    return [describe(r) for r in suite_result.results if not r.success]


# -- running a checkpoint ----------------------------------------------------------------------
_RUNNERS: dict[int, dict[str, Runner]] = {}


@dataclass
class Runner:
    """A checkpoint of the GX project, ready to validate frames: its validation definition's
    batch definition and suite, and the checkpoint's result format (the checkpoints have no
    actions; Data Docs are built once per gate run)."""

    name: str
    batch_definition: Any
    suite: Any
    result_format: Any
    checkpoint_id: str | None = None
    validation_id: str | None = None

    @classmethod
    def from_checkpoint(cls, context, name: str) -> Runner:
        """The checkpoint `name` of the context (read once per context)."""
        cache = _RUNNERS.setdefault(id(context), {})
        if name not in cache:
            checkpoint = context.checkpoints.get(name)
            vd = checkpoint.validation_definitions[0]
            cache[name] = cls(
                name, vd.batch_definition, vd.suite, checkpoint.result_format, checkpoint.id, vd.id
            )
        return cache[name]

    def validate(
        self,
        context,
        df,
        params: dict | None,
        run_name: str,
        meta: dict | None = None,
        store: bool = True,
        result_format=None,
    ):
        """Validate `df`; store the (identifier-safe) result. Returns (result id or None, result).

        This is what `Checkpoint.run` does for one validation definition, without re-reading
        the checkpoint, definition and suite from disk to check they are unchanged on every
        run (a tenth of a second each; the gates load them once per run)."""
        import datetime as dt

        from great_expectations.core.run_identifier import RunIdentifier

        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(
            self.suite, result_format=self.result_format, expectation_parameters=params or None
        )
        run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
        result.meta.update(
            run_id=run_id,
            validation_time=run_id.run_time,
            checkpoint_id=self.checkpoint_id,
            validation_id=self.validation_id,
            batch_parameters={"dataframe": "<DATAFRAME>"},
            **(meta or {}),
        )
        return (self.save(context, result) if store else None), result

    def save(self, context, result):
        """Store a result of `validate(store=False)`; returns its id."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=self.suite.name),
            run_id=result.meta["run_id"],
            batch_identifier=result.batch_id or self.name,
        )
        context.validation_results_store.set(key, result)
        return key


# -- Data Docs ---------------------------------------------------------------------------------
def _result_paths(key) -> tuple[Path, Path]:
    parts = key.to_tuple()
    rel = Path(*[str(p) for p in parts])
    return (
        results_dir() / rel.with_name(rel.name + ".json"),
        docs_dir() / "validations" / rel.with_name(rel.name + ".html"),
    )


def result_page(key) -> Path:
    """The Data Docs page of a validation result (it exists once the docs are built)."""
    return _result_paths(key)[1]


def prune_results(context, keep: int = KEEP_RESULTS_PER_SUITE) -> int:
    """Keep the newest `keep` validation results per suite (and their Data Docs pages)."""
    store = context.validation_results_store
    by_suite: dict[str, list] = {}
    for key in store.list_keys():
        by_suite.setdefault(key.expectation_suite_identifier.name, []).append(key)
    removed = 0
    for keys in by_suite.values():
        keys.sort(key=lambda k: (str(k.run_id.run_time), str(k.run_id.run_name)), reverse=True)
        for key in keys[keep:]:
            for path in _result_paths(key):
                path.unlink(missing_ok=True)
                parent = path.parent
                while (
                    parent not in (results_dir(), docs_dir())
                    and parent.exists()
                    and not any(parent.iterdir())
                ):
                    parent.rmdir()
                    parent = parent.parent
            removed += 1
    return removed


def build_docs(context, result_ids: list, suite_names: list[str]) -> Path:
    """Render the pages of this run's results and suites, prune old ones, rebuild the index."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    prune_results(context)
    stale = []
    for name in sorted(set(suite_names)):  # a suite's page is rendered again only when it changed
        page = docs_dir() / "expectations" / Path(*name.split(".")).with_suffix(".html")
        source = GX_DIR / "expectations" / Path(*name.split(".")).with_suffix(".json")
        if not page.exists() or (source.exists() and source.stat().st_mtime > page.stat().st_mtime):
            stale.append(name)
    ids = [ExpectationSuiteIdentifier(name=n) for n in stale] + list(result_ids)
    context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=ids)
    return docs_index()
