"""No raw identifier in validation results or Data Docs (DESIGN §11).

An expectation on an identifier column (a record key, an open id, a buyer nick, a hashed
customer key) carries `meta: {"identifier": true}` in its suite. For those expectations the
lists of unexpected values are removed:

- in every validation result the store writes (`IdentifierSafeValidationResultsStore`, named
  in `gx/great_expectations.yml`), so Data Docs, which render from the store, never see them;
- in the gates' own summaries (`scrub_result`), before anything is printed or logged.

Besides, the gates never hand GX a raw identifier: identifier columns are pseudonymised
(replaced by per-batch integer codes) before validation, so even an unscrubbed result would
hold only meaningless numbers.
"""

from __future__ import annotations

from typing import Any

from great_expectations.data_context.store import ValidationResultsStore

# result keys that list values or point at rows
UNEXPECTED_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
    "unexpected_rows",
    "details",
)
HIDDEN_NOTE = "values hidden: identifier column"


def is_identifier(meta: Any) -> bool:
    return bool(isinstance(meta, dict) and meta.get("identifier"))


def scrub_result_dict(result: dict) -> dict:
    """Remove unexpected-value lists of identifier expectations from a suite result dict (in place)."""
    for item in result.get("results") or []:
        config = item.get("expectation_config") or {}
        if is_identifier(config.get("meta")):
            values = item.get("result") or {}
            for key in UNEXPECTED_KEYS:
                values.pop(key, None)
    return result


def scrub_result(result) -> None:
    """The same on an `ExpectationSuiteValidationResult` object (in place)."""
    for item in result.results:
        if is_identifier(item.expectation_config.meta):
            for key in UNEXPECTED_KEYS:
                item.result.pop(key, None)


class IdentifierSafeValidationResultsStore(ValidationResultsStore):
    """A ValidationResultsStore that never writes unexpected values of identifier columns."""

    def serialize(self, value):  # type: ignore[override]
        if self.cloud_mode:  # pragma: no cover - the project has no GX Cloud
            return scrub_result_dict(value.to_json_dict())
        return self._expectationSuiteValidationResultSchema.dumps(
            scrub_result_dict(value.to_json_dict()), indent=2, sort_keys=True
        )
