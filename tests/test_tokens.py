"""The daemon's tokens on both stores: config tokens kept as their sha256; tokens minted by
`aiqm token create` printed once, stored hashed, revocable; the lookup through the read cache
(a new token works at once, a revoked one is refused once the kept tokens expire); a stored row
with a role the daemon does not know admits nobody."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, select

from monitor.config import Settings, TokenSettings
from monitor.daemon.read_cache import ReadCache
from monitor.daemon.tokens import Principal, TokenBook, create_token, hash_token, revoke_token
from monitor.errors import InputError
from monitor.store import token_queries
from monitor.store.tables import api_tokens

if TYPE_CHECKING:
    from conftest import CliRunner

NOW = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)


def test_config_tokens_are_stored_as_their_sha256(engine: Engine) -> None:
    token = "a-config-token-of-the-ops-team"
    settings = Settings(
        tokens=(TokenSettings(name="ops", role="read", sha256=hashlib.sha256(token.encode()).hexdigest()),)
    )
    book = TokenBook(settings, engine)
    assert book.lookup(token) == Principal("ops", "read")
    assert book.lookup(token + "x") is None
    assert book.lookup("") is None
    assert book.lookup("x" * 100_000) is None
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


def test_created_tokens_are_stored_hashed_and_can_be_revoked(engine: Engine) -> None:
    token = create_token(engine, "app", "ingest", NOW)
    assert len(token) >= 40
    with engine.connect() as conn:
        row = conn.execute(select(api_tokens)).mappings().one()
    assert row["token_sha256"] == hash_token(token) and token not in str(dict(row))
    book = TokenBook(Settings(), engine)
    assert book.lookup(token) == Principal("app", "ingest")
    with pytest.raises(InputError, match="exists already"):
        create_token(engine, "app", "read", NOW)
    with pytest.raises(InputError) as bad_role:
        create_token(engine, "other", "superuser", NOW)
    assert bad_role.value.field == "--role"
    assert revoke_token(engine, "app", NOW)
    assert not revoke_token(engine, "app", NOW)
    assert book.lookup(token) is None


def test_aiqm_token_create_prints_the_token_alone(aiqm: CliRunner, tmp_path: object, store_url: str) -> None:
    env = {"AIQM_DATABASE_URL": store_url}
    made = aiqm("token", "create", "--role", "review", "--name", "ana", env=env)
    assert made.code == 0, made.err
    token = made.out.strip()
    assert made.out == token + "\n" and " " not in token
    assert "shown only this once" in made.err and token not in made.err
    again = aiqm("token", "create", "--role", "review", "--name", "ana", env=env)
    assert again.code == 2 and "exists already" in again.err and again.out == ""
    bad = aiqm("token", "create", "--role", "root", "--name", "x", env=env)
    assert bad.code == 2
    from monitor.store.engine import make_engine

    engine = make_engine(store_url)
    try:
        assert TokenBook(Settings(), engine).lookup(token) == Principal("ana", "review")
        assert aiqm("token", "revoke", "--name", "ana", env=env).code == 0
        assert TokenBook(Settings(), engine).lookup(token) is None
        assert aiqm("token", "revoke", "--name", "ana", env=env).code == 2
    finally:
        engine.dispose()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_cached_lookup_sees_a_new_token_at_once_and_a_revoked_one_after_the_cache_life(
    engine: Engine,
) -> None:
    clock = Clock(NOW)
    cache = ReadCache(60, clock, monotonic=lambda: 0.0)  # only the daemon's clock ages the entries
    book = TokenBook(Settings(), engine)
    first = create_token(engine, "first", "read", NOW)

    async def find(token: str) -> Principal | None:
        return await book.find(token, cache)

    assert asyncio.run(find(first)) == Principal("first", "read")  # the stored tokens, now kept
    later = create_token(engine, "later", "ingest", NOW)
    assert asyncio.run(find(later)) == Principal("later", "ingest")  # unknown: read again at once
    assert revoke_token(engine, "later", NOW)
    assert asyncio.run(find(later)) == Principal("later", "ingest")  # still kept
    clock.now += timedelta(seconds=60)
    assert asyncio.run(find(later)) is None
    assert asyncio.run(find("")) is None and asyncio.run(find("x" * 10_000)) is None


def test_a_stored_row_with_an_unknown_role_admits_nobody(engine: Engine) -> None:
    token = "a-token-from-a-hand-edited-row"
    assert token_queries.insert_token(engine, "odd", "superuser", hash_token(token), NOW)
    assert not token_queries.insert_token(engine, "odd", "read", hash_token("another"), NOW)  # name taken
    book = TokenBook(Settings(), engine)
    assert book.stored() == [] and book.lookup(token) is None
    assert token_queries.unrevoked_tokens(engine) == [(hash_token(token), "odd", "superuser")]
