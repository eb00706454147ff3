"""`monitor.client` against a live daemon (sqlite store): outputs go in background batches, bad
records are dropped and the rest stored, a full queue drops the oldest; the mode is read with a
short cache, and a daemon that is down or slow gives the safe default quickly, never an error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from api_support import FEATURE, Site, output, site
from sqlalchemy import Engine, func, select

from monitor.client import MonitorClient
from monitor.store.engine import make_engine
from monitor.store.tables import outputs

if TYPE_CHECKING:
    from conftest import Stores

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api(stores: Stores) -> Iterator[Site]:
    url = stores.sqlite()
    engine = make_engine(url)
    try:
        with site(engine) as served:
            yield served
    finally:
        engine.dispose()


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outputs)).scalar_one())


def closed_port() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_outputs_go_in_background_batches(api: Site) -> None:
    client = MonitorClient(api.url, api.tokens["ingest"], batch_size=40, flush_interval=0.05)
    try:
        started = time.perf_counter()
        for i in range(100):
            client.log_output(output(i))
        client.log_output({"feature": FEATURE, "output": "no id, no ts: the client fills them"})
        client.log_output({"id": "dt", "feature": FEATURE, "ts": datetime(2026, 3, 1, tzinfo=UTC)})
        assert time.perf_counter() - started < 0.5  # logging never waits for the network
        assert client.flush(timeout=20)
        assert stored(api.services.engine) == 102
        stats = client.stats
        assert (stats.sent, stats.queued, stats.dropped, stats.rejected, stats.failed) == (102, 0, 0, 0, 0)
    finally:
        assert client.close()


def test_bad_records_are_dropped_and_the_rest_of_their_batch_stored(api: Site) -> None:
    with MonitorClient(api.url, api.tokens["ingest"], batch_size=10, flush_interval=0.05) as client:
        for i in range(6):
            client.log_output(output(i, user_action="loved" if i in (1, 4) else "accepted"))
        client.log_output({**output(9), "signals": {"x": float("nan")}})  # not JSON: dropped at once
        assert client.flush(timeout=20)
        assert client.stats.rejected == 3 and client.stats.sent == 4
    assert stored(api.services.engine) == 4


def test_a_full_queue_drops_the_oldest_and_never_blocks() -> None:
    client = MonitorClient(closed_port(), "token", max_queue=5, flush_interval=60, retries=0)
    try:
        started = time.perf_counter()
        for i in range(12):
            client.log_output(output(i))
        assert time.perf_counter() - started < 0.5
        assert client.stats.dropped == 7 and client.stats.queued == 5
    finally:
        client.close(timeout=5)


def test_a_down_daemon_costs_failed_counts_not_errors() -> None:
    client = MonitorClient(closed_port(), "token", batch_size=2, flush_interval=0.01, retries=1, backoff=0.01)
    try:
        for i in range(4):
            client.log_output(output(i))
        assert client.flush(timeout=10)
        assert client.stats.failed == 4 and client.stats.sent == 0
    finally:
        client.close(timeout=5)


def test_a_refused_token_is_failed_not_retried(api: Site) -> None:
    with MonitorClient(api.url, api.tokens["read"], flush_interval=0.01) as client:
        client.log_output(output(1))
        assert client.flush(timeout=10)
        assert client.stats.failed == 1
    assert stored(api.services.engine) == 0


def test_the_mode_is_read_and_cached(api: Site) -> None:
    client = MonitorClient(api.url, api.tokens["ingest"], read_token=api.tokens["read"], mode_ttl=1.5)
    try:
        assert client.mode(FEATURE) == "normal"
        api.post(f"/v1/features/{FEATURE}/override", "admin", {"mode": "off", "reason": "incident"})
        assert client.mode(FEATURE) == "normal"  # cached (a stall under 1.5 s cannot expire it)
        time.sleep(1.6)
        assert client.mode(FEATURE) == "off"
        assert client.mode("unknown-feature") == "normal"  # 404: the default
        assert client.mode("unknown-feature", default="fallback") == "fallback"
    finally:
        client.close()


def test_a_token_without_read_gives_the_default(api: Site) -> None:
    with MonitorClient(api.url, api.tokens["ingest"], default_mode="review") as client:
        assert client.mode(FEATURE) == "review"  # 403 for an ingest token


def test_the_mode_falls_back_quickly_when_the_daemon_is_down() -> None:
    client = MonitorClient(closed_port(), "t", default_mode="fallback", retry_after=60)
    try:
        started = time.perf_counter()
        assert client.mode(FEATURE) == "fallback"
        assert client.mode(FEATURE, default="off") == "off"  # cached failure, the call's default
        assert time.perf_counter() - started < 1.0
    finally:
        client.close(timeout=1)


def test_the_mode_falls_back_when_the_daemon_is_slow() -> None:
    """A server that accepts the connection and never answers: the short timeout decides."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    client = MonitorClient(f"http://127.0.0.1:{port}", "t", mode_timeout=0.2)
    try:
        started = time.perf_counter()
        assert client.mode(FEATURE) == "normal"
        assert time.perf_counter() - started < 1.5
    finally:
        client.close(timeout=1)
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()
