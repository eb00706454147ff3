"""Who holds a token: the roles, and the lookup of a presented bearer token among the known ones.

Tokens come from the config (`tokens:`, each stored as the sha256 of the token) and from
`aiqm token create` (the `api_tokens` table, again only the hash: `monitor.store.token_queries`).
A presented token is hashed and compared with every known hash by `hmac.compare_digest`, all of
them every time, so the answer takes the same time whichever token (if any) matches.

Roles (CONTRACT section 4): `ingest`, `review`, `read`, `admin`; `admin` may do everything.
The HTTP side (the `require` dependency, the review session cookie) is `monitor.api.auth`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from sqlalchemy import Engine

from monitor.config import Role, Settings
from monitor.daemon.read_cache import ReadCache
from monitor.errors import InputError
from monitor.store import token_queries

__all__ = [
    "MAX_TOKEN_CHARS",
    "ROLES",
    "Principal",
    "TokenBook",
    "create_token",
    "hash_token",
    "revoke_token",
]

ROLES: tuple[Role, ...] = get_args(Role)
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
        return [
            (digest, Principal(name, role))
            for digest, name, role in token_queries.unrevoked_tokens(self._engine)
            if role in ROLES
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


MAX_NAME_CHARS = 200


def create_token(engine: Engine, name: str, role: str, now: datetime) -> str:
    """Mint a token for `role`, store only its hash under `name`, return the token (shown once)."""
    if role not in ROLES:
        raise InputError(f"must be one of {', '.join(ROLES)}; got {role!r:.40}", field="--role")
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        raise InputError(f"must be 1 to {MAX_NAME_CHARS} characters long", field="--name")
    token = secrets.token_urlsafe(32)
    if not token_queries.insert_token(engine, name, role, hash_token(token), now):
        raise InputError(f"a token named {name!r} exists already; choose another name", field="--name")
    return token


def revoke_token(engine: Engine, name: str, now: datetime) -> bool:
    """Revoke the stored token called `name`; False when there is none (or it was revoked)."""
    return token_queries.revoke_token(engine, name, now)
