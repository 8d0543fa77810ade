"""Airflow cluster policy of the docker deployment (copied to $AIRFLOW_HOME/config/).

A DuckDB file cannot be shared across hosts: every task that opens the warehouse must run
on the one worker that holds it. The DAGs already put those tasks in the one-slot pool
`duckdb_writer` (csw.pipeline.WRITER_POOL); this policy routes every task of that pool to
the writer queue (`CSW_WRITER_QUEUE`, default `duckdb`), which exactly one Celery worker
consumes (docker/compose.yaml, service airflow-worker-duckdb). The pool stays the single
source of truth: a new writer task only needs `pool=pipeline.WRITER_POOL`.

With the LocalExecutor the queue is recorded but ignored; the pool still serialises the
writers. The policy runs wherever DAGs are parsed (dag-processor, `dags test`, DagBag).
"""

from __future__ import annotations

import os

WRITER_POOL = os.environ.get("CSW_WRITER_POOL", "duckdb_writer")
WRITER_QUEUE = os.environ.get("CSW_WRITER_QUEUE", "duckdb")


def task_policy(task) -> None:
    """Pin the DuckDB writers to the writer queue; keep every other task off it."""
    if task.pool == WRITER_POOL:
        task.queue = WRITER_QUEUE
