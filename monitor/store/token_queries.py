"""The API tokens minted by `aiqm token create` (table `api_tokens`): only each token's sha256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from monitor.store.tables import api_tokens

__all__ = ["insert_token", "revoke_token", "unrevoked_tokens"]


def unrevoked_tokens(engine: Engine) -> list[tuple[str, str, str]]:
    """The stored tokens not revoked, as (sha256, name, role)."""
    query = select(api_tokens.c.token_sha256, api_tokens.c.name, api_tokens.c.role).where(
        api_tokens.c.revoked_at.is_(None)
    )
    with engine.connect() as conn:
        return [(digest, name, role) for digest, name, role in conn.execute(query)]


def insert_token(engine: Engine, name: str, role: str, token_sha256: str, now: datetime) -> bool:
    """Store a token's hash under `name`; False when a token of that name (or hash) exists."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(api_tokens).values(
                    name=name, role=role, token_sha256=token_sha256, created_at=now, revoked_at=None
                )
            )
    except IntegrityError:
        return False
    return True


def revoke_token(engine: Engine, name: str, now: datetime) -> bool:
    """Mark the token called `name` revoked at `now`; False when there is none not yet revoked."""
    with engine.begin() as conn:
        result = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(result.rowcount)
