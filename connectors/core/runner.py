"""Extraction: resume each stream from its newest landed manifest, fetch, land batches.

Cursor rules (DESIGN §6):
- server cursor: stored exactly as received; the next run resumes from it;
- time window: resume from the last window's end minus the stream's look-back (late
  updates), in chunks no longer than the API allows, up to `until` (the Airflow data
  interval end, or now); the boundary is inclusive and records are de-duplicated on key;
- snapshot: the whole list each run;
- a page cap (`max_pages`) stops a run early; the next run restarts from the bookmark.

When the API is unavailable (switched off, forbidden, or failing after every retry) and
the platform has a console scraper, the same window is fetched by the scraper; the batch
is marked `source=scrape` and an event says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from connectors.core.http import ApiUnavailable, RetryPolicy
from connectors.core.landing import latest_manifest, manifests, read_records, write_batch
from connectors.core.streams import Page, Stream, StreamEvents, Window

log = logging.getLogger("connectors.runner")


class PlatformConnector:
    """Base of platform modules' connectors. Subclasses set `name`, `streams` and
    implement `fetch(stream, cursor, window)` yielding `Page`s."""

    name: str = ""
    streams: dict[str, Stream] = {}

    def __init__(self, config):
        self.config = config
        self.policy = RetryPolicy(
            attempts=int(config.get("retry_attempts", 8)),
            read_timeout_s=float(config.get("read_timeout_s", 20)),
            connect_timeout_s=float(config.get("connect_timeout_s", 5)),
        )

    def page_size(self, maximum: int) -> int:
        """Records per request: the API's maximum unless `page_size` is configured lower."""
        return max(1, min(int(self.config.get("page_size", maximum)), maximum))

    def fetch(self, stream: Stream, cursor: Any, window: Window) -> Iterator[Page]:
        raise NotImplementedError

    def scraper(self):
        """The console scraper of this platform, or None."""
        return None


@dataclass
class ExtractResult:
    platform: str
    stream: str
    batches: int = 0
    rows: int = 0
    source: str = "api"
    cursor_after: Any = None
    events: list[dict] = field(default_factory=list)
    pages: int = 0


def record_key(record: dict, fields: tuple[str, ...]) -> str | None:
    parts = []
    for f in fields:
        value: Any = record
        for part in f.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
        parts.append(str(value))
    return "|".join(parts)


def dedupe(records: list[dict], stream: Stream) -> list[dict]:
    """Keep the last copy of each key (a later copy is the newer version); records with
    no key are kept so that the loader quarantines them with a reason."""
    if len(stream.primary_key) == 1 and "." not in stream.primary_key[0]:
        key = stream.primary_key[0]
        keys = [r.get(key) if isinstance(r, dict) else None for r in records]
        distinct = set(keys)
        if len(distinct) == len(keys) and None not in distinct:
            return records  # the common case: nothing to drop
    seen: dict[str, int] = {}
    out: list[dict] = []
    for r in records:
        key = record_key(r, stream.primary_key)
        if key is None:
            out.append(r)
        elif key in seen:
            out[seen[key]] = r
        else:
            seen[key] = len(out)
            out.append(r)
    return out


