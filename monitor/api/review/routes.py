"""The review page's routes: wires the handlers of `sign_in`, `pages` and `verdict` to paths."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from monitor.api.review.pages import ReviewPages
from monitor.api.review.rendering import Renderer
from monitor.api.review.sign_in import SignIn
from monitor.api.review.verdict import Verdicts

if TYPE_CHECKING:
    from monitor.daemon.services import Services

__all__ = ["router"]


def router(services: Services) -> APIRouter:
    """The review page's routes; `create_app` mounts them under `/review`."""
    renderer = Renderer(services.session_secret)
    sign_in = SignIn(services.tokens, renderer)
    pages = ReviewPages(services.engine, services.settings, services.clock, renderer)
    verdicts = Verdicts(services.engine, services.clock, pages)

    routes = APIRouter(include_in_schema=False)
    # the fixed paths first (`/login` is not a feature's queue); names as `url_for` knows them
    routes.add_api_route(
        "/login", sign_in.form, methods=["GET"], response_class=HTMLResponse, name="login_form"
    )
    routes.add_api_route("/login", sign_in.submit, methods=["POST"], response_model=None, name="login")
    routes.add_api_route("/logout", sign_in.sign_out, methods=["POST"], response_model=None, name="logout")
    routes.add_api_route(
        "",
        pages.index,
        methods=["GET"],
        response_class=HTMLResponse,
        response_model=None,
        name="review_index",
    )
    routes.add_api_route(
        "/{feature}",
        pages.feature_queue,
        methods=["GET"],
        response_class=HTMLResponse,
        response_model=None,
        name="feature_queue",
    )
    routes.add_api_route(
        "/{feature}/flagged",
        pages.flagged_list,
        methods=["GET"],
        response_class=HTMLResponse,
        response_model=None,
        name="flagged_list",
    )
    routes.add_api_route("/{feature}", verdicts.submit, methods=["POST"], response_model=None, name="submit")
    return routes
