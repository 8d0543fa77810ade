"""The suppression list: forgotten persons never come back with a re-ingest or a backfill.

`<data>/privacy/suppressed.json` holds only salted hashes: the person's customer keys (one
per platform id, the marts' `customer_key`), person keys (CRM ids) and conversation keys.
The loader calls `filter_pending` on the batches it is about to load (one line in
`connectors/core/loader.py`); with an empty list it costs nothing. Otherwise each pending
batch's records are checked: a record goes when any of its values hashes to a suppressed
key, or when its conversation is suppressed or belongs to a record that goes in the same
load. The batch is rewritten without them (`batches.rewrite`), so what loads, and what
stays on disk, never holds the person again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from connectors.core.landing import Manifest
from csw.privacy import batches
from csw.privacy.identity import (
    CRM,
    PERSON_NAMESPACE,
    Person,
    conversation_hash,
    get_path,
    hash_customer,
    leaves,
    rule,
    strip_prefix,
)
from csw.settings import data_dir

log = logging.getLogger("csw.privacy")

_CHECKED: set[tuple[str, str, int]] = set()  # (batch id, sha256, list size) already filtered


def suppression_path() -> Path:
    return data_dir() / "privacy" / "suppressed.json"


@dataclass
class Suppression:
    keys: set[str] = field(default_factory=set)
    conversations: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.keys) + len(self.conversations)

    def names(self, platform: str, record: dict) -> bool:
        """Does a value of the record hash to a suppressed customer or person key?"""
        namespace = PERSON_NAMESPACE if platform == CRM else platform
        for leaf in leaves(record):
            if hash_customer(namespace, strip_prefix(platform, leaf)) in self.keys:
                return True
        if platform == CRM and record.get("channel") and record.get("platform_user_id"):
            channel = str(record["channel"])
            value = strip_prefix(channel, str(record["platform_user_id"]))
            return hash_customer(channel, value) in self.keys
        return False


def load() -> Suppression:
    path = suppression_path()
    if not path.exists():
        return Suppression()
    data = json.loads(path.read_text())
    return Suppression(set(data.get("keys", [])), set(data.get("conversations", [])))


def add(person: Person) -> Suppression:
    """Add a person's keys and conversation keys to the list (atomic write)."""
    current = load()
    current.keys |= person.keys()
    current.conversations |= person.conversation_keys()
    path = suppression_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "note": "Salted hashes of forgotten customers (csw privacy forget); never the ids in clear.",
                "keys": sorted(current.keys),
                "conversations": sorted(current.conversations),
            },
            indent=1,
        )
    )
    os.replace(tmp, path)
    _CHECKED.clear()
    return current


def filter_pending(items: list[tuple[Path, Manifest]]) -> list[tuple[Path, Manifest]]:
    """Rewrite pending batches without suppressed persons' records (the loader's hook)."""
    suppressed = load()
    if not len(suppressed):
        return items
    todo = [(d, m) for d, m in items if (m.batch_id, m.sha256, len(suppressed)) not in _CHECKED]
    by_platform: dict[str, list[tuple[Path, Manifest]]] = {}
    for directory, manifest in todo:
        by_platform.setdefault(manifest.platform, []).append((directory, manifest))
    dropped = 0
    for platform, group in by_platform.items():
        dropped += _filter_platform(platform, group, suppressed)
    for _, manifest in todo:
        _CHECKED.add((manifest.batch_id, manifest.sha256, len(suppressed)))
    if dropped:
        log.info("suppression list: %s record(s) of forgotten customers dropped before loading", dropped)
    return items


def _filter_platform(platform: str, group: Iterable[tuple[Path, Manifest]], suppressed: Suppression) -> int:
    loaded = []
    conversations: set[str] = set()
    for directory, manifest in group:
        rows = batches.load(directory, manifest)
        table = f"{platform}__{manifest.stream}"
        if rows is None:
            continue  # unreadable or altered: the loader quarantines it
        fields = rule(table)
        for _, record in rows:
            if fields and fields.conversation and suppressed.names(platform, record):
                conv = get_path(record, fields.conversation)
                if conv is not None:
                    conversations.add(str(conv))
        loaded.append((directory, manifest, rows, fields))

    def drop(fields, record) -> bool:
        if fields and fields.conversation:
            conv = get_path(record, fields.conversation)
            if conv is not None and (
                str(conv) in conversations
                or conversation_hash(platform, str(conv)) in suppressed.conversations
            ):
                return True
        return suppressed.names(platform, record)

    return sum(
        batches.rewrite(directory, manifest, rows, lambda r, f=fields: drop(f, r))
        for directory, manifest, rows, fields in loaded
    )
