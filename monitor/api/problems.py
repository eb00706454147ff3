"""An error answer whose JSON body is given whole (the app's handler sends it as it is)."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "unprocessable"]


class ApiError(Exception):
    def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body
        self.headers = headers


def unprocessable(field: str, message: str) -> ApiError:
    """422 with `{"errors": [{"field", "message"}]}`, the shape every 422 of this API has."""
    return ApiError(422, {"errors": [{"field": field, "message": message}]})