def _ts(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# -- a look-back re-reads rows on purpose; those already landed unchanged need not land again
RECENT_BATCHES = 64  # how many of a stream's newest batches a re-read is compared against


def _digest(record: dict) -> bytes:
    return hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def _overlaps(batch_window: dict | None, window: Window) -> bool:
    if not batch_window:
        return False
    since, until = pd.Timestamp(batch_window["since"]), pd.Timestamp(batch_window["until"])
    return since < window.until and until > window.since


def landed_versions(platform: str, stream: Stream, window: Window) -> dict[str, bytes]:
    """Key -> digest of the newest landed version, over the stream's newest landed batches
    whose window overlaps `window` (quarantined batches are not landed, so never count)."""
    recent = manifests(platform, stream.name)[-RECENT_BATCHES:]
    versions: dict[str, bytes] = {}
    for directory, manifest in recent:
        if not _overlaps(manifest.window, window):
            continue
        try:
            records = read_records(directory, manifest)
        except (OSError, ValueError) as exc:  # unreadable: compare nothing against it
            log.warning("%s.%s: batch %s not compared (%s)", platform, stream.name, manifest.batch_id, exc)
            continue
        for record in records:
            key = record_key(record, stream.primary_key)
            if key is not None:
                versions[key] = _digest(record)
    return versions


def drop_landed_unchanged(
    platform: str, stream: Stream, window: Window, pages: Iterable[Page]
) -> Iterator[Page]:
    """The pages of a window without the rows already landed exactly as they are now: the
    look-back re-reads rows to catch late and changed ones; unchanged ones need not land twice."""
    versions = landed_versions(platform, stream, window) if stream.cursor == "time_window" else {}
    dropped = 0
    for page in pages:
        if versions:
            kept = [
                r for r in page.records if versions.get(record_key(r, stream.primary_key) or "") != _digest(r)
            ]
            dropped += len(page.records) - len(kept)
            page = Page(kept, page.cursor_after, page.done, page.source)
        yield page
    if dropped:
        log.info(
            "%s.%s: %d re-read row(s) already landed unchanged, not landed again",
            platform,
            stream.name,
            dropped,
        )


def plan_windows(stream: Stream, since: pd.Timestamp, until: pd.Timestamp) -> list[Window]:
    out = []
    start = since
    while start < until:
        end = min(start + pd.Timedelta(stream.max_window), until)
        out.append(Window(start, end))
        start = end
    return out


def extract(
    connector: PlatformConnector,
    stream: Stream,
    until,
    since=None,
    initial_history: dt.timedelta = dt.timedelta(days=7),
    max_pages: int | None = None,
    on_page: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Extract one stream up to `until` and land its batches."""
    until = _ts(until)
    result = ExtractResult(connector.name, stream.name)
    latest = latest_manifest(connector.name, stream.name)
    events = StreamEvents()
    if stream.cursor == "time_window":
        if since is not None:
            start = _ts(since)
        elif latest and latest.window:
            start = _ts(latest.window["until"]) - pd.Timedelta(stream.lookback)
        else:
            start = until - pd.Timedelta(initial_history)
        if latest is None and stream.initial_history is not None:
            start = min(start, until - pd.Timedelta(stream.initial_history))
        if stream.retention is not None and start < until - pd.Timedelta(stream.retention):
            events.add(
                "cursor_beyond_retention",
                "warning",
                f"{connector.name}.{stream.name}: resuming from {start:%Y-%m-%d %H:%M} but the API keeps only "
                f"{stream.retention}; older data must come from the console export (backfill)",
            )
            start = until - pd.Timedelta(stream.retention)
        with _Lander(connector, stream, result) as lander:
            for window in plan_windows(stream, start, until):
                if max_pages is not None and result.pages >= max_pages:
                    break
                records, source = _fetch_window(connector, stream, None, window, events, result, on_page)
                lander.land(
                    records,
                    source,
                    latest.cursor_after if latest else None,
                    window.until.isoformat(),
                    window,
                    events,
                )
                events = StreamEvents()
        return result
    # server cursor and snapshot streams
    cursor = latest.cursor_after if (latest and stream.cursor == "server_cursor") else None
    if since is not None and stream.cursor == "server_cursor":
        cursor = None
    window = Window(_ts(since) if since is not None else until - pd.Timedelta(initial_history), until)
    if stream.retention is not None and latest is not None and stream.cursor == "server_cursor":
        age = until - _ts(latest.created_at)
        if age > pd.Timedelta(stream.retention) * 0.8:
            events.add(
                "cursor_near_retention",
                "warning",
                f"{connector.name}.{stream.name}: last sync was {age} ago, close to the API's "
                f"{stream.retention} retention; run ingest more often or backfill from the console",
            )
    if stream.cursor == "snapshot":
        records, source = _fetch_window(connector, stream, None, window, events, result, on_page)
        _land(connector, stream, records, source, None, None, window, events, result)
        return result
    with _Lander(connector, stream, result) as lander:
        try:
            for page in connector.fetch(stream, cursor, window):
                result.pages += 1
                if on_page:
                    on_page(len(page.records))
                lander.land(page.records, page.source, cursor, page.cursor_after, window, events)
                events = StreamEvents()
                cursor = page.cursor_after
                if page.done or (max_pages is not None and result.pages >= max_pages):
                    break
        except ApiUnavailable as exc:
            records = _scrape_instead(connector, stream, window, events, result, exc)
            lander.land(records, "scrape", cursor, cursor, window, events)
    return result


def _fetch_window(connector, stream, cursor, window, events, result, on_page) -> tuple[list[dict], str]:
    records: list[dict] = []
    source = "api"
    try:
        for page in connector.fetch(stream, cursor, window):
            result.pages += 1
            records.extend(page.records)
            source = "scrape" if page.source == "scrape" else source
            if on_page:
                on_page(len(page.records))
            if page.done:
                break
        return records, source
    except ApiUnavailable as exc:
        return _scrape_instead(connector, stream, window, events, result, exc), "scrape"


def _scrape_instead(connector, stream, window, events, result, exc: ApiUnavailable) -> list[dict]:
    """The window read from the console when the API is unavailable (re-raises without one)."""
    scraper = connector.scraper()
    if scraper is None:
        raise exc
    events.add(
        "fallback_used",
        "warning",
        f"{connector.name}.{stream.name}: API unavailable ({exc}); window "
        f"{window.since:%Y-%m-%d %H:%M}..{window.until:%Y-%m-%d %H:%M} read from the console instead",
    )
    log.warning("%s.%s: falling back to the console scraper: %s", connector.name, stream.name, exc)
    records = []
    for page in scraper.fetch(stream, window):
        result.pages += 1
        records.extend(page.records)
    return records


class _Lander:
    """Lands a stream's batches in order on one background thread, so that compressing and
    fsyncing a page overlaps fetching the next (both release the GIL). At most `ahead`
    batches wait; a landing error stops the extraction at the next page. `close()` waits
    for every batch: after it, `result` counts them all."""

    def __init__(self, connector, stream: Stream, result: ExtractResult, ahead: int = 4):
        self.connector, self.stream, self.result = connector, stream, result
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"land-{connector.name}")
        self._pending: deque[Future] = deque()
        self._ahead = ahead

    def land(self, records, source, cursor_before, cursor_after, window, events) -> None:
        while self._pending and (self._pending[0].done() or len(self._pending) >= self._ahead):
            self._pending.popleft().result()  # re-raises a landing error here
        self._pending.append(
            self._pool.submit(
                _land,
                self.connector,
                self.stream,
                records,
                source,
                cursor_before,
                cursor_after,
                window,
                events,
                self.result,
            )
        )

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> _Lander:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _land(connector, stream, records, source, cursor_before, cursor_after, window, events, result) -> None:
    records = dedupe(records, stream)
    manifest = write_batch(
        connector.name,
        stream.name,
        records,
        source=source,
        cursor_before=cursor_before,
        cursor_after=cursor_after,
        window=window.as_dict() if window else None,
        events=events.items,
    )
    result.batches += 1
    result.rows += manifest.row_count
    result.cursor_after = cursor_after
    result.events.extend(events.items)
    if source == "scrape":
        result.source = "scrape"
