"""The read cache that answers hot polls: what it keeps, for how long, when it reads again, and
that a change made by the daemon itself is never overwritten by an older read."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import FEATURE, Clock, Site, site
from sqlalchemy import Engine

from monitor.daemon.read_cache import ReadCache
from monitor.store import cycle_queries as q
from monitor.store.writes import ensure_feature

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


class Source:
    """A store stand-in that counts its reads and answers what it holds now."""

    def __init__(self, value: Any = "v1") -> None:
        self.value = value
        self.reads = 0
        self.gate: threading.Event | None = None  # set: reads wait for it (a slow store)

    def read(self) -> Any:
        self.reads += 1
        value = self.value
        if self.gate is not None:
            assert self.gate.wait(10)
        if isinstance(value, Exception):
            raise value
        return value


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(scenario())


def test_a_fresh_entry_is_answered_without_reading_the_store() -> None:
    cache, source = ReadCache(60, Clock(START)), Source()

    async def scenario() -> list[Any]:
        return [await cache.get("k", source.read) for _ in range(50)]

    assert run(scenario) == ["v1"] * 50
    assert source.reads == 1


def test_an_entry_expires_by_the_daemons_clock() -> None:
    clock = Clock(START)
    cache, source = ReadCache(1.0, clock, monotonic=lambda: 0.0), Source()  # no stall can age it

    async def scenario() -> list[Any]:
        first = await cache.get("k", source.read)
        source.value = "v2"
        clock.advance(seconds=0.4)
        young = await cache.get("k", source.read)
        clock.advance(seconds=0.7)  # 1.1 s old: expired, read now
        old = await cache.get("k", source.read)
        return [first, young, old]

    assert run(scenario) == ["v1", "v1", "v2"]
    assert source.reads == 2


def test_an_entry_expires_by_the_monotonic_clock_too() -> None:
    cache, source = ReadCache(0.05, Clock(START)), Source()  # the daemon's clock stands still

    async def scenario() -> list[Any]:
        first = await cache.get("k", source.read)
        source.value = "v2"
        await asyncio.sleep(0.06)
        return [first, await cache.get("k", source.read)]

    assert run(scenario) == ["v1", "v2"]


def test_a_clock_going_back_ends_the_entry() -> None:
    clock = Clock(START)
    cache, source = ReadCache(60, clock), Source()

    async def scenario() -> list[Any]:
        first = await cache.get("k", source.read)
        source.value = "v2"
        clock.advance(seconds=-5)
        return [first, await cache.get("k", source.read)]

    assert run(scenario) == ["v1", "v2"]


def test_past_half_its_life_an_entry_is_still_answered_while_a_new_read_replaces_it() -> None:
    clock = Clock(START)
    cache, source = ReadCache(1.0, clock, monotonic=lambda: 0.0), Source()  # no stall can age it

    async def scenario() -> list[Any]:
        first = await cache.get("k", source.read)
        source.value = "v2"
        clock.advance(seconds=0.6)
        source.gate = threading.Event()  # the background read waits: the ask must not
        began = time.monotonic()
        stale = await cache.get("k", source.read)
        answered_in = time.monotonic() - began
        source.gate.set()
        for _ in range(200):  # the background read finishes
            await asyncio.sleep(0.01)
            if source.reads == 2 and not cache._reading:
                break
        clock.advance(seconds=0.1)
        # Waiting for the read would have taken the gate's 10 s.
        return [first, stale, answered_in < 5, await cache.get("k", source.read)]

    assert run(scenario) == ["v1", "v1", True, "v2"]
    assert source.reads == 2


def test_concurrent_askers_share_one_read() -> None:
    cache, source = ReadCache(60, Clock(START)), Source()
    source.gate = threading.Event()

    async def scenario() -> list[Any]:
        askers = [asyncio.create_task(cache.get("k", source.read)) for _ in range(20)]
        await asyncio.sleep(0.05)
        assert source.gate is not None
        source.gate.set()
        return list(await asyncio.gather(*askers))

    assert run(scenario) == ["v1"] * 20
    assert source.reads == 1


def test_a_failed_read_reaches_the_askers_and_nothing_is_kept() -> None:
    cache, source = ReadCache(60, Clock(START)), Source(RuntimeError("store down"))

    async def scenario() -> Any:
        with pytest.raises(RuntimeError, match="store down"):
            await cache.get("k", source.read)
        source.value = "back"
        return await cache.get("k", source.read)

    assert run(scenario) == "back"
    assert source.reads == 2


def test_a_read_under_way_does_not_overwrite_a_change_made_meanwhile() -> None:
    cache, source = ReadCache(60, Clock(START)), Source("before the override")
    source.gate = threading.Event()

    async def scenario() -> list[Any]:
        slow = asyncio.create_task(cache.get("k", source.read))
        await asyncio.sleep(0.05)  # the read has begun with the old value
        cache.put("k", "override")
        assert source.gate is not None
        source.gate.set()
        return [await slow, await cache.get("k", source.read)]

    assert run(scenario) == ["before the override", "override"]
    assert source.reads == 1


def test_forget_makes_the_next_ask_read() -> None:
    cache, source = ReadCache(60, Clock(START)), Source()

    async def scenario() -> list[Any]:
        first = await cache.get("k", source.read)
        source.value = "v2"
        cache.forget("k")
        return [first, await cache.get("k", source.read)]

    assert run(scenario) == ["v1", "v2"]


def test_zero_seconds_reads_every_time() -> None:
    cache, source = ReadCache(0, Clock(START)), Source()

    async def scenario() -> None:
        for _ in range(5):
            await cache.get("k", source.read)
        cache.put("k", "kept?")
        assert await cache.get("k", source.read) == "v1"

    run(scenario)
    assert source.reads == 6


def test_the_oldest_entry_makes_room() -> None:
    cache = ReadCache(60, Clock(START), max_entries=3)
    sources = {key: Source(key) for key in "abcd"}

    async def scenario() -> None:
        for key in "abcd":
            await cache.get(key, sources[key].read)
        for key in "bcd":
            await cache.get(key, sources[key].read)
        await cache.get("a", sources["a"].read)

    run(scenario)
    assert {key: source.reads for key, source in sources.items()} == {"a": 2, "b": 1, "c": 1, "d": 1}


def fire_fallback(engine: Engine, at: datetime) -> None:
    with engine.begin() as conn:
        ensure_feature(conn, FEATURE, at)
        q.set_feature_mode(conn, FEATURE, "review", "fallback: quality below the floor", at)


def test_the_status_endpoint_shows_a_change_made_elsewhere_within_the_lifetime(engine: Engine) -> None:
    with site(engine) as api:
        assert answered_mode(api) == "normal"
        fire_fallback(engine, api.clock.now - timedelta(minutes=1))  # another process's cycle
        lifetime = api.services.settings.server.read_cache_seconds
        api.clock.advance(seconds=lifetime)
        assert answered_mode(api) == "review"
        # An override made through this daemon shows at once, whatever the cache kept.
        assert api.post(
            f"/v1/features/{FEATURE}/override", "admin", {"mode": "off", "reason": "x"}
        ).is_success
        assert answered_mode(api) == "off"
        assert api.post(f"/ofrep/v1/evaluate/flags/{FEATURE}", "read").json()["value"] == "off"


def answered_mode(api: Site) -> str:
    answer = api.get(f"/v1/features/{FEATURE}/status", "read")
    assert answer.status_code == 200
    return str(answer.json()["mode"])
