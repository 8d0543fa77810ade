"""Compare a sandbox response with a golden sample: same keys, nesting and JSON types.

Values are never compared. The rules, kept small on purpose:

- A dict must have exactly the golden dict's keys (no missing, no extra key).
- A list: every item must fit the items of the golden list taken together. When the
  golden list holds several dicts (a WeCom text message and an event, a rated and an
  unrated Zendesk ticket), their keys are merged: a key present in every golden item is
  required, a key present in some of them is optional, nothing else is allowed. An empty
  golden list accepts any list.
- `optional=("key", ...)` lets the named keys be missing wherever they occur, for fields the
  docs say are returned only in some cases (WeCom's `msg_code` only for some change_types).
- Scalars: `int` must be an int (a bool is not), `float` accepts any number, `str` and
  `bool` must match. A golden `null` says "nullable, type not shown" and accepts anything.

Usage:

    from golden_check import assert_golden_shape  # tests/ is on sys.path under pytest
    assert_golden_shape(resp.json(), "wecom", "kf_sync_msg")

or `shape_errors(golden, actual)` for the list of differences (empty when they agree).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"


@cache
def load_golden(platform: str, name: str) -> dict:
    """The whole golden file `tests/golden/<platform>/<name>.json`."""
    return json.loads((GOLDEN_DIR / platform / f"{name}.json").read_text(encoding="utf-8"))


def golden_response(platform: str, name: str) -> Any:
    """The golden response body (a dict, or a string for plain-text bodies)."""
    return load_golden(platform, name)["response"]


@dataclass
class _Schema:
    """What the golden values seen at one place allow."""

    nullable_any: bool = False  # a golden null: anything goes
    scalars: set = field(default_factory=set)  # "int" | "float" | "str" | "bool"
    dict_required: set | None = None  # None: no dict seen
    dict_props: dict = field(default_factory=dict)  # key -> _Schema
    list_items: _Schema | None = None
    list_seen: bool = False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _schema(values: list[Any]) -> _Schema:
    s = _Schema()
    dicts = [v for v in values if isinstance(v, dict)]
    lists = [v for v in values if isinstance(v, list)]
    for v in values:
        k = _kind(v)
        if k == "null":
            s.nullable_any = True
        elif k not in ("dict", "list"):
            s.scalars.add(k)
    if dicts:
        keys = [set(d) for d in dicts]
        s.dict_required = set.intersection(*keys)
        for key in set.union(*keys):
            s.dict_props[key] = _schema([d[key] for d in dicts if key in d])
    if lists:
        s.list_seen = True
        items = [item for lst in lists for item in lst]
        s.list_items = _schema(items) if items else None
    return s


def _check(s: _Schema, actual: Any, path: str, errors: list[str], optional: frozenset = frozenset()) -> None:
    if s.nullable_any:
        return
    k = _kind(actual)
    if k == "dict":
        if s.dict_required is None:
            errors.append(f"{path}: got an object, golden has {_expected(s)}")
            return
        missing = s.dict_required - set(actual) - optional
        extra = set(actual) - set(s.dict_props)
        for key in sorted(missing):
            errors.append(f"{path}: missing key {key!r}")
        for key in sorted(extra):
            errors.append(f"{path}: unexpected key {key!r}")
        for key, value in actual.items():
            if key in s.dict_props:
                _check(s.dict_props[key], value, f"{path}.{key}", errors, optional)
        return
    if k == "list":
        if not s.list_seen:
            errors.append(f"{path}: got a list, golden has {_expected(s)}")
            return
        if s.list_items is not None:
            for i, item in enumerate(actual):
                _check(s.list_items, item, f"{path}[{i}]", errors, optional)
        return
    if k in s.scalars or (k == "int" and "float" in s.scalars):
        return
    errors.append(f"{path}: got {k} {actual!r:.60}, golden has {_expected(s)}")


def _expected(s: _Schema) -> str:
    kinds = sorted(s.scalars)
    if s.dict_required is not None:
        kinds.append("object")
    if s.list_seen:
        kinds.append("list")
    return " | ".join(kinds) or "nothing"


def shape_errors(golden: Any, actual: Any, path: str = "$", optional: Iterable[str] = ()) -> list[str]:
    """Every difference of keys, nesting or JSON type between `actual` and `golden`.

    `optional` names keys that may be missing wherever they occur: documented cases where the
    platform leaves a field out (say so in the test), never a way to hide a real difference."""
    errors: list[str] = []
    _check(_schema([golden]), actual, path, errors, frozenset(optional))
    return errors


def assert_golden_shape(
    actual: Any, platform: str, name: str, optional: Iterable[str] = (), max_shown: int = 15
) -> None:
    """Fail with the first differences when `actual` does not have the golden's shape."""
    errors = shape_errors(golden_response(platform, name), actual, optional=optional)
    if errors:
        shown = "\n  ".join(errors[:max_shown])
        more = f"\n  ... and {len(errors) - max_shown} more" if len(errors) > max_shown else ""
        raise AssertionError(f"response differs from golden {platform}/{name}:\n  {shown}{more}")
