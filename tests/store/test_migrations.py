"""The migrations and the code agree on the schema, on both stores, and a store from before a
revision upgrades in place without losing what it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, Text, select

from monitor.store.engine import MIGRATIONS, make_engine, migrate
from monitor.store.tables import UTCDateTime, metadata, pull_positions, pull_watermarks

if TYPE_CHECKING:
    from conftest import Stores

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_the_migrations_build_exactly_the_schema_the_code_declares(stores: Stores, backend: str) -> None:
    url = stores.create(backend)  # a store of its own: other tests leave their own tables behind
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
        if backend == "postgresql":
            stores.drop(url)
    assert differences == []


def test_pull_tables_that_pull_mode_created_itself_are_kept_by_the_upgrade(engine: Engine) -> None:
    """Before revision 0005, `aiqm pull` created its two tables on first use."""
    head = current_revision(engine)
    downgrade(engine, "0004")
    assert current_revision(engine) == "0004"
    old = MetaData()  # the definitions pull mode used to create
    Table(
        "pull_positions",
        old,
        Column("source", String(1000), primary_key=True),
        Column("device", BigInteger, primary_key=True),
        Column("inode", BigInteger, primary_key=True),
        Column("offset", BigInteger, nullable=False),
        Column("lines", Integer, nullable=False),
        Column("path", String(1000), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    Table(
        "pull_watermarks",
        old,
        Column("source", String(1000), primary_key=True),
        Column("cursor", Text, nullable=False),
        Column("last_id", Text, nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
    )
    old.create_all(engine)
    position = {"source": "/logs", "device": 7, "inode": 42, "offset": 1234, "lines": 10, "path": "/logs/a"}
    watermark = {"source": "app.outputs", "cursor": "2026-03-01T00:00:00", "last_id": "o-9"}
    with engine.begin() as conn:
        conn.execute(pull_positions.insert().values(**position, updated_at=AT))
        conn.execute(pull_watermarks.insert().values(**watermark, updated_at=AT))

    migrate(engine)

    assert current_revision(engine) == head
    with engine.connect() as conn:
        kept_position = conn.execute(select(pull_positions)).mappings().one()
        kept_watermark = conn.execute(select(pull_watermarks)).mappings().one()
    assert {k: kept_position[k] for k in position} == position
    assert {k: kept_watermark[k] for k in watermark} == watermark
    assert kept_position["updated_at"] == AT
