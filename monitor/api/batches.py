"""`POST /v1/outputs` (role `ingest`) and `POST /v1/labels` (role `review`): a batch, whole or nothing.

The body is a JSON array of records (CONTRACT sections 1 and 2). Every record is validated
with `monitor.records`; labels must name a stored output. If any record is bad, the answer is
422 with every bad record's index and field, and nothing of the batch is stored. Otherwise the
batch is written in one transaction with the same functions `aiqm ingest` uses, and the answer
counts what was stored and what was already there (a batch sent again stores nothing new).

Limits: a body over `server.max_body_bytes` is 413, and so is a batch of more than
`server.max_batch` records (split it and send the parts; the records themselves are fine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from monitor.api.auth import Principal, require
from monitor.api.openapi import AUTH, STORE, request_body
from monitor.api.schemas import BatchErrors, BatchResult, LabelIn, OutputIn, TooLarge
from monitor.daemon.services import Services
from monitor.errors import InputError
from monitor.intake.privacy import storage_redaction
from monitor.records import LabelRecord, OutputRecord, loads, validate_label, validate_output
from monitor.store.writes import insert_labels, insert_outputs, missing_outputs

__all__ = ["BodyTooLarge", "read_body", "router"]


class BodyTooLarge(Exception):
    """The request's body is over the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refusing (BodyTooLarge) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(index: int | None, field: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": field, "message": message}


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=422)


def _too_large(message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=413)


def _decode(body: bytes, services: Services, what: str) -> list[Any] | JSONResponse:
    """The body's JSON array, or the answer refusing it."""
    try:
        items = loads(body)
    except InputError as exc:
        return _unprocessable([_error(None, "", f"the body is not JSON: {exc.message}")])
    if not isinstance(items, list):
        return _unprocessable([_error(None, "", f"the body must be a JSON array of {what}")])
    limit = services.settings.server.max_batch
    if len(items) > limit:
        return _too_large(f"a batch of {len(items)} {what}; at most {limit} per request, send it in parts")
    return items


def _validate(items: Sequence[Any], validate: Callable[[Any], Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    records: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            records.append((index, validate(item)))
        except InputError as exc:
            errors.append(_error(index, exc.field, exc.message))
    return records, errors


def store_outputs(services: Services, items: Sequence[Any]) -> JSONResponse:
    """Validate and store a batch of outputs (a worker thread runs this)."""
    indexed, errors = _validate(items, validate_output)
    if errors:
        return _unprocessable(errors)
    records: list[OutputRecord] = [record for _, record in indexed]
    redact = storage_redaction(services.settings)
    if redact is not None:
        records = [redact(record) for record in records]
    with services.engine.begin() as conn:
        counts = insert_outputs(conn, records, services.clock())
    if services.scheduler is not None and records:
        # The batch is stored: registering its new features' jobs never fails this answer
        # (`ensure` logs its own failures, and the leader's next sync tries again).
        services.scheduler.ensure({record.feature for record in records})
    return JSONResponse({"received": len(records), "stored": counts.stored, "duplicates": counts.duplicates})


def store_labels(services: Services, items: Sequence[Any]) -> JSONResponse:
    """Validate and store a batch of labels; a label whose output is not stored is a bad record."""
    indexed, errors = _validate(items, validate_label)
    records: list[LabelRecord] = [record for _, record in indexed]
    with services.engine.begin() as conn:
        for position in missing_outputs(conn, records):
            index, record = indexed[position]
            errors.append(
                _error(
                    index,
                    "output_id",
                    f"no stored output {record.output_id!r} in feature {record.feature!r}",
                )
            )
        if errors:
            conn.rollback()
            errors.sort(key=lambda e: e["index"])
            return _unprocessable(errors)
        counts = insert_labels(conn, records, services.clock())
    return JSONResponse(
        {
            "received": len(records),
            "stored": counts.stored,
            "duplicates": counts.duplicates,
            "replaced": counts.replaced,
        }
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH,
    **STORE,
    413: {"model": TooLarge, "description": "body over max_body_bytes, or more than max_batch records"},
    422: {"model": BatchErrors, "description": "every bad record by index and field; nothing stored"},
}


async def _receive(
    request: Request,
    services: Services,
    what: str,
    store: Callable[[Services, Sequence[Any]], JSONResponse],
) -> JSONResponse:
    """Read the body within its limit, decode the array, then validate and store it off the event loop."""
    try:
        body = await read_body(request, services.settings.server.max_body_bytes)
    except BodyTooLarge as exc:
        return _too_large(str(exc))
    items = await run_in_threadpool(_decode, body, services, what)
    if isinstance(items, JSONResponse):
        return items
    return await run_in_threadpool(store, services, items)


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["records"])

    @routes.post(
        "/v1/outputs",
        response_model=BatchResult,
        responses=_RESPONSES,
        openapi_extra=request_body(OutputIn, array=True),
        summary="Store a batch of logged outputs (all or nothing)",
    )
    async def post_outputs(
        request: Request, _caller: Annotated[Principal, Depends(require("ingest"))]
    ) -> JSONResponse:
        return await _receive(request, services, "outputs", store_outputs)

    @routes.post(
        "/v1/labels",
        response_model=BatchResult,
        responses=_RESPONSES,
        openapi_extra=request_body(LabelIn, array=True),
        summary="Store a batch of labels (all or nothing)",
    )
    async def post_labels(
        request: Request, _caller: Annotated[Principal, Depends(require("review"))]
    ) -> JSONResponse:
        return await _receive(request, services, "labels", store_labels)

    return routes
