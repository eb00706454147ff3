"""OTLP/HTTP request bodies: protobuf or JSON, optionally gzip, decoded with `opentelemetry-proto`.

A body that cannot be read is a `BadBody` carrying the HTTP status it deserves: 415 for a
content type or encoding OTLP/HTTP does not have, 413 for a body that inflates past the limit,
400 for everything malformed (truncated protobuf or gzip, invalid JSON, trace and span ids of
the wrong length or not hex). Nothing is stored from a body that raises.

The JSON form follows OTLP's JSON mapping, which differs from protobuf's own JSON in one way:
trace and span ids are hex strings, not base64. They are turned into base64 before protobuf's
JSON parser sees them; 64-bit integers may be strings or numbers, keys lowerCamelCase (the
parser accepts snake_case too), and unknown fields are ignored as the specification asks.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import orjson
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = [
    "JSON",
    "PROTOBUF",
    "BadBody",
    "Encoding",
    "decode_logs",
    "decode_traces",
    "encoding_of",
    "inflate",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
Encoding = Literal["protobuf", "json"]
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
BAD_REQUEST = 400
TOO_LARGE = 413
UNSUPPORTED = 415

M = TypeVar("M", bound=Message)


class BadBody(Exception):
    """A body that is not a readable OTLP request; `status` is the HTTP answer (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def encoding_of(content_type: str | None) -> Encoding:
    """`protobuf` or `json` from the Content-Type header (parameters such as charset ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    raise BadBody(
        UNSUPPORTED,
        f"Content-Type {media or '(none)'!r} is not OTLP/HTTP: send {PROTOBUF} or {JSON}",
    )


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding (`gzip` or none), refusing more than `limit` bytes."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise BadBody(UNSUPPORTED, f"Content-Encoding {coding!r} is not supported: send gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadBody(BAD_REQUEST, f"the gzip body cannot be read: {exc}") from None
    if len(out) > limit:
        raise BadBody(TOO_LARGE, f"the body inflates to more than {limit} bytes")
    if not inflater.eof:
        raise BadBody(BAD_REQUEST, "the gzip body is truncated")
    return out


def _hex_to_b64(value: Any, field: str, size: int, where: str) -> str:
    if not isinstance(value, str):
        raise BadBody(BAD_REQUEST, f"{where}: {field} must be a hex string, got {type(value).__name__}")
    if value == "":
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadBody(BAD_REQUEST, f"{where}: {field} {value[:40]!r} is not hex") from None
    if len(raw) != size:
        raise BadBody(
            BAD_REQUEST, f"{where}: {field} {value[:40]!r} must be {size} bytes ({2 * size} hex digits)"
        )
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(items: Iterable[Any], where: str) -> None:
    """OTLP/JSON's hex ids, in place, as the base64 protobuf's JSON parser expects."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = f"{where}[{index}]"
        for field, size in (
            ("traceId", TRACE_ID_BYTES),
            ("trace_id", TRACE_ID_BYTES),
            ("spanId", SPAN_ID_BYTES),
            ("span_id", SPAN_ID_BYTES),
            ("parentSpanId", SPAN_ID_BYTES),
            ("parent_span_id", SPAN_ID_BYTES),
        ):
            if field in item:
                item[field] = _hex_to_b64(item[field], field, size, here)
        links = item.get("links")
        if isinstance(links, list):
            _fix_ids(links, f"{here}.links")


def _children(value: Any, *keys: str) -> list[Any]:
    """The list under the first of `keys` present (camelCase or snake_case), else []."""
    if isinstance(value, dict):
        for key in keys:
            found = value.get(key)
            if isinstance(found, list):
                return found
    return []


def _fix_trace_ids(doc: Any) -> None:
    for r, resource in enumerate(_children(doc, "resourceSpans", "resource_spans")):
        for s, scope in enumerate(_children(resource, "scopeSpans", "scope_spans")):
            _fix_ids(_children(scope, "spans"), f"resourceSpans[{r}].scopeSpans[{s}].spans")


def _fix_log_ids(doc: Any) -> None:
    for r, resource in enumerate(_children(doc, "resourceLogs", "resource_logs")):
        for s, scope in enumerate(_children(resource, "scopeLogs", "scope_logs")):
            _fix_ids(
                _children(scope, "logRecords", "log_records"), f"resourceLogs[{r}].scopeLogs[{s}].logRecords"
            )


def _from_json(body: bytes, message: M, fix: Any) -> M:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(BAD_REQUEST, f"the body is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise BadBody(BAD_REQUEST, "the body must be a JSON object (an OTLP export request)")
    _check_resources(doc)
    fix(doc)
    try:
        ParseDict(doc, message, ignore_unknown_fields=True, max_recursion_depth=64)
    except (ParseError, RecursionError) as exc:
        raise BadBody(BAD_REQUEST, f"the body is not an OTLP request: {exc}") from None
    return message


def _check_resources(doc: dict[str, Any]) -> None:
    """The request's list of resources holds objects (protobuf's JSON parser would take a string
    there for an empty message); null or absent is an empty request, as proto3 JSON has it."""
    for key in ("resourceSpans", "resourceLogs", "resource_spans", "resource_logs"):
        items = doc.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            raise BadBody(BAD_REQUEST, f"the body is not an OTLP request: {key!r} must be a list of objects")


def _from_protobuf(body: bytes, message: M) -> M:
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise BadBody(
            BAD_REQUEST, f"the protobuf body cannot be decoded (truncated or not OTLP): {exc}"
        ) from None
    return message


def _check_span_ids(request: ExportTraceServiceRequest) -> None:
    for r, resource in enumerate(request.resource_spans):
        for s, scope in enumerate(resource.scope_spans):
            for i, span in enumerate(scope.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                if len(span.trace_id) != TRACE_ID_BYTES:
                    raise BadBody(
                        BAD_REQUEST,
                        f"{where}: traceId must be {TRACE_ID_BYTES} bytes, got {len(span.trace_id)}",
                    )
                if len(span.span_id) != SPAN_ID_BYTES:
                    raise BadBody(
                        BAD_REQUEST, f"{where}: spanId must be {SPAN_ID_BYTES} bytes, got {len(span.span_id)}"
                    )


def _check_log_ids(request: ExportLogsServiceRequest) -> None:
    for r, resource in enumerate(request.resource_logs):
        for s, scope in enumerate(resource.scope_logs):
            for i, record in enumerate(scope.log_records):
                where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                if len(record.trace_id) not in (0, TRACE_ID_BYTES):
                    raise BadBody(BAD_REQUEST, f"{where}: traceId must be {TRACE_ID_BYTES} bytes or empty")
                if len(record.span_id) not in (0, SPAN_ID_BYTES):
                    raise BadBody(BAD_REQUEST, f"{where}: spanId must be {SPAN_ID_BYTES} bytes or empty")


def decode_traces(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """An `ExportTraceServiceRequest` from an (inflated) body, its ids checked."""
    message = ExportTraceServiceRequest()
    if encoding == "json":
        _from_json(body, message, _fix_trace_ids)
    else:
        _from_protobuf(body, message)
    _check_span_ids(message)
    return message


def decode_logs(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    """An `ExportLogsServiceRequest` from an (inflated) body, its ids checked."""
    message = ExportLogsServiceRequest()
    if encoding == "json":
        _from_json(body, message, _fix_log_ids)
    else:
        _from_protobuf(body, message)
    _check_log_ids(message)
    return message
