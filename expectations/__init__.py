"""Data-quality gates (DESIGN §2, §4, §6, §11): Great Expectations 1.x on pandas frames.

- **Batch gate** (`batch_gate.BatchGate`): the loader's pluggable validator. Every landed
  batch is checked against its stream's suite before it loads; a failing batch moves whole
  to `data/quarantine/` (the loader records `batch_quarantined` in `ops.events`).
- **Mart gate** (`mart_gate.run_mart_gate`): after dbt, the marts are read through a
  read-only DuckDB connection and checked; a failure stops the publish step.

The GX project is a file context in `expectations/gx/` (suites, validation definitions and
checkpoints are reviewed JSON, generated from the Python specs in `batch_suites.py` and
`mart_suites.py` by `csw quality build-suites`). Validation results and Data Docs are runtime
data under `<data>/quality/` (`data_docs/index.html`).

Importing this package is cheap: Great Expectations (a few seconds to import) is loaded only
when a gate runs.
"""
