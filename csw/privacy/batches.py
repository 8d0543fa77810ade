"""Reading and rewriting landed batches (landing and quarantine) without a customer's records.

A rewritten batch keeps its batch id, cursor, window and events; only its records, row count
and checksum change, as if it had been landed without those records, so the loader still
accepts it (checksum and row count match) and extraction still resumes from it. The new
records go to a new data file; the manifest is then replaced to point at it (one rename),
and the old data file is removed: a reader sees the old batch or the new one, whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import orjson

from connectors.core.landing import DATA_SUFFIX, MANIFEST_SUFFIX, Manifest, manifests


def batches(root: Path) -> Iterator[tuple[Path, Manifest]]:
    """Every batch under a landing-shaped root (landing or quarantine) whose data file exists."""
    if not root.exists():
        return
    for directory, manifest in manifests(root=root):
        if manifest.data_path(directory).exists():
            yield directory, manifest


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def body(directory: Path, manifest: Manifest, verify: bool = True) -> bytes | None:
    """The batch's uncompressed JSONL, or None when it is unreadable or (with `verify`)
    altered after landing: the loader quarantines such a batch, and the suppression filter
    never rewrites it into a valid one."""
    try:
        payload = manifest.data_path(directory).read_bytes()
        if verify and hashlib.sha256(payload).hexdigest() != manifest.sha256:
            return None
        return gzip.decompress(payload)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None


def parse(data: bytes) -> list[tuple[bytes, dict]] | None:
    try:
        return [(line, orjson.loads(line)) for line in data.splitlines() if line]
    except orjson.JSONDecodeError:
        return None


def load(directory: Path, manifest: Manifest, verify: bool = True) -> list[tuple[bytes, dict]] | None:
    data = body(directory, manifest, verify)
    return None if data is None else parse(data)


def rewrite(
    directory: Path, manifest: Manifest, rows: list[tuple[bytes, dict]], drop: Callable[[dict], bool]
) -> int:
    """Drop the records `drop` names; returns how many were dropped (0: file untouched)."""
    kept = [line for line, record in rows if not drop(record)]
    dropped = len(rows) - len(kept)
    if not dropped:
        return 0
    payload = gzip.compress(b"".join(line + b"\n" for line in kept), compresslevel=1, mtime=0)
    old = manifest.data_path(directory)
    manifest.file = f"{manifest.batch_id}.{uuid.uuid4().hex[:8]}{DATA_SUFFIX}"
    manifest.row_count = len(kept)
    manifest.sha256 = hashlib.sha256(payload).hexdigest()
    _write(directory / manifest.file, payload)
    _write(
        directory / f"{manifest.batch_id}{MANIFEST_SUFFIX}",
        json.dumps(asdict(manifest), ensure_ascii=False, indent=1).encode(),
    )
    old.unlink(missing_ok=True)
    return dropped
