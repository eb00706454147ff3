"""The feature's mode as an OpenFeature flag, over OFREP (the Remote Evaluation Protocol).

`POST /ofrep/v1/evaluate/flags/{key}` evaluates the flag whose key is a feature's name: its
string value (and variant) is the feature's mode, `normal`, `review`, `fallback` or `off`. The
reason follows OpenFeature's resolution reasons:

- `STATIC`: a person set the mode by hand (an override); no rule was evaluated;
- `TARGETING_MATCH`: the mode is what the monitor's rules (the triggers of the last cycle) gave;
- `DEFAULT`: no cycle has run yet, the mode is the default `normal`.

(`DISABLED` is not used: an OpenFeature SDK may answer a disabled flag with the code default,
and a feature switched `off` must reach the app as `off`.) `metadata` carries why and since when.
An unknown feature is 404 `{"key", "errorCode": "FLAG_NOT_FOUND", "errorDetails"}`.

`POST /ofrep/v1/evaluate/flags` evaluates every feature at once (with an `ETag`; a matching
`If-None-Match` is 304), and `GET /ofrep/v1/configuration` tells providers what is supported.
The evaluation context is accepted and ignored: a feature's mode is the same for every user.
Role: `read` (the app reads its mode, as with the status endpoint).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from monitor.api.auth import Principal, require
from monitor.api.batches import BodyTooLarge, read_body
from monitor.api.features import polled_mode
from monitor.api.modes import FeatureMode, known_features, mode_of
from monitor.api.openapi import AUTH, STORE
from monitor.api.schemas import OfrepBulk, OfrepFailure, OfrepSuccess
from monitor.daemon.services import Services
from monitor.decide.modes import Source
from monitor.errors import InputError
from monitor.formats import format_ts
from monitor.records import loads

__all__ = ["evaluation", "router"]

REASONS: dict[Source, str] = {"override": "STATIC", "cycle": "TARGETING_MATCH", "default": "DEFAULT"}
POLL_MS = 30_000  # providers need not poll bulk evaluations more often: cycles are rare


def evaluation(found: FeatureMode) -> dict[str, Any]:
    """One flag's OFREP success body."""
    metadata: dict[str, Any] = {"reason": found.reason}
    if found.since is not None:
        metadata["since"] = format_ts(found.since)
    firing = sorted({t["trigger"] for t in found.triggers if t["state"] == "firing"})
    if firing:
        metadata["firing"] = ",".join(firing)
    return {
        "key": found.feature,
        "value": found.mode,
        "reason": REASONS[found.source],
        "variant": found.mode,
        "metadata": metadata,
    }


def _failure(status: int, key: str | None, code: str, details: str) -> JSONResponse:
    body: dict[str, Any] = {"errorCode": code, "errorDetails": details}
    if key is not None:
        body = {"key": key, **body}
    return JSONResponse(body, status_code=status)


async def _context_error(request: Request, services: Services, key: str | None) -> JSONResponse | None:
    """A 400 when the request body is not `{"context": {...}}` (or empty)."""
    try:
        body = await read_body(request, services.settings.server.max_body_bytes)
    except BodyTooLarge as exc:
        return _failure(413, key, "GENERAL", str(exc))
    if not body.strip():
        return None
    try:
        data = loads(body)
    except InputError as exc:
        return _failure(400, key, "PARSE_ERROR", f"the body is not JSON: {exc.message}")
    if not isinstance(data, dict) or not isinstance(data.get("context", {}), dict):
        return _failure(400, key, "INVALID_CONTEXT", 'the body must be {"context": {...}}')
    return None


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH,
    **STORE,
    400: {"model": OfrepFailure, "description": "the body is not an evaluation request"},
    413: {"model": OfrepFailure, "description": "the body is over server.max_body_bytes (`GENERAL`)"},
}
_ETAG = {
    "ETag": {"description": "the evaluations' version, for `If-None-Match`", "schema": {"type": "string"}}
}


def router(services: Services) -> APIRouter:
    routes = APIRouter(prefix="/ofrep/v1", tags=["OFREP"])

    @routes.post(
        "/evaluate/flags/{key}",
        response_model=OfrepSuccess,
        responses={**_RESPONSES, 404: {"model": OfrepFailure, "description": "FLAG_NOT_FOUND"}},
        summary="Evaluate one feature's mode as a string flag",
    )
    async def evaluate(
        key: str, request: Request, _caller: Annotated[Principal, Depends(require("read"))]
    ) -> JSONResponse:
        refused = await _context_error(request, services, key)
        if refused is not None:
            return refused
        found = await polled_mode(services, key)
        if found is None:
            return _failure(404, key, "FLAG_NOT_FOUND", f"no feature {key!r} is monitored")
        return JSONResponse(evaluation(found))

    @routes.post(
        "/evaluate/flags",
        response_model=OfrepBulk,
        responses={
            **_RESPONSES,
            200: {"description": "every feature's mode", "headers": _ETAG},
            304: {"description": "not modified since the ETag given", "headers": _ETAG},
        },
        summary="Evaluate every feature's mode",
    )
    async def evaluate_all(
        request: Request, _caller: Annotated[Principal, Depends(require("read"))]
    ) -> Response:
        refused = await _context_error(request, services, None)
        if refused is not None:
            return refused
        flags = await run_in_threadpool(_all, services)
        body = json.dumps({"flags": flags}, separators=(",", ":"), sort_keys=True).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
        if etag in wanted or f"W/{etag}" in wanted:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    @routes.get("/configuration", responses=AUTH, summary="What this OFREP server supports")
    def configuration(_caller: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
        return {
            "name": "ai-quality-monitor",
            "capabilities": {
                "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": POLL_MS}},
                "flagEvaluation": {"supportedTypes": ["string"]},
            },
        }

    return routes


def _all(services: Services) -> list[dict[str, Any]]:
    now = services.clock()
    with services.engine.connect() as conn:
        found = [
            mode_of(conn, services.settings, name, now) for name in known_features(conn, services.settings)
        ]
    return [evaluation(item) for item in found if item is not None]
