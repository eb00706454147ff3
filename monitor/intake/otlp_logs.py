"""OTLP log records to logged outputs and verdicts: the GenAI events sent as log records.

The older conventions send a call's prompt and completion as events (`gen_ai.user.message`,
`gen_ai.system.message`, `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`)
in the span's context; the current ones may send `gen_ai.client.inference.operation.details`
with the span's attributes. Each becomes (part of) the output `<trace id>-<span id>`: merged
with the span when both arrive in one request, and completed in the store when the span came
first (or completes it when it comes later). `gen_ai.evaluation.result` records are verdicts on
that span's output. Other log records are ignored and counted.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from monitor.config import OtlpSettings
from monitor.intake.otlp_common import (
    EVALUATION_EVENT,
    MESSAGE_EVENTS,
    Draft,
    EventMessages,
    LabelDraft,
    Mapped,
    Rejection,
    any_value,
    attributes,
    context_fields,
    evaluation_label,
    genai_fields,
    output_id,
    ts_of,
)

__all__ = ["DETAILS_EVENT", "map_logs"]

DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def _event_name(record: LogRecord, attrs: dict[str, Any]) -> str:
    name = record.event_name or attrs.get("event.name") or ""
    return name if isinstance(name, str) else ""


def _payload(record: LogRecord, attrs: dict[str, Any], limit: int, where: str) -> dict[str, Any]:
    """The event's fields: the body's (an object, or a text as `content`) over the attributes."""
    body = any_value(record.body, limit, f"{where} body") if record.HasField("body") else None
    told = {key: value for key, value in attrs.items() if key != "event.name"}
    if isinstance(body, dict):
        return {**told, **body}
    if body is not None:
        return {**told, "content": body}
    return told


class _Logs:
    """One request's log records, mapped."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self.mapped = Mapped()
        self.messages: dict[str, EventMessages] = {}

    def record(self, record: LogRecord, resource: dict[str, Any], where: str) -> None:
        limit = self.settings.max_attribute_chars
        attrs = attributes(record.attributes, limit, where)
        name = _event_name(record, attrs)
        if name not in MESSAGE_EVENTS and name not in (EVALUATION_EVENT, DETAILS_EVENT):
            self.mapped.ignored += 1
            return
        if not record.trace_id or not record.span_id:
            self.mapped.rejected.append(
                Rejection(where, f"{name} without a trace and span id (the span it tells of)")
            )
            return
        ident = output_id(record.trace_id, record.span_id)
        ts = ts_of(record.time_unix_nano) or ts_of(record.observed_time_unix_nano)
        payload = _payload(record, attrs, limit, where)
        if name == EVALUATION_EVENT:
            label = evaluation_label(attrs, payload, ident, where, ts)
            if isinstance(label, LabelDraft):
                self.mapped.labels.append(label)
            else:
                self.mapped.rejected.append(label)
            return
        draft = Draft(
            id=ident,
            where=f"log record of span {record.trace_id.hex()}/{record.span_id.hex()}",
            ts=ts,
            otel={"trace_id": record.trace_id.hex(), "span_id": record.span_id.hex()},
        )
        if name == DETAILS_EVENT:
            genai_fields(draft, payload, resource, self.settings)
        else:
            context_fields(draft, attrs, resource, self.settings)
            self.messages.setdefault(ident, EventMessages()).add(name, payload)
        self.mapped.add(draft)

    def done(self) -> Mapped:
        for ident, messages in self.messages.items():
            messages.fill(self.mapped.drafts[ident])
        return self.mapped


def map_logs(request: ExportLogsServiceRequest, settings: OtlpSettings) -> Mapped:
    """Every log record of the request: GenAI events as drafts and verdicts, others counted."""
    logs = _Logs(settings)
    limit = settings.max_attribute_chars
    for r, resource_logs in enumerate(request.resource_logs):
        resource = attributes(resource_logs.resource.attributes, limit, f"resourceLogs[{r}].resource")
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            for i, record in enumerate(scope_logs.log_records):
                logs.mapped.items += 1
                logs.record(record, resource, f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]")
    return logs.done()
