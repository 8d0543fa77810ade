"""Quarantine, one concept with two grains (DESIGN §6):

- a bad record sits in `raw._quarantine` with its reason while its batch's good rows load;
- a structurally bad batch sits whole under `data/quarantine/<platform>/<stream>/` with a
  `<batch_id>.reason.json` beside it.

`entries()` lists both; `release()` puts them back after a fix: a batch moves back to
landing (the next load takes it, or quarantines it again if it is still bad); records are
re-checked against the current stream declaration and those that now pass load.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

from connectors.core.landing import MANIFEST_SUFFIX, Manifest
from connectors.core.loader import Loader, _key_sql, _reason_sql, _time_sql


@dataclass
class Entry:
    grain: str  # batch | record
    batch_id: str
    platform: str
    stream: str
    reason: str
    rows: int


def entries(loader: Loader) -> list[Entry]:
    out: list[Entry] = []
    for reason_file in sorted(loader.quarantine.glob("*/*/*.reason.json")):
        batch_id = reason_file.name.removesuffix(".reason.json")
        manifest_file = reason_file.parent / f"{batch_id}{MANIFEST_SUFFIX}"
        rows = Manifest.read(manifest_file).row_count if manifest_file.exists() else 0
        out.append(
            Entry(
                "batch",
                batch_id,
                reason_file.parent.parent.name,
                reason_file.parent.name,
                json.loads(reason_file.read_text())["reason"],
                rows,
            )
        )
    for batch_id, platform, stream, reason, n in loader.con.execute(
        """
        select batch_id, platform, stream, reason, count(*) from raw._quarantine
        where released_at is null group by all order by batch_id, reason
        """
    ).fetchall():
        out.append(Entry("record", batch_id, platform, stream, reason, n))
    return out


def release(loader: Loader, batch_id: str) -> dict:
    """Release a quarantined batch or the quarantined records of a batch."""
    for reason_file in loader.quarantine.glob(f"*/*/{batch_id}.reason.json"):
        platform, stream = reason_file.parent.parent.name, reason_file.parent.name
        target = loader.landing / platform / stream
        target.mkdir(parents=True, exist_ok=True)
        manifest = Manifest.read(reason_file.parent / f"{batch_id}{MANIFEST_SUFFIX}")
        # data first, manifest last: the batch reappears whole or not at all
        shutil.move(str(reason_file.parent / manifest.file), str(target / manifest.file))
        shutil.move(
            str(reason_file.parent / f"{batch_id}{MANIFEST_SUFFIX}"),
            str(target / f"{batch_id}{MANIFEST_SUFFIX}"),
        )
        reason_file.unlink()
        return {"grain": "batch", "batch_id": batch_id, "released": manifest.row_count}
    rows = loader.con.execute(
        "select distinct platform, stream from raw._quarantine where batch_id = ? and released_at is null",
        [batch_id],
    ).fetchall()
    if not rows:
        raise KeyError(f"nothing quarantined under batch {batch_id!r}; `csw quarantine list` shows what is")
    released = still_bad = 0
    for platform, stream_name in rows:
        stream = loader.streams[f"{platform}__{stream_name}"]
        table = loader._ensure_table(stream)
        con = loader.con
        con.execute("begin transaction")
        try:
            con.execute(
                f"""
                create or replace temp table _retry as
                select row_number, record as j, {_reason_sql(stream, "record")} as _reason
                from raw._quarantine
                where batch_id = ? and platform = ? and stream = ? and released_at is null
                """,
                [batch_id, platform, stream_name],
            )
            source = con.execute("select source from raw._batches where batch_id = ?", [batch_id]).fetchone()
            con.execute(
                f"""
                insert into {table}
                select {_key_sql(stream)}, md5(j::varchar), {_time_sql(stream)}, ?, ?, now(), row_number, j
                from _retry r where _reason is null and not exists (
                    select 1 from {table} t
                    where t._record_key = {_key_sql(stream, "r.j")} and t._record_hash = md5(r.j::varchar)
                )
                """,
                [batch_id, source[0] if source else "api"],
            )
            n_ok, n_bad = con.execute(
                "select count(*) filter (where _reason is null), count(*) filter (where _reason is not null) from _retry"
            ).fetchone()
            con.execute(
                """
                update raw._quarantine set released_at = now()
                where batch_id = ? and platform = ? and stream = ?
                  and row_number in (select row_number from _retry where _reason is null)
                """,
                [batch_id, platform, stream_name],
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        released += n_ok
        still_bad += n_bad
    return {"grain": "record", "batch_id": batch_id, "released": released, "still_quarantined": still_bad}
