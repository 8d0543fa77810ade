"""Bulk mode (sandbox/bulk.py) lands the records the platform servers serve: same keys,
key order and values, so a benchmark built on bulk batches measures the real path."""

from __future__ import annotations

import gzip

import orjson
import pandas as pd
import requests

from connectors.core.landing import manifests
from sandbox.bulk import write_landing
from sandbox.truth import visible_cutoff


def _wecom_sync_all(sandbox) -> list[dict]:
    c = sandbox.state.credentials["wecom"]
    token = requests.get(
        f"{sandbox.url}/wecom/cgi-bin/gettoken", params={"corpid": c["corpid"], "corpsecret": c["corpsecret"]}
    ).json()["access_token"]
    records, cursor = [], None
    while True:
        body = {"limit": 1000, "open_kfid": c["open_kfid"], **({"cursor": cursor} if cursor else {})}
        page = requests.post(
            f"{sandbox.url}/wecom/cgi-bin/kf/sync_msg", params={"access_token": token}, json=body, timeout=60
        ).json()
        assert page["errcode"] == 0, page
        records += page["msg_list"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return records


def _landed(root, platform: str, stream: str) -> list[bytes]:
    lines = []
    for directory, m in manifests(platform, stream, root=root):
        body = gzip.decompress((directory / m.file).read_bytes())
        assert body.count(b"\n") == m.row_count
        lines += body.splitlines()
    return lines


def test_bulk_wecom_records_equal_the_server(tmp_path, sandbox, sim_data, as_of):
    lower, upper = visible_cutoff("wecom", as_of)
    write_landing(
        sim_data,
        upper,
        since=lower - pd.Timedelta(seconds=1),
        shapes=("wecom",),
        root=tmp_path,
    )
    served = _wecom_sync_all(sandbox)
    landed = _landed(tmp_path, "wecom", "messages")
    # byte-identical JSON lines (orjson writes compact JSON, as DuckDB's json_object does)
    served_lines = sorted(orjson.dumps(r) for r in served)
    assert len(landed) == len(served_lines) > 1000
    assert sorted(landed) == served_lines


def test_bulk_crm_records_equal_the_server(tmp_path, sandbox, sim_data, as_of):
    write_landing(sim_data, as_of, shapes=("crm",), root=tmp_path)
    key = sandbox.state.credentials["crm"]["api_key"]
    for stream, path in (("customers", "customers"), ("identities", "identities"), ("orders", "orders")):
        served, cursor = [], None
        while True:
            page = requests.get(
                f"{sandbox.url}/crm/api/v1/{path}",
                params={"page_size": 5000, **({"cursor": cursor} if cursor else {})},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ).json()
            served += page["data"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        landed = [orjson.loads(x) for x in _landed(tmp_path, "crm", stream)]
        assert sorted(orjson.dumps(r) for r in landed) == sorted(orjson.dumps(r) for r in served), stream
