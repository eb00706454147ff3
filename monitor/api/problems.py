"""An error answer whose JSON body is given whole (the app's handler sends it as it is)."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

__all__ = ["ApiError", "allowed_methods", "unprocessable"]


class ApiError(Exception):
    def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body
        self.headers = headers


def unprocessable(field: str, message: str) -> ApiError:
    """422 with `{"errors": [{"field", "message"}]}`, the shape every 422 of this API has."""
    return ApiError(422, {"errors": [{"field": field, "message": message}]})


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> str:
    """The `Allow` of a 405: every method some route at the request's path takes.

    Starlette names only the first route that matched the path, so `OPTIONS` on a path with a
    `POST` and a `DELETE` route would say `Allow: POST`. Each method is tried on every route
    (`matches` is the routes' public test, and it sees through included routers).
    """
    path = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", "")}
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**path, "method": method})[0] is Match.FULL for route in routes)
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
