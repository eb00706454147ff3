"""Who is calling, over HTTP: the bearer token or the review page's signed session cookie.

The tokens, roles and their lookup are the daemon's (`monitor.daemon.tokens`); this module is
the HTTP side of them. Missing or wrong credentials: 401 with `WWW-Authenticate: Bearer`; right
token, wrong role: 403.

`require(*roles)` is a FastAPI dependency; it finds the daemon's `Services` on
`request.app.state.services` (set by `monitor.api.app.create_app`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import HTTPException, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.config import Role
from monitor.daemon.tokens import ROLES, Principal

if TYPE_CHECKING:
    from monitor.daemon.services import Services

MAX_COOKIE_CHARS = 2048  # a session cookie is far shorter; a longer one is not ours

__all__ = [
    "SESSION_COOKIE",
    "Principal",
    "close_session",
    "open_session",
    "read_session",
    "require",
    "session_value",
]

SESSION_COOKIE = "aiqm_session"


# --------------------------------------------------------------------------- the session cookie


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode("ascii"), hashlib.sha256).hexdigest()


def session_value(principal: Principal, secret: bytes, expires: float) -> str:
    """The cookie's value: base64url JSON of name, role and expiry, a dot, and its HMAC-SHA256."""
    body = json.dumps({"n": principal.name, "r": principal.role, "e": int(expires)}, separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_signature(secret, payload)}"


def open_session(
    response: Response,
    principal: Principal,
    secret: bytes,
    max_age: int,
    *,
    secure: bool = False,
    now: float | None = None,
) -> None:
    """Set the signed, HttpOnly, SameSite=Strict session cookie for `principal`, valid `max_age` s."""
    expires = (time.time() if now is None else now) + max_age
    response.set_cookie(
        SESSION_COOKIE,
        session_value(principal, secret, expires),
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def close_session(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def read_session(request: Request, secret: bytes, *, now: float | None = None) -> Principal | None:
    """The principal of a valid, unexpired session cookie, else None."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(
        _signature(secret, payload).encode("ascii"), signature.encode("ascii", "replace")
    ):
        return None
    try:
        data = json.loads(_unb64(payload))
        name, role, expires = data["n"], data["r"], data["e"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not isinstance(name, str) or role not in ROLES or not isinstance(expires, int):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return Principal(name, role)


# --------------------------------------------------------------------------- the dependency

_bearer = HTTPBearer(auto_error=False, description="a token from the config or `aiqm token create`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers in one of `roles` (or `admin`): bearer token or session cookie."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Principal:
        services: Services = request.app.state.services
        if credentials is not None:
            principal = await services.tokens.find(credentials.credentials, services.read_cache)
            if principal is None:
                raise _unauthorized("unknown or revoked token")
        else:
            principal = read_session(request, services.session_secret)
            if principal is None:
                raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        if not principal.allows(*roles):
            raise HTTPException(
                status_code=403, detail=f"this needs the {' or '.join(roles) or 'admin'} role"
            )
        request.state.principal = principal
        return principal

    return dependency
