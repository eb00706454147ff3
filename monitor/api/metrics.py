"""`GET /metrics`: the Prometheus exposition of `monitor.metrics.exporter` (CONTRACT sections 4 and 6).

Open by default. With `server.metrics_token_sha256` set, a bearer token whose sha256 is that
hash may scrape; with `server.metrics_role` set, so may any API token of that role (or
`admin`). Then a missing or unknown token is 401 and a token of another role 403.

The body is the Prometheus text format 0.0.4 (`monitor.metrics.exporter.TextExposition`), which every
Prometheus reads. A store that cannot be read is `aiqm_store_up 0`, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Security
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.registry import CollectorRegistry

from monitor.api.schemas import Problem
from monitor.daemon.services import Services
from monitor.daemon.tokens import MAX_TOKEN_CHARS
from monitor.metrics.exporter import TextExposition, build_registry

__all__ = ["router"]

_bearer = HTTPBearer(auto_error=False, description="only when the config asks /metrics for a token")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _check(services: Services, credentials: HTTPAuthorizationCredentials | None) -> None:
    server = services.settings.server
    if not server.metrics_token_sha256 and server.metrics_role is None:
        return
    if credentials is None:
        raise _unauthorized("/metrics needs a bearer token (Authorization: Bearer <token>)")
    token = credentials.credentials
    if server.metrics_token_sha256 and len(token) <= MAX_TOKEN_CHARS:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        if hmac.compare_digest(digest.encode("ascii"), server.metrics_token_sha256.encode("ascii")):
            return
    if server.metrics_role is None:
        raise _unauthorized("unknown token")
    principal = services.tokens.lookup(token)
    if principal is None:
        raise _unauthorized("unknown or revoked token")
    if not principal.allows(server.metrics_role):
        raise HTTPException(status_code=403, detail=f"/metrics needs the {server.metrics_role} role")


_expositions: weakref.WeakKeyDictionary[CollectorRegistry, TextExposition] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def _exposition(services: Services) -> TextExposition:
    with _guard:
        if services.registry is None:  # Services built by hand (tests): the default exporter
            services.registry = build_registry(services.engine, services.settings, services.clock)
        exposition = _expositions.get(services.registry)
        if exposition is None:
            exposition = _expositions[services.registry] = TextExposition(services.registry)
        return exposition


def router(services: Services) -> APIRouter:
    """The route; it asks for a bearer token (and documents one) only when the config does."""
    routes = APIRouter(tags=["metrics"])
    server = services.settings.server
    guarded = bool(server.metrics_token_sha256) or server.metrics_role is not None
    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "the exposition"},
    }
    if guarded:
        responses[401] = {"model": Problem, "description": "no token, or an unknown one"}
        responses[403] = {"model": Problem, "description": "the token's role may not scrape"}

    def guard(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> None:
        _check(services, credentials)

    @routes.get(
        "/metrics",
        summary="Prometheus metrics (CONTRACT section 6)",
        response_class=Response,
        responses=responses,
        dependencies=[Depends(guard)] if guarded else [],
    )
    def metrics() -> Response:
        body = _exposition(services)()
        return Response(body, media_type=TextExposition.CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return routes
