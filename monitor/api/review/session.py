"""Who is on the review page and what a request may do: the caller (session cookie or bearer
token), the page's base path, the CSRF check every POST makes, and the refusals it shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.api.auth import SESSION_COOKIE, Principal, require
from monitor.api.review.signing import csrf_token, same
from monitor.config import Role

__all__ = [
    "Base",
    "Caller",
    "CallerOrNone",
    "Refused",
    "base_path",
    "caller_in",
    "check_csrf",
    "current_caller",
    "to_login",
]

_bearer = HTTPBearer(auto_error=False, description="a review (or admin) token; on /quality, read too")


@dataclass(frozen=True)
class Caller:
    """A signed-in reviewer and the credential their CSRF tokens derive from."""

    principal: Principal
    credential: str


class Refused(Exception):
    """A request the page refuses: shown as a page with the status and what to do."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def caller_in(*roles: Role) -> Callable[..., Awaitable[Caller | None]]:
    """A dependency: the signed-in caller in one of `roles` (or `admin`); None (the page offers
    the sign-in) when there is no credential. The quality page admits the roles that may read."""
    check = require(*roles)

    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Caller | None:
        try:
            principal = await check(request, credentials)
        except HTTPException as exc:
            if exc.status_code == status.HTTP_401_UNAUTHORIZED and credentials is None:
                return None
            raise
        if credentials is not None:
            return Caller(principal, credentials.credentials)
        return Caller(principal, request.cookies.get(SESSION_COOKIE, ""))

    return caller


current_caller = caller_in("review")
"""The signed-in reviewer (see `caller_in`)."""


def base_path(request: Request) -> str:
    """Where the page is mounted (`/review`), without a trailing slash."""
    return request.url_for("review_index").path.rstrip("/")


CallerOrNone = Annotated[Caller | None, Depends(current_caller)]
Base = Annotated[str, Depends(base_path)]


def check_csrf(secret: bytes, who: Caller, given: str) -> None:
    """Refuse (403) a form whose CSRF token is not the caller's."""
    if not given or not same(csrf_token(secret, who.credential), given):
        raise Refused(403, "The form's CSRF token is missing or wrong: reload the page and try again.")


def to_login(request: Request, base: str) -> RedirectResponse:
    """To the sign-in form, which comes back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{base}/login?{urlencode({'next': target})}", status_code=303)
