"""OTLP spans to logged outputs: a GenAI span is one output; other spans are ignored and counted.

A span is a GenAI span when it carries GenAI semantic-convention attributes (`gen_ai.*`) or is
an OpenInference `LLM` span. Its output's id is `<trace id>-<span id>` in hex, its time the
span's end, `signals.latency_ms` its duration; model, tokens, prompt and completion come from
the attributes (`monitor.intake.otlp_common.genai_fields`) or, in the older form, from the
span's `gen_ai.*.message` and `gen_ai.choice` events. Embedding calls are not outputs to
review and are ignored. `gen_ai.evaluation.result` events on any span are verdicts on it.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from monitor.config import OtlpSettings
from monitor.intake.otlp_common import (
    EVALUATION_EVENT,
    MESSAGE_EVENTS,
    NANOS_PER_MS,
    Draft,
    EventMessages,
    LabelDraft,
    Mapped,
    attributes,
    evaluation_label,
    genai_fields,
    output_id,
    ts_of,
)

__all__ = ["is_genai", "map_traces"]

NOT_OUTPUTS = frozenset({"embeddings"})  # gen_ai.operation.name values that produce nothing to review


def is_genai(attrs: dict[str, Any]) -> bool:
    """A GenAI operation's span (semantic conventions or OpenInference's LLM kind), not embeddings."""
    if attrs.get("gen_ai.operation.name") in NOT_OUTPUTS:
        return False
    if attrs.get("openinference.span.kind") == "LLM":
        return True
    return any(
        key.startswith(("gen_ai.request.", "gen_ai.operation.", "gen_ai.response.")) for key in attrs
    ) or ("gen_ai.system" in attrs or "gen_ai.provider.name" in attrs)


def _where(span: Span) -> str:
    return f"span {span.trace_id.hex()}/{span.span_id.hex()} ({span.name[:80]!r})"


def _span_events(span: Span, mapped: Mapped, ident: str, where: str, limit: int) -> EventMessages:
    """The span's message events gathered; its evaluation events added to `mapped` as verdicts."""
    messages = EventMessages()
    for index, event in enumerate(span.events):
        if event.name not in MESSAGE_EVENTS and event.name != EVALUATION_EVENT:
            continue
        attrs = attributes(event.attributes, limit, f"{where} event {index}")
        if event.name == EVALUATION_EVENT:
            label = evaluation_label(
                attrs, None, ident, f"{where} event {index}", ts_of(event.time_unix_nano)
            )
            if isinstance(label, LabelDraft):
                mapped.labels.append(label)
            else:
                mapped.rejected.append(label)
        else:
            messages.add(event.name, attrs)
    return messages


def _draft(span: Span, attrs: dict[str, Any], resource: dict[str, Any], settings: OtlpSettings) -> Draft:
    ident = output_id(span.trace_id, span.span_id)
    draft = Draft(
        id=ident,
        where=_where(span),
        ts=ts_of(span.end_time_unix_nano) or ts_of(span.start_time_unix_nano),
        otel={"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(), "span_name": span.name},
    )
    if span.end_time_unix_nano >= span.start_time_unix_nano > 0:
        draft.signals["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / NANOS_PER_MS
    genai_fields(draft, attrs, resource, settings)
    return draft


def map_traces(request: ExportTraceServiceRequest, settings: OtlpSettings) -> Mapped:
    """Every span of the request: GenAI spans as drafts, verdicts, and the count of the others."""
    mapped = Mapped()
    limit = settings.max_attribute_chars
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attributes(resource_spans.resource.attributes, limit, f"resourceSpans[{r}].resource")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                mapped.items += 1
                where = _where(span)
                attrs = attributes(span.attributes, limit, where)
                ident = output_id(span.trace_id, span.span_id)
                messages = _span_events(span, mapped, ident, where, limit)
                if not is_genai(attrs):
                    mapped.ignored += 1
                    continue
                draft = _draft(span, attrs, resource, settings)
                messages.fill(draft)
                mapped.add(draft)
    return mapped
