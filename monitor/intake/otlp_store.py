"""Storing what one OTLP request told: its outputs and verdicts, in one transaction.

Each draft is validated as a record (`monitor.records`); a draft that cannot be one, and a verdict
on an output that is not stored, is rejected and named (OTLP's partial success), the rest is
stored whole. Redaction applies as on every ingest path. A verdict's output is found by its id
(`<trace id>-<span id>`) among the outputs of this request and of the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from monitor.errors import InputError
from monitor.intake.otlp_common import LabelDraft, Mapped, Rejection, finish
from monitor.records import LabelRecord, OutputRecord, validate_label
from monitor.store.otlp_queries import complete_outputs, features_of
from monitor.store.writes import insert_labels, insert_outputs

__all__ = ["Stored", "store_mapped"]


@dataclass
class Stored:
    """What a request stored, and what it rejected or ignored."""

    items: int
    stored: int = 0
    completed: int = 0
    duplicates: int = 0
    labels: int = 0
    ignored: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    features: set[str] = field(default_factory=set)

    def message(self, what: str) -> str:
        """OTLP's error message: the first rejection (and how many more), or the ignored count."""
        if self.rejected:
            more = len(self.rejected) - 1
            return self.rejected[0].describe() + (f" (and {more} more)" if more else "")
        if self.ignored:
            return f"{self.ignored} {what} not GenAI operations were ignored"
        return ""


def _records(mapped: Mapped, rejected: list[Rejection]) -> list[OutputRecord]:
    records: list[OutputRecord] = []
    for draft in mapped.drafts.values():
        try:
            records.append(finish(draft))
        except InputError as exc:
            field_name = f"field {exc.field!r}: " if exc.field else ""
            rejected.append(Rejection(draft.where, field_name + exc.message))
    return records


def _label(draft: LabelDraft, feature: str) -> LabelRecord:
    raw: dict[str, object] = {
        "output_id": draft.output_id,
        "feature": feature,
        "verdict": draft.verdict,
        "source": f"judge:{draft.judge}",
    }
    if draft.score is not None:
        raw["score"] = draft.score
    if draft.reason is not None:
        raw["reason"] = draft.reason
    if draft.ts is not None:
        raw["ts"] = draft.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return validate_label(raw)


def _labels(
    drafts: list[LabelDraft], here: dict[str, str], stored: dict[str, list[str]], rejected: list[Rejection]
) -> list[LabelRecord]:
    records: list[LabelRecord] = []
    for draft in drafts:
        features = [here[draft.output_id]] if draft.output_id in here else stored.get(draft.output_id, [])
        if len(features) != 1:
            why = "no stored output" if not features else f"outputs in {len(features)} features"
            rejected.append(Rejection(draft.where, f"a verdict on {draft.output_id!r}, which has {why}"))
            continue
        try:
            records.append(_label(draft, features[0]))
        except InputError as exc:
            rejected.append(Rejection(draft.where, f"field {exc.field!r}: {exc.message}"))
    return records


def store_mapped(
    engine: Engine,
    mapped: Mapped,
    now: datetime,
    redact: Callable[[OutputRecord], OutputRecord] | None = None,
) -> Stored:
    """Validate, redact and store the request's outputs and verdicts in one transaction."""
    result = Stored(items=mapped.items, ignored=mapped.ignored, rejected=list(mapped.rejected))
    records = _records(mapped, result.rejected)
    if redact is not None:
        records = [redact(record) for record in records]
    here = {record.id: record.feature for record in records}
    with engine.begin() as conn:
        existing = complete_outputs(conn, records)
        new = [record for record in records if (record.feature, record.id) not in existing]
        counts = insert_outputs(conn, new, now) if new else None
        wanted = [d.output_id for d in mapped.labels if d.output_id not in here]
        label_records = _labels(
            mapped.labels, here, features_of(conn, wanted) if wanted else {}, result.rejected
        )
        if label_records:
            result.labels = insert_labels(conn, label_records, now).stored
    result.stored = counts.stored if counts is not None else 0
    result.duplicates = counts.duplicates if counts is not None else 0
    result.completed = len(records) - len(new)
    result.features = {record.feature for record in records}
    return result
