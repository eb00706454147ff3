"""The quality page's routes: wires the handlers of `access` and `pages` to paths."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from monitor.api.quality.access import READERS, QualitySignIn
from monitor.api.quality.pages import QualityPages
from monitor.api.quality.rendering import quality_renderer
from monitor.api.review.sign_in import SignIn

if TYPE_CHECKING:
    from monitor.daemon.services import Services

__all__ = ["router"]


def router(services: Services) -> APIRouter:
    """The quality page's routes; `create_app` mounts them under `/quality`."""
    renderer = quality_renderer(services.session_secret)
    access = QualitySignIn(SignIn(services.tokens, renderer, READERS, "the quality page"))
    pages = QualityPages(services.engine, services.settings, services.clock, renderer)

    routes = APIRouter(include_in_schema=False)
    routes.add_api_route(
        "/login", access.form, methods=["GET"], response_class=HTMLResponse, name="quality_login_form"
    )
    routes.add_api_route("/login", access.submit, methods=["POST"], response_model=None, name="quality_login")
    routes.add_api_route(
        "/logout", access.sign_out, methods=["POST"], response_model=None, name="quality_logout"
    )
    routes.add_api_route(
        "",
        pages.index,
        methods=["GET"],
        response_class=HTMLResponse,
        response_model=None,
        name="quality_index",
    )
    routes.add_api_route(
        "/{feature}",
        pages.feature,
        methods=["GET"],
        response_class=HTMLResponse,
        response_model=None,
        name="quality_feature",
    )
    return routes
