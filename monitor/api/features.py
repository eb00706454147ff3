"""A feature's mode for the app, and the off switch.

`GET /v1/features/{feature}/status` (role `read`) is what the AI app polls to degrade
gracefully; `GET /v1/features` lists them all. `POST /v1/features/{feature}/override` (role
`admin`) sets the mode by hand with a reason and an optional `until`; the mode changes at once
(and every later cycle keeps it while the override lasts). `{"mode": null}` or
`DELETE /v1/features/{feature}/override` ends it: the triggers decide the mode again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from monitor.api.auth import Principal, require
from monitor.api.batches import BodyTooLarge, read_body
from monitor.api.modes import FeatureMode, known_features, mode_of
from monitor.api.openapi import AUTH, STORE, request_body
from monitor.api.problems import ApiError, unprocessable
from monitor.api.schemas import Errors, FeatureList, FeatureStatus, OverrideIn, Problem
from monitor.daemon.services import Services
from monitor.decide.modes import Facts, Override, resolve_mode, trigger_mode
from monitor.errors import InputError
from monitor.records import loads
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store.writes import ensure_feature

__all__ = ["router"]


def _not_found(feature: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no feature {feature!r}")


def read_mode(services: Services, feature: str) -> FeatureMode | None:
    """The feature's mode read from the store (None: an unknown feature)."""
    with services.engine.connect() as conn:
        return mode_of(conn, services.settings, feature, services.clock())


async def polled_mode(services: Services, feature: str) -> FeatureMode | None:
    """`read_mode` through the read cache: what the app's frequent polls are answered with."""
    return await services.read_cache.get(("mode", feature), lambda: read_mode(services, feature))


def set_override(services: Services, feature: str, body: OverrideIn, caller: Principal) -> FeatureMode:
    """Store the override (or end it) and set the feature's mode at once."""
    now = services.clock()
    fallback_mode = services.settings.feature(feature).fallback_mode
    with services.engine.begin() as conn:
        if mode_of(conn, services.settings, feature, now) is None:
            raise _not_found(feature)
        ensure_feature(conn, feature, now)
        fq.clear_overrides(conn, feature, now)
        if body.mode is None:  # the triggers decide again
            mode, reason = trigger_mode(q.trigger_states_of(conn, feature), fallback_mode)
            q.set_feature_mode(conn, feature, mode, reason or f"override cleared by {caller.name}", now)
        else:
            fq.add_override(conn, feature, body.mode, body.reason, now, until=body.until, set_by=caller.name)
            resolved = resolve_mode(Facts(override=Override(body.mode, body.reason, now)), fallback_mode)
            q.set_feature_mode(
                conn, feature, resolved.mode, resolved.reason, now, by_override=resolved.by_override
            )
        found = mode_of(conn, services.settings, feature, now)
    assert found is not None
    return found


def parse_override(raw: bytes) -> OverrideIn:
    """The override request (any content type: the body is read as JSON), or a 422."""
    try:
        data = loads(raw)
    except InputError as exc:
        raise unprocessable("", f"the body is not JSON: {exc.message}") from None
    try:
        return OverrideIn.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": _message(e)} for e in exc.errors()]
        raise ApiError(422, {"errors": errors}) from None


def _message(error: Any) -> str:
    """pydantic's message, without its "Value error, " before the parser's own words."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _checked(body: OverrideIn, services: Services) -> OverrideIn:
    if body.mode is not None and not body.reason.strip():
        raise unprocessable("reason", "is required when setting a mode (say why, for the people who see it)")
    if body.until is not None:  # aware UTC: read by `monitor.formats.parse_ts`
        if body.mode is None:
            raise unprocessable("until", "only goes with a mode")
        if body.until <= services.clock():
            raise unprocessable("until", "is in the past")
    return body


_READ: dict[int | str, dict[str, Any]] = {**AUTH, **STORE}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_READ,
    404: {"model": Problem, "description": "no such feature (neither in the store nor in the config)"},
}
_OVERRIDE: dict[int | str, dict[str, Any]] = {
    **_RESPONSES,
    413: {"model": Problem, "description": "the body is over server.max_body_bytes"},
    422: {"model": Errors, "description": "a bad body (which field, and why); nothing changed"},
}


def router(services: Services) -> APIRouter:
    routes = APIRouter(tags=["features"])
    _reads(routes, services)
    _overrides(routes, services)
    return routes


def _reads(routes: APIRouter, services: Services) -> None:
    @routes.get("/v1/features", response_model=FeatureList, responses=_READ, summary="Every feature's mode")
    def list_features(_caller: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
        now = services.clock()
        with services.engine.connect() as conn:
            found = [
                mode_of(conn, services.settings, name, now)
                for name in known_features(conn, services.settings)
            ]
        return {"features": [item.to_json() for item in found if item is not None]}

    @routes.get(
        "/v1/features/{feature}/status",
        response_model=FeatureStatus,
        responses=_RESPONSES,
        summary="The feature's mode, its pending and firing triggers, why and since when",
    )
    async def status(feature: str, _caller: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
        found = await polled_mode(services, feature)
        if found is None:
            raise _not_found(feature)
        return found.to_json()


def _overrides(routes: APIRouter, services: Services) -> None:
    @routes.post(
        "/v1/features/{feature}/override",
        response_model=FeatureStatus,
        responses=_OVERRIDE,
        openapi_extra=request_body(OverrideIn),
        summary="Set the mode by hand (the off switch); mode null ends the override",
    )
    async def override(
        feature: str, request: Request, caller: Annotated[Principal, Depends(require("admin"))]
    ) -> dict[str, Any]:
        try:
            raw = await read_body(request, services.settings.server.max_body_bytes)
        except BodyTooLarge as exc:
            raise ApiError(413, {"detail": str(exc)}) from None
        body = _checked(parse_override(raw), services)
        found = await run_in_threadpool(set_override, services, feature, body, caller)
        services.read_cache.put(("mode", feature), found)
        return found.to_json()

    @routes.delete(
        "/v1/features/{feature}/override",
        response_model=FeatureStatus,
        responses=_RESPONSES,
        summary="End the feature's override: the triggers decide the mode again",
    )
    async def clear_override(
        feature: str, caller: Annotated[Principal, Depends(require("admin"))]
    ) -> dict[str, Any]:
        found = await run_in_threadpool(set_override, services, feature, OverrideIn(mode=None), caller)
        services.read_cache.put(("mode", feature), found)
        return found.to_json()
