"""OTLP requests built from the official protobuf messages, for the receiver's tests and the benchmark."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def value(item: Any) -> AnyValue:
    if isinstance(item, bool):
        return AnyValue(bool_value=item)
    if isinstance(item, int):
        return AnyValue(int_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    if isinstance(item, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(kv(item))
        return out
    if isinstance(item, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(value(inner) for inner in item)
        return out
    return AnyValue(string_value=str(item))


def kv(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in attrs.items()]


def nanos(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def span_id(index: int) -> bytes:
    return index.to_bytes(8, "big")


def span(
    index: int,
    start: datetime,
    millis: float,
    attrs: Mapping[str, Any],
    *,
    name: str = "chat gpt-4o-mini",
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
    trace: bytes = TRACE,
) -> Span:
    begin = nanos(start)
    out = Span(
        trace_id=trace,
        span_id=span_id(index),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=begin,
        end_time_unix_nano=begin + int(millis * 1_000_000),
    )
    out.attributes.extend(kv(attrs))
    for event_name, event_attrs in events:
        event = out.events.add(name=event_name, time_unix_nano=begin)
        event.attributes.extend(kv(event_attrs))
    return out


def traces(spans: Sequence[Span], resource: Mapping[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(kv(resource))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "test"
    scope.spans.extend(spans)
    return request


def log_record(
    index: int, at: datetime, event: str, body: Any = None, attrs: Mapping[str, Any] | None = None
) -> LogRecord:
    record = LogRecord(time_unix_nano=nanos(at), trace_id=TRACE, span_id=span_id(index), event_name=event)
    record.attributes.extend(kv(attrs or {}))
    if body is not None:
        record.body.CopyFrom(value(body))
    return record


def logs(records: Sequence[LogRecord], resource: Mapping[str, Any]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(kv(resource))
    resource_logs.scope_logs.add().log_records.extend(records)
    return request


def _hex_ids(doc: Any) -> Any:
    """protobuf's JSON (base64 ids) as OTLP/JSON (hex ids)."""
    import base64

    if isinstance(doc, dict):
        return {
            key: base64.b64decode(item).hex()
            if key in ("traceId", "spanId", "parentSpanId")
            else _hex_ids(item)
            for key, item in doc.items()
        }
    if isinstance(doc, list):
        return [_hex_ids(item) for item in doc]
    return doc


def otlp_json(request: ExportTraceServiceRequest | ExportLogsServiceRequest) -> bytes:
    """The request in OTLP/JSON: hex ids, 64-bit integers as strings, lowerCamelCase keys."""
    return json.dumps(_hex_ids(MessageToDict(request))).encode()


def chat_attrs(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    """A chat call's span attributes in the current GenAI semantic conventions."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-07-18",
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Where is my parcel?"}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "It ships tomorrow."}],
                    "finish_reason": "stop",
                }
            ]
        ),
        **extra,
    }
