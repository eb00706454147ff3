"""What the daemon's API tests share: services over a test store, tokens for every role, and the
app served by a real uvicorn on a free loopback port in a background thread (so the requests go
over HTTP exactly as in production, and `monitor.client` can be tested against it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine

from monitor.api.app import create_app
from monitor.config import FeatureSettings, Settings
from monitor.daemon.app import base_url, build_services, listen
from monitor.daemon.services import Services
from monitor.daemon.tokens import ROLES, create_token

NOW = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)  # half an hour after a Monday 06:00 cycle
FEATURE = "support-reply"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings_for(**server: Any) -> Settings:
    return Settings(
        features={FEATURE: FeatureSettings(owner="team@example.com")},
        server={"max_body_bytes": 64_000, "max_batch": 50, **server},
    )


def mint(engine: Engine, prefix: str = "") -> dict[str, str]:
    """One token per role, stored hashed: {role: token}."""
    return {role: create_token(engine, f"{prefix}{role}-token", role, NOW) for role in ROLES}


def output(index: int, feature: str = FEATURE, **fields: Any) -> dict[str, Any]:
    ts = (NOW - timedelta(days=1, minutes=index)).isoformat().replace("+00:00", "Z")
    return {"id": f"out-{index}", "feature": feature, "ts": ts, "output": f"reply {index}", **fields}


def label(index: int, verdict: str = "pass", **fields: Any) -> dict[str, Any]:
    return {
        "output_id": f"out-{index}",
        "feature": FEATURE,
        "verdict": verdict,
        "source": "human:ana",
        **fields,
    }


@dataclass
class Site:
    """A served app: its URL, services and clock, a token per role, and an HTTP client."""

    url: str
    services: Services
    clock: Clock
    tokens: dict[str, str]
    http: httpx.Client
    extra: dict[str, Any] = field(default_factory=dict)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, role: str | None, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**(self.auth(role) if role else {}), **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return self.http.post(path, headers=headers, **kwargs)

    def get(self, path: str, role: str | None, **kwargs: Any) -> httpx.Response:
        headers = {**(self.auth(role) if role else {}), **kwargs.pop("headers", {})}
        return self.http.get(path, headers=headers, **kwargs)


@contextmanager
def served(services: Services) -> Iterator[str]:
    """Serve `create_app(services)` with uvicorn on 127.0.0.1:<free port> until the block ends."""
    sock = listen("127.0.0.1", 0)
    config = uvicorn.Config(create_app(services), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def site(
    engine: Engine,
    settings: Settings | None = None,
    *,
    scheduler: bool = False,
    clock: Clock | None = None,
    prefix: str = "",
) -> Iterator[Site]:
    """The app over `engine`, served; tokens named `<prefix><role>-token` (one site per prefix)."""
    clock = clock or Clock()
    services = build_services(settings or settings_for(), engine=engine, clock=clock, scheduler=scheduler)
    tokens = mint(engine, prefix)
    with served(services) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Site(url, services, clock, tokens, http)
