"""The alerting DAG files import cleanly and are wired as promised (thin, scheduled,
callbacks, writer pool only where the warehouse is read)."""

from __future__ import annotations

import pytest

from csw.airflow_env import WRITER_POOL


def test_alerting_dags_import(dagbag):
    assert not {
        k: v
        for k, v in dagbag.import_errors.items()
        if "cs_alerts" in k or "cs_realtime" in k or "cs_reports" in k
    }
    assert {"cs_alerts", "cs_realtime", "cs_reports"} <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", ["cs_alerts", "cs_realtime", "cs_reports"])
def test_alerting_dag_structure(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "cs-warehouse" in dag.tags and dag.doc_md
    for task in dag.tasks:
        assert task.owner == "cs-data-eng" and task.retries >= 2
    pools = {t.task_id: t.pool for t in dag.tasks}
    if dag_id == "cs_realtime":
        assert WRITER_POOL not in pools.values()  # never waits for the writer
    if dag_id == "cs_alerts":
        assert pools["evaluate"] == WRITER_POOL
    if dag_id == "cs_reports":
        assert pools["render"] == WRITER_POOL
