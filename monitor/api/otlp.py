"""`POST /v1/traces` and `POST /v1/logs` (role `ingest`): OTLP/HTTP in, logged outputs stored.

Collectors and SDK exporters send `Authorization: Bearer <ingest token>` as a configured header.
The body is protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`), optionally
`Content-Encoding: gzip`. The answer is OTLP's `Export*ServiceResponse` in the request's
encoding: its partial success counts the rejected spans or log records and names the first
(non-GenAI telemetry is not rejected: it is ignored, and the message says how much). A body that
cannot be read is 400 (415 for a wrong content type, 413 past the size limits), with a message
in the body, and nothing of it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from monitor.api.auth import Principal, require
from monitor.api.batches import BodyTooLarge, read_body
from monitor.api.openapi import AUTH
from monitor.daemon.services import Services
from monitor.intake.otlp_common import Mapped
from monitor.intake.otlp_decode import (
    PROTOBUF,
    TOO_LARGE,
    BadBody,
    Encoding,
    decode_logs,
    decode_traces,
    encoding_of,
    inflate,
)
from monitor.intake.otlp_logs import map_logs
from monitor.intake.otlp_spans import map_traces
from monitor.intake.otlp_store import Stored, store_mapped
from monitor.intake.privacy import storage_redaction

__all__ = ["router"]

log = logging.getLogger(__name__)


def _status_body(status: int, message: str, encoding: Encoding) -> Response:
    """A refusal: OTLP's `Status` (code and message) in the request's encoding."""
    if encoding == "protobuf":
        from google.rpc.status_pb2 import Status

        return Response(
            Status(code=3, message=message).SerializeToString(), status_code=status, media_type=PROTOBUF
        )
    return JSONResponse({"code": 3, "message": message, "detail": message}, status_code=status)


def _answer(message: Message, encoding: Encoding) -> Response:
    if encoding == "protobuf":
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return JSONResponse(MessageToDict(message))


def _traces_response(stored: Stored) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if stored.rejected or stored.ignored:
        response.partial_success.rejected_spans = len(stored.rejected)
        response.partial_success.error_message = stored.message("spans")
    return response


def _logs_response(stored: Stored) -> ExportLogsServiceResponse:
    response = ExportLogsServiceResponse()
    if stored.rejected or stored.ignored:
        response.partial_success.rejected_log_records = len(stored.rejected)
        response.partial_success.error_message = stored.message("log records")
    return response


def _ingest(services: Services, body: bytes, encoding: Encoding, coding: str | None, kind: str) -> Stored:
    """Inflate, decode, map and store one request (a worker thread runs this); BadBody refuses it."""
    settings = services.settings
    raw = inflate(body, coding, settings.server.max_body_bytes)
    mapped: Mapped
    if kind == "traces":
        mapped = map_traces(decode_traces(raw, encoding), settings.otlp)
    else:
        mapped = map_logs(decode_logs(raw, encoding), settings.otlp)
    stored = store_mapped(services.engine, mapped, services.clock(), storage_redaction(settings))
    if services.scheduler is not None and stored.features:
        services.scheduler.ensure(stored.features)
    return stored


async def _receive(request: Request, services: Services, kind: str) -> Response:
    try:
        encoding = encoding_of(request.headers.get("content-type"))
    except BadBody as exc:
        return _status_body(exc.status, exc.message, "json")
    try:
        body = await read_body(request, services.settings.server.max_body_bytes)
        stored = await run_in_threadpool(
            _ingest, services, body, encoding, request.headers.get("content-encoding"), kind
        )
    except BodyTooLarge as exc:
        return _status_body(TOO_LARGE, str(exc), encoding)
    except BadBody as exc:
        return _status_body(exc.status, exc.message, encoding)
    if stored.rejected:
        log.info("OTLP %s: %d rejected; first: %s", kind, len(stored.rejected), stored.rejected[0].describe())
    make: Callable[[Stored], Message] = _traces_response if kind == "traces" else _logs_response
    return _answer(make(stored), encoding)


_STATUS = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["code", "message"],
}
"""OTLP's `Status` (a refusal), in JSON; in protobuf when the request was protobuf."""


def _refusal(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _STATUS}, PROTOBUF: {"schema": {"type": "string"}}},
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _refusal("a body that is not an OTLP request (truncated, bad ids, not JSON); nothing stored"),
    413: _refusal("a body or an attribute over the limits; nothing stored"),
    415: _refusal("a content type or encoding OTLP/HTTP does not have"),
}


def _request(records: str) -> dict[str, Any]:
    """The request body: an OTLP export request, as OTLP/JSON or protobuf (optionally gzip)."""
    json_body = {
        "type": "object",
        "properties": {records: {"type": ["array", "null"], "items": {"type": "object"}}},
        "description": f"OTLP/JSON: {{{records!r}: [...]}} (hex ids, camelCase keys, unknown keys ignored)",
    }
    binary = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": json_body}, PROTOBUF: {"schema": binary}},
        }
    }


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["opentelemetry"])

    @routes.post(
        "/v1/traces",
        responses={**_RESPONSES, **AUTH},
        openapi_extra=_request("resourceSpans"),
        summary="OTLP/HTTP traces: GenAI spans become logged outputs (partial success)",
    )
    async def post_traces(
        request: Request, _caller: Annotated[Principal, Depends(require("ingest"))]
    ) -> Response:
        return await _receive(request, services, "traces")

    @routes.post(
        "/v1/logs",
        responses={**_RESPONSES, **AUTH},
        openapi_extra=_request("resourceLogs"),
        summary="OTLP/HTTP logs: GenAI events complete outputs, evaluation results become labels",
    )
    async def post_logs(
        request: Request, _caller: Annotated[Principal, Depends(require("ingest"))]
    ) -> Response:
        return await _receive(request, services, "logs")

    return routes
