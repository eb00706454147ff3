"""The human review page, `/review` (CONTRACT section 4: the `review` role)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from monitor.api.services import Services

__all__ = ["router"]


def router(services: Services) -> APIRouter:
    """The review page's routes; the app mounts them under `/review`."""
    routes = APIRouter()

    @routes.get("", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>Review</title><p>The review page is on its way.</p>")

    return routes
