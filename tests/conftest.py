"""Shared fixtures: a fixed clock, a seeded generator, stores on both backends, the CLI.

Stores
    `store_url` is parametrized over ``sqlite`` (a file in the test's temporary directory) and
    ``postgresql`` (a fresh database on 127.0.0.1:5432, copied from a template migrated once per
    session, dropped after the test). Both are migrated to the newest revision. `engine` is an
    Engine on it. Tests using them run once per backend; the PostgreSQL run carries the
    ``postgres`` marker. When PostgreSQL cannot be reached the PostgreSQL run is skipped with the
    reason, except under ``CI=true``, where it fails: CI must never pass without the server.
    Set ``AIQM_TEST_POSTGRES_URL`` to use another server (its database must exist and the user
    must be allowed to create databases).

    For a store shared by a module, use `module_store_url` (once per backend), or the session
    fixture `stores`: ``stores.create("postgresql")`` returns the URL of a new migrated store,
    and ``stores.borrow(backend)`` one that ``stores.give_back(url)`` empties for the next
    borrower (a PostgreSQL database is reused rather than dropped: a drop makes the server
    checkpoint, seconds on a busy machine).
    SQLite stores are copies of a file migrated once per session, as PostgreSQL's databases are
    copies of a migrated template.

CLI
    `aiqm` runs ``monitor.cli.main`` in-process, `aiqm_proc` runs ``python -m monitor`` in a
    subprocess (for exit codes and the absence of tracebacks). Both return a `CliResult`, run
    in the test's temporary directory and see no ``AIQM_`` variable but those they are given.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import settings
from missing_part import missing
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from monitor.store.engine import make_engine, migrate

# Read before the autouse fixture scrubs AIQM_ variables from the environment.
POSTGRES_URL = os.environ.get("AIQM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIXED_NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC: a default cycle time
SEED = 20260302

# A loaded 2-core machine must not turn slow examples into failures.
settings.register_profile("aiqm", deadline=None, print_blob=True)
settings.load_profile("aiqm")

BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql"))


# --------------------------------------------------------------------------- order


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked `slow` first, each module's tests in their order.

    The suite runs on xdist workers, a module to a worker (`--dist loadfile`), taking modules
    in this order: a long end-to-end module started last would leave one worker alone at the
    end. The order is the same in every worker, as xdist requires.
    """
    slow = {_module_of(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _module_of(item) not in slow)


def _module_of(item: pytest.Item) -> str:
    return str(item.path)


# --------------------------------------------------------------------------- environment


@pytest.fixture(autouse=True)
def _no_aiqm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's AIQM_DATABASE_URL (or AIQM_CONFIG) must never reach a test."""
    for name in list(os.environ):
        if name.startswith("AIQM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> datetime:
    """A fixed aware UTC 'now': Monday 2026-03-02 06:00 UTC."""
    return FIXED_NOW


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; each test gets its own, so tests do not depend on their order."""
    return np.random.default_rng(SEED)


# --------------------------------------------------------------------------- stores


class _PostgresUnavailable(Exception):
    pass


def _conninfo(url: str) -> str:
    """A libpq connection string from an SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Stores:
    """Creates migrated stores; PostgreSQL databases are dropped at the end of the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"aiqm_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._counter = itertools.count(1)
        self._template: str | None = None
        self._pg_error: str | None = None
        self._databases: list[str] = []
        self._shared: str | None = None
        self._spare: list[str] = []
        self._sqlite_template: Path | None = None
        self._template_schema: list[tuple[str, str, str]] | None = None

    # -- sqlite

    def sqlite(self) -> str:
        """A copy of a file migrated once: byte for byte the store `migrate` makes, without the
        tenth of a second (more on a busy machine) that running the migrations takes."""
        path = self.root / f"store-{next(self._counter)}.sqlite3"
        shutil.copyfile(self._migrated_sqlite(), path)
        return f"sqlite:///{path}"

    def _migrated_sqlite(self) -> Path:
        if self._sqlite_template is None:
            template = self.root / "template.sqlite3"
            engine = make_engine(f"sqlite:///{template}")
            try:
                migrate(engine)
            finally:
                engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
            leftovers = [p.name for p in self.root.glob("template.sqlite3-*")]
            assert not leftovers, f"the template kept {leftovers}: a copy of the file alone would lose them"
            self._sqlite_template = template
        return self._sqlite_template

    # -- postgresql

    def _admin(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(_conninfo(POSTGRES_URL), autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise _PostgresUnavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}") from None

    def _url_of(self, database: str) -> str:
        return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)

    def _ensure_template(self) -> str:
        if self._pg_error is not None:
            raise _PostgresUnavailable(self._pg_error)
        if self._template is not None:
            return self._template
        template = f"{self.prefix}_template"
        try:
            with self._admin() as admin:
                admin.execute(f'CREATE DATABASE "{template}"')
        except _PostgresUnavailable as exc:
            self._pg_error = str(exc)
            raise
        self._databases.append(template)
        engine = make_engine(self._url_of(template))
        try:
            migrate(engine)
        finally:
            engine.dispose()
        self._template = template
        return template

    def postgresql(self) -> str:
        template = self._ensure_template()
        database = f"{self.prefix}_{next(self._counter)}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
        self._databases.append(database)
        return self._url_of(database)

    def shared_postgresql(self) -> str:
        """The session's reusable database: emptied by `empty` after each test, not dropped.

        Dropping a database makes PostgreSQL checkpoint, which takes a second or more on a busy
        machine; emptying its tables takes milliseconds.
        """
        if self._shared is None:
            self._shared = self.postgresql()
        return self._shared

    def empty(self, url: str) -> None:
        """Empty every table but alembic's and restart their ids; a database that cannot be
        emptied is dropped instead.

        Only the tables the test touched (rows in them, or an id handed out) are truncated: each
        table truncated costs new files and their sync, tenths of a second on a busy machine,
        and the rest are already as a truncate would leave them.
        """
        try:
            with psycopg.connect(_conninfo(url), autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET lock_timeout = '5s'")
                tables = _touched_tables(conn)
                if tables:
                    conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        except psycopg.Error:
            if url == self._shared:
                self._shared = None
            self.drop(url)

    def drop(self, url: str) -> None:
        database = make_url(url).database
        if database is None or database not in self._databases:
            return
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self._databases.remove(database)

    def close(self) -> None:
        if not self._databases:
            return
        with self._admin() as admin:
            for database in reversed(self._databases):
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self._databases.clear()

    def _schema(self, database: str) -> list[tuple[str, str, str]]:
        """Every relation in the public schema with its kind, and the alembic revision."""
        with psycopg.connect(_conninfo(self._url_of(database)), autocommit=True, connect_timeout=5) as conn:
            relations = conn.execute(
                "SELECT c.relname, c.relkind::text, '' FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            ).fetchall()
            revision = conn.execute(
                "SELECT 'alembic_version', 'v', version_num FROM alembic_version"
            ).fetchall()
        return sorted([*relations, *revision])

    # -- either

    def borrow(self, backend: str) -> str:
        """A migrated, empty store for a module; hand it back with `give_back`."""
        if backend == "postgresql" and self._spare:
            return self._spare.pop()
        return self.create(backend)

    def give_back(self, url: str) -> None:
        """Empty a borrowed PostgreSQL store for the next borrower, or drop it when its relations
        or its revision are no longer the template's (a test created tables, or migrated it)."""
        if not url.startswith("postgresql"):
            return
        database = make_url(url).database
        self.empty(url)
        if database is None or database not in self._databases or self._template is None:
            return
        if self._template_schema is None:
            self._template_schema = self._schema(self._template)
        if self._schema(database) == self._template_schema:
            self._spare.append(url)
        else:
            self.drop(url)

    def create(self, backend: str, *, shared: bool = False) -> str:
        """The URL of a new, migrated, empty store; fails or skips as the module docstring says.

        With `shared`, PostgreSQL hands out the session's database (empty it after use).
        """
        if backend == "sqlite":
            return self.sqlite()
        if backend != "postgresql":
            raise ValueError(f"unknown backend {backend!r}")
        try:
            return self.shared_postgresql() if shared else self.postgresql()
        except _PostgresUnavailable as exc:
            missing(f"{exc} (start it with pg_ctlcluster)")


def _touched_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """The public tables (alembic's aside) holding rows or whose id sequence has handed one out."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT quote_ident(tablename) FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
    ]
    if not tables:
        return []
    holding = conn.execute("SELECT " + ", ".join(f"EXISTS (SELECT FROM {t})" for t in tables)).fetchone()
    assert holding is not None
    counted = conn.execute(
        "SELECT DISTINCT quote_ident(t.relname) FROM pg_depend d"
        " JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_class t ON t.oid = d.refobjid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " JOIN pg_sequences q ON q.schemaname = n.nspname AND q.sequencename = s.relname"
        " WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
        " AND d.deptype IN ('a', 'i') AND n.nspname = 'public' AND q.last_value IS NOT NULL"
    )
    used = {row[0] for row in counted}
    return [t for t, rows in zip(tables, holding, strict=True) if rows or t in used]


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    factory = Stores(tmp_path_factory.mktemp("stores"))
    yield factory
    factory.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``."""
    name: str = request.param
    return name


@pytest.fixture
def store_url(stores: Stores, backend: str) -> Iterator[str]:
    """The URL of a fresh migrated store, once per backend."""
    url = stores.create(backend, shared=True)
    yield url
    if backend == "postgresql":
        stores.empty(url)


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(stores: Stores, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated store that all of a module's tests share, once per backend: for tests that
    read what one module-scoped fixture wrote there and write nothing another test reads."""
    url = stores.borrow(request.param)
    yield url
    stores.give_back(url)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An Engine on a fresh migrated store, once per backend."""
    built = make_engine(store_url)
    migrate(built)
    yield built
    built.dispose()


# --------------------------------------------------------------------------- the command line


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


def _aiqm_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    env.update(extra or {})
    return env


@pytest.fixture
def aiqm(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """Run ``aiqm ARGS`` in-process: ``aiqm("ingest", path, stdin=b"...", env={...})``."""
    import monitor.daemon.app
    from monitor.cli import main

    built: list[Engine] = []

    def tracked_make_engine(url: str) -> Engine:
        engine = make_engine(url)
        built.append(engine)
        return engine

    def run(*args: str | Path, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> CliResult:
        with monkeypatch.context() as patch:
            patch.chdir(tmp_path)
            # A command's process would close its connections on exit; in-process, we do it.
            patch.setattr(monitor.daemon.app, "make_engine", tracked_make_engine)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            if stdin is not None:
                patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
            capsys.readouterr()
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                for engine in built:
                    engine.dispose()
                built.clear()
            captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def aiqm_proc(tmp_path: Path) -> CliRunner:
    """Run ``python -m monitor ARGS`` in a subprocess: ``aiqm_proc("ingest", path, env={...})``."""

    def run(
        *args: str | Path,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> CliResult:
        command: Sequence[str] = [sys.executable, "-m", "monitor", *map(str, args)]
        done = subprocess.run(
            command,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            cwd=tmp_path,
            env=_aiqm_env(env),
            timeout=timeout,
            check=False,
        )
        return CliResult(
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    return run
