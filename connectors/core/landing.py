"""Landing: every pull becomes an immutable batch file plus a manifest.

    <data>/landing/<platform>/<stream>/<batch_id>.jsonl.gz     one record per line, as received
    <data>/landing/<platform>/<stream>/<batch_id>.manifest.json

Both are written under temporary names and renamed into place, the manifest last, so a
batch either exists whole or not at all (a crash leaves only `*.tmp` files, which are
ignored and swept). Batch ids sort in landing order. Extraction reads its cursor from the
newest manifest on disk, never from the warehouse, so it never waits for the writer.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from csw.settings import data_dir

MANIFEST_SUFFIX = ".manifest.json"
DATA_SUFFIX = ".jsonl.gz"


def landing_root() -> Path:
    return data_dir() / "landing"


def quarantine_root() -> Path:
    return data_dir() / "quarantine"


@dataclass
class Manifest:
    platform: str
    stream: str
    batch_id: str
    created_at: str
    source: str  # api | scrape
    row_count: int
    sha256: str
    cursor_before: Any = None
    cursor_after: Any = None
    window: dict | None = None
    events: list[dict] = field(default_factory=list)
    file: str = ""

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))

    def data_path(self, directory: Path) -> Path:
        return directory / self.file


def new_batch_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: UTC time to the microsecond plus a random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_batch(
    platform: str,
    stream: str,
    records: list[dict],
    *,
    source: str = "api",
    cursor_before: Any = None,
    cursor_after: Any = None,
    window: dict | None = None,
    events: list[dict] | None = None,
    root: Path | None = None,
) -> Manifest:
    """Land one batch atomically; returns its manifest."""
    directory = (root or landing_root()) / platform / stream
    directory.mkdir(parents=True, exist_ok=True)
    batch_id = new_batch_id()
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    payload = gzip.compress(body, compresslevel=1, mtime=0)
    manifest = Manifest(
        platform=platform,
        stream=stream,
        batch_id=batch_id,
        created_at=dt.datetime.now(dt.UTC).isoformat(),
        source=source,
        row_count=len(records),
        sha256=hashlib.sha256(payload).hexdigest(),
        cursor_before=cursor_before,
        cursor_after=cursor_after,
        window=window,
        events=list(events or []),
        file=f"{batch_id}{DATA_SUFFIX}",
    )
    data_tmp = directory / f".{batch_id}{DATA_SUFFIX}.tmp"
    man_tmp = directory / f".{batch_id}{MANIFEST_SUFFIX}.tmp"
    _fsync_write(data_tmp, payload)
    os.replace(data_tmp, directory / manifest.file)
    _fsync_write(man_tmp, json.dumps(asdict(manifest), ensure_ascii=False, indent=1).encode())
    os.replace(man_tmp, directory / f"{batch_id}{MANIFEST_SUFFIX}")
    return manifest


def manifests(
    platform: str | None = None, stream: str | None = None, root: Path | None = None
) -> list[tuple[Path, Manifest]]:
    """Landed manifests (oldest first), optionally for one platform/stream."""
    base = root or landing_root()
    pattern = f"{platform or '*'}/{stream or '*'}/*{MANIFEST_SUFFIX}"
    found = [(p.parent, Manifest.read(p)) for p in base.glob(pattern) if not p.name.startswith(".")]
    return sorted(found, key=lambda item: (item[1].batch_id, item[1].platform, item[1].stream))


def latest_manifest(platform: str, stream: str) -> Manifest | None:
    """The newest batch of a stream, landed or quarantined: where extraction resumes."""
    candidates = manifests(platform, stream) + manifests(platform, stream, root=quarantine_root())
    return max((m for _, m in candidates), key=lambda m: m.batch_id, default=None)


def read_records(directory: Path, manifest: Manifest) -> list[dict]:
    """The batch's records; raises ValueError when the file is missing, altered or unreadable."""
    path = manifest.data_path(directory)
    payload = path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != manifest.sha256:
        raise ValueError(f"checksum mismatch for {path.name}: the file changed after landing")
    return [orjson.loads(line) for line in gzip.decompress(payload).splitlines() if line]


def sweep_temp_files(root: Path | None = None) -> int:
    """Remove leftovers of crashed writes (never part of a batch)."""
    removed = 0
    for path in (root or landing_root()).glob("*/*/.*.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
