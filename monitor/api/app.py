"""The FastAPI app: CONTRACT section 4's routes over the daemon's `Services`.

`create_app(services)` builds it; `monitor.daemon.app` (the composition root) builds the services and
serves it. The app's lifespan starts the scheduler (when the services have one) and, on
shutdown, stops it, letting a running cycle finish. Errors never reach a client as a
traceback: a store that cannot be reached is 503, anything unexpected 500 with no details.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from http import HTTPStatus
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import monitor
from monitor.api import batches, features, ofrep, openapi, otlp
from monitor.api import metrics as metrics_route
from monitor.api.problems import ApiError, allowed_methods
from monitor.api.quality import router as quality_router
from monitor.api.review import router as review_router
from monitor.daemon.services import Services
from monitor.store.health_queries import ping

__all__ = ["create_app", "readiness"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
The ai-quality-monitor daemon. Authenticate with `Authorization: Bearer <token>`; tokens have
one role (`ingest`, `review`, `read`, `admin`; `admin` may do everything). A missing or unknown
token is 401, a token whose role may not do this 403. Batches of records are stored whole or
not at all: 422 lists every bad record by index and field. Bodies over the size limit and
batches over the record limit are 413.
"""


class BodyLimit:
    """Refuses (413) a request whose declared Content-Length is over the limit, before reading it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = JSONResponse(
                        {"detail": f"the body is larger than {self.limit} bytes"}, status_code=413
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts)


def create_app(services: Services) -> FastAPI:
    """The daemon's HTTP app over `services` (which `require` finds on `app.state.services`)."""
    app = FastAPI(
        title="ai-quality-monitor",
        version=monitor.__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(services),
    )
    app.state.services = services
    app.add_middleware(BodyLimit, limit=services.settings.server.max_body_bytes)
    _add_error_handlers(app)
    _add_health_routes(app, services)
    app.include_router(batches.router(services))
    app.include_router(otlp.router(services))
    app.include_router(features.router(services))
    app.include_router(ofrep.router(services))
    app.include_router(metrics_route.router(services))
    app.include_router(review_router(services), prefix="/review")
    app.include_router(quality_router(services), prefix="/quality")
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    return app


def _lifespan(services: Services) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Starts the scheduler (when the services have one not yet started) and, on shutdown, stops
    it, letting a running cycle finish."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler = services.scheduler
        started = False
        if scheduler is not None and not scheduler.active:
            await run_in_threadpool(scheduler.start)
            started = True
        try:
            yield
        finally:
            if started and scheduler is not None:
                log.info("stopping the scheduler (a running cycle finishes first)")
                await anyio.to_thread.run_sync(scheduler.shutdown, True)

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """No traceback reaches a client: a store that cannot be reached is 503, anything unexpected 500."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(app.router.routes, request.scope)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _store_down(_request: Request, exc: Exception) -> JSONResponse:
        log.error("store error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "the store is unavailable; try again"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)


def readiness(services: Services) -> JSONResponse:
    """Ready when the store answers and the scheduler runs (or stands by for the leadership)."""
    store = "ok"
    try:
        with services.engine.connect() as conn:
            ping(conn)
    except Exception as exc:
        log.warning("readiness: the store does not answer (%s)", type(exc).__name__)
        store = "unreachable"
    scheduler = services.scheduler
    running = "stopped"
    if scheduler is not None and scheduler.running:
        running = "running"
    elif scheduler is not None and scheduler.active:
        running = "standby"  # another replica leads; this one takes ingest and serves the API
    ready = store == "ok" and running != "stopped"
    leader = scheduler is not None and scheduler.leader
    return JSONResponse(
        {
            "status": "ready" if ready else "not ready",
            "store": store,
            "scheduler": running,
            "leader": leader,
        },
        status_code=200 if ready else 503,
    )


def _add_health_routes(app: FastAPI, services: Services) -> None:
    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the store answers and the scheduler runs (or stands by for the leadership)",
        responses={503: {"description": "not ready; the body says which part"}},
    )
    def readyz() -> JSONResponse:
        return readiness(services)
