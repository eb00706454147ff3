"""The composition root: the one place that builds engines, the scheduler and the HTTP app."""

from __future__ import annotations

import gc
import logging
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from monitor.config import Settings
from monitor.errors import MonitorError
from monitor.store.engine import make_engine, migrate

if TYPE_CHECKING:
    import httpx
    import uvicorn

    from monitor.daemon.services import Services
    from monitor.intake.privacy import RetentionLoop
    from monitor.judges.base import Labeller
    from monitor.reporting.notify import Notifier

log = logging.getLogger("monitor.serve")


def open_store(settings: Settings) -> Engine:
    """The configured store, migrated to the newest schema."""
    from sqlalchemy.exc import OperationalError

    from monitor.logsafe import redact

    engine = make_engine(settings.resolved_database_url)
    try:
        migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        reason = redact(str(exc.orig or exc).strip().splitlines()[0])
        raise MonitorError(f"cannot reach the store {where}: {reason}") from None
    return engine


def _now() -> datetime:
    return datetime.now(UTC)


def session_secret(engine: Engine, settings: Settings | None = None) -> bytes:
    """The review sessions' signing secret: from `server.session_secret_env` when set, else one
    stored once in the store; either way, replicas share it."""
    import hashlib
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from monitor.store.secret_queries import shared_secret

    name = settings.server.session_secret_env if settings is not None else ""
    if name:
        value = os.environ.get(name, "")
        if not value:
            raise MonitorError(f"server.session_secret_env: the environment variable {name} is not set")
        return hashlib.sha256(value.encode("utf-8")).digest()
    try:
        return shared_secret(engine, "session")
    except SQLAlchemyError as exc:  # a store without the table: sessions end with the process
        log.warning("no shared session secret in the store (%s); using a random one", type(exc).__name__)
        return secrets.token_bytes(32)


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = _now,
    labellers: Sequence[Labeller] = (),
    scheduler: bool = True,
    notifier: Notifier | None = None,
) -> Services:
    """The daemon's services over the configured store (or `engine`), with a scheduler unless told not."""
    from monitor.cycle.runner import CycleRunner
    from monitor.daemon.scheduler import FeatureScheduler
    from monitor.daemon.services import Services
    from monitor.daemon.tokens import TokenBook
    from monitor.metrics.exporter import build_registry

    engine = engine if engine is not None else open_store(settings)
    services = Services(
        engine=engine,
        settings=settings,
        runner=CycleRunner(engine, settings, clock, labellers=labellers),
        clock=clock,
        tokens=TokenBook(settings, engine),
        session_secret=session_secret(engine, settings),
        notifier=notifier,
    )
    services.registry = build_registry(engine, settings, clock)
    if scheduler:
        from monitor.daemon.leader import LeaderCollector

        feature_scheduler = FeatureScheduler(services)
        services.scheduler = feature_scheduler
        services.registry.register(LeaderCollector(lambda: feature_scheduler.leader))
    return services


def daemon_services(settings: Settings, http: httpx.Client | None = None) -> Services:
    """What `aiqm serve` runs: the configured store, judges, webhooks (over `http`) and scheduler."""
    from monitor.judges import build_labellers
    from monitor.reporting.notify import Notifier

    engine = open_store(settings)
    notifier = Notifier(engine, settings, http, _now) if http is not None and settings.webhooks else None
    return build_services(
        settings, engine=engine, labellers=build_labellers(settings, engine, _now), notifier=notifier
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one), or a MonitorError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise MonitorError(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise MonitorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def configure_logging(settings: Settings | None = None) -> None:
    """Log lines to standard error: time, level, logger, message (never a token or a password:
    `monitor.logsafe` masks URL passwords, bearer credentials and the configured secrets)."""
    from monitor.logsafe import install, settings_secrets

    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_aiqm", False)]
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._aiqm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        ours = [handler]
    literals, names = settings_secrets(settings) if settings is not None else ([], [])
    for each in ours:
        install(each, literals, names)
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _server_class() -> type[uvicorn.Server]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, minus re-raising SIGTERM after a graceful stop (so `serve` returns 0)."""

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


SWITCH_INTERVAL_SECONDS = 0.0005


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    services: Services | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """`aiqm serve`: the scheduler and the HTTP API until SIGTERM or Ctrl-C; 0 after a clean stop.

    On SIGTERM the daemon stops taking requests and jobs, lets a running cycle finish, and exits.
    `on_ready(url)` is called once the socket listens (before the app has started).
    """
    import httpx

    from monitor.intake.privacy import RetentionLoop

    configure_logging(settings)
    # Batches of outputs are parsed and validated in worker threads while the status endpoint,
    # which the AI app polls, must answer in milliseconds: hand the GIL over every 0.5 ms rather
    # than Python's default 5 ms, so a short request never queues behind a long one's time slice.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    http = httpx.Client(timeout=30) if services is None and settings.webhooks else None
    services = services if services is not None else daemon_services(settings, http)
    sock: socket.socket | None = None
    retention = RetentionLoop.start_for(settings, services.engine, services.clock)
    try:
        sock = listen(host or settings.server.host, settings.server.port if port is None else port)
        _run_http(settings, services, sock, on_ready)
    finally:
        _release(services, sock, retention, http)
    return 0


def _run_http(
    settings: Settings, services: Services, sock: socket.socket, on_ready: Callable[[str], None] | None
) -> None:
    """Serve the HTTP app (and, through its lifespan, the scheduler) on `sock` until stopped."""
    import uvicorn

    from monitor.api.app import create_app

    url = base_url(sock)
    app = create_app(services)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=True,
        lifespan="on",
        timeout_graceful_shutdown=15,
        server_header=False,
    )
    server = _server_class()(config)
    log.info(
        "serving on %s (store %s, %d configured token(s))",
        url,
        services.engine.url.render_as_string(hide_password=True),
        len(settings.tokens),
    )
    if on_ready is not None:
        on_ready(url)
    # What is imported and built by now lives as long as the process: take it out of the
    # collector's sight, so a full collection scans only what requests create (on the load
    # benchmark a full collection went from ~110 ms, a status poll's worst wait, to ~6 ms).
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])
    if not server.started:
        raise MonitorError("the daemon did not start (see the log above)")
    log.info("stopped")


def _release(
    services: Services,
    sock: socket.socket | None,
    retention: RetentionLoop | None,
    http: httpx.Client | None,
) -> None:
    """What `serve` opened, closed in the reverse order."""
    if retention is not None:
        retention.stop()
    if sock is not None:
        sock.close()
    if http is not None:
        http.close()
    services.engine.dispose()
