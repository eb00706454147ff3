"""Who is calling: bearer tokens with roles, and the review page's signed session cookie.

Tokens come from the config (`tokens:`, each stored as the sha256 of the token) and from
`aiqm token create` (the `api_tokens` table, again only the hash). A presented token is hashed
and compared with every known hash by `hmac.compare_digest`, all of them every time, so the
answer takes the same time whichever token (if any) matches.

Roles (CONTRACT section 4): `ingest`, `review`, `read`, `admin`; `admin` may do everything.
Missing or wrong credentials: 401 with `WWW-Authenticate: Bearer`; right token, wrong role: 403.

`require(*roles)` is a FastAPI dependency; it finds the daemon's `Services` on
`request.app.state.services` (set by `monitor.api.app.create_app`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, get_args

from fastapi import HTTPException, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from monitor.config import Role, Settings
from monitor.errors import InputError
from monitor.store.tables import api_tokens

if TYPE_CHECKING:
    from monitor.daemon.read_cache import ReadCache
    from monitor.daemon.services import Services

__all__ = [
    "ROLES",
    "SESSION_COOKIE",
    "Principal",
    "TokenBook",
    "close_session",
    "create_token",
    "hash_token",
    "open_session",
    "read_session",
    "require",
    "revoke_token",
]

ROLES: tuple[Role, ...] = get_args(Role)
SESSION_COOKIE = "aiqm_session"
MAX_TOKEN_CHARS = 512  # longer is not a token of ours; refuse before hashing megabytes


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's (or session's) name and its role."""

    name: str
    role: Role

    def allows(self, *roles: Role) -> bool:
        """Whether this caller may act in one of `roles` (`admin` may act in every role)."""
        return self.role == "admin" or self.role in roles


def hash_token(token: str) -> str:
    """The sha256 hex digest that is stored in place of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


Candidates = list[tuple[str, Principal]]
_STORED_TOKENS = ("stored-tokens",)  # the read cache's key


class TokenBook:
    """Looks tokens up among the config's and the store's (not revoked) hashes."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._configured = [(t.sha256, Principal(t.name, t.role)) for t in settings.tokens]
        self._engine = engine

    def stored(self) -> Candidates:
        """The store's tokens that are not revoked, as (sha256, principal)."""
        query = select(api_tokens.c.token_sha256, api_tokens.c.name, api_tokens.c.role).where(
            api_tokens.c.revoked_at.is_(None)
        )
        with self._engine.connect() as conn:
            return [
                (digest, Principal(name, role)) for digest, name, role in conn.execute(query) if role in ROLES
            ]

    def lookup(self, token: str) -> Principal | None:
        """The principal holding `token` (the store read now), or None."""
        if not _plausible(token):
            return None
        return self._match(token, self.stored())

    async def find(self, token: str, cache: ReadCache) -> Principal | None:
        """`lookup` with the store's tokens kept in `cache`: a revoked token is refused within the
        cache's lifetime; an unknown one makes the store be read again, so a new token works at once."""
        if not _plausible(token):
            return None
        found = self._match(token, await cache.get(_STORED_TOKENS, self.stored))
        if found is None:
            found = self._match(token, await cache.refresh(_STORED_TOKENS, self.stored))
        return found

    def _match(self, token: str, stored: Candidates) -> Principal | None:
        """Compares with every candidate, whichever matches, so the time does not tell which did."""
        digest = hash_token(token).encode("ascii")
        found: Principal | None = None
        for candidate, principal in [*self._configured, *stored]:
            if hmac.compare_digest(candidate.encode("ascii"), digest) and found is None:
                found = principal
        return found


def _plausible(token: str) -> bool:
    return bool(token) and len(token) <= MAX_TOKEN_CHARS  # longer: refused before hashing megabytes


def create_token(engine: Engine, name: str, role: str, now: datetime) -> str:
    """Mint a token for `role`, store only its hash under `name`, return the token (shown once)."""
    if role not in ROLES:
        raise InputError(f"must be one of {', '.join(ROLES)}; got {role!r:.40}", field="--role")
    if not name.strip() or len(name) > 200:
        raise InputError("must be 1 to 200 characters long", field="--name")
    token = secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(api_tokens).values(
                    name=name, role=role, token_sha256=hash_token(token), created_at=now, revoked_at=None
                )
            )
    except IntegrityError:
        raise InputError(
            f"a token named {name!r} exists already; choose another name", field="--name"
        ) from None
    return token


def revoke_token(engine: Engine, name: str, now: datetime) -> bool:
    """Revoke the stored token called `name`; False when there is none (or it was revoked)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(result.rowcount)


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
    if not value or len(value) > 2048 or value.count(".") != 1:
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
