"""A small client for the AI app: log outputs in the background, read the feature's mode.

    from monitor.client import MonitorClient

    monitor = MonitorClient("http://127.0.0.1:8000", token=INGEST_TOKEN, read_token=READ_TOKEN)
    monitor.log_output({"id": request_id, "feature": "support-reply", "ts": now, "output": reply})
    if monitor.mode("support-reply") != "normal":
        ...  # review before sending, use the fallback, or switch the feature off

Neither call ever blocks the app's request for long or raises:

- `log_output` puts the record on a bounded queue and returns; a daemon thread sends batches
  (`POST /v1/outputs`) every `flush_interval` seconds or `batch_size` records. When the queue is
  full the oldest record is dropped (and counted); a batch the daemon cannot take now (network,
  5xx, 429) is retried with backoff, then dropped (and counted); records the daemon calls bad
  (422) are dropped (and counted) and the rest of their batch is sent again.
- `mode` reads `GET /v1/features/{feature}/status` with a short timeout and keeps the answer
  for `mode_ttl` seconds; when the daemon is unreachable, slow or refuses, it returns the safe
  default (`default_mode`, or the `default` given to the call) and asks again only after
  `retry_after` seconds, so a down daemon costs the app one short timeout now and then.

Tokens: `token` needs the `ingest` role to log; `mode` uses `read_token` (role `read`) when
given, else `token` (which then needs `admin`, or reads fail and `mode` answers the default).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = ["MODES", "ClientStats", "MonitorClient"]

log = logging.getLogger(__name__)

MODES = frozenset({"normal", "review", "fallback", "off"})
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ClientStats:
    """Counts since the client was made."""

    queued: int  # records waiting to be sent now
    sent: int  # records the daemon took (stored or already there)
    dropped: int  # oldest records dropped because the queue was full
    rejected: int  # records the daemon called bad (422), or that are not JSON
    failed: int  # records given up on after retries (daemon down, or the token refused)


class MonitorClient:
    """Background batching of logged outputs and a cached, never-failing mode read."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        read_token: str | None = None,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        default_mode: str = "normal",
        mode_ttl: float = 10.0,
        mode_timeout: float = 0.5,
        retry_after: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if default_mode not in MODES:
            raise ValueError(f"default_mode must be one of {sorted(MODES)}")
        self.base_url = base_url.rstrip("/")
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.retries = retries
        self.backoff = backoff
        self.default_mode = default_mode
        self.mode_ttl = mode_ttl
        self.retry_after = retry_after
        self._sender = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._reader = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {read_token or token}"},
            timeout=mode_timeout,
            transport=transport,
        )
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queue = max(1, max_queue)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closing = False
        self._sent = self._dropped = self._rejected = self._failed = 0
        self._modes: dict[str, tuple[str, float]] = {}
        self._modes_lock = threading.Lock()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="aiqm-client-sender", daemon=True)
        self._thread.start()
        # At interpreter exit, queued records get a last chance to go (the thread keeps us alive).
        self._finalizer = weakref.finalize(self, _close_at_exit, weakref.ref(self))

    # ------------------------------------------------------------------ logging outputs

    def log_output(self, record: Mapping[str, Any]) -> None:
        """Queue one output for sending; fills `id` (a UUID) and `ts` (now) when missing. Never raises."""
        try:
            data = dict(record)
            data.setdefault("id", uuid.uuid4().hex)
            ts = data.get("ts")
            if ts is None:
                data["ts"] = datetime.now(UTC).isoformat()
            elif isinstance(ts, datetime):
                data["ts"] = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).isoformat()
            encoded = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
        except Exception:
            with self._cond:
                self._rejected += 1
            self._warn_once("encode", "a record could not be encoded as JSON; dropped")
            return
        with self._cond:
            if self._closing:
                self._dropped += 1
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(encoded)
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Send what is queued now; True when everything was handed over within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
                self._cond.notify_all()
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush (up to `timeout` seconds), stop the sender, close connections; True if all was sent."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.1, timeout))
        self._sender.close()
        self._reader.close()
        self._finalizer.detach()
        return flushed

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._cond:
            return ClientStats(len(self._queue), self._sent, self._dropped, self._rejected, self._failed)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.flush_interval)
                if self._closing and not self._queue:
                    return
                if not self._queue:
                    continue
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                self._send(batch)
            except Exception:  # never let the sender die
                log.exception("aiqm client: sending a batch failed")
                with self._cond:
                    self._failed += len(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _send(self, batch: list[bytes]) -> None:
        attempt = 0
        while batch:
            body = b"[" + b",".join(batch) + b"]"
            try:
                response = self._sender.post("/v1/outputs", content=body)
            except httpx.HTTPError as exc:
                status, reason = None, type(exc).__name__
            else:
                status, reason = response.status_code, f"HTTP {response.status_code}"
            if status == httpx.codes.OK:
                with self._cond:
                    self._sent += len(batch)
                return
            if status == httpx.codes.UNPROCESSABLE_ENTITY:
                bad = _bad_indices(response)
                if not bad or len(bad) >= len(batch):
                    with self._cond:
                        self._rejected += len(batch)
                    self._warn_once("422", "the daemon rejected logged outputs as bad records")
                    return
                with self._cond:
                    self._rejected += len(bad)
                self._warn_once("422", "the daemon rejected logged outputs as bad records")
                batch = [item for i, item in enumerate(batch) if i not in bad]
                continue
            if status is not None and status not in RETRY_STATUS:
                with self._cond:
                    self._failed += len(batch)
                self._warn_once(str(status), f"the daemon refused logged outputs ({reason}); check the token")
                return
            attempt += 1
            if attempt > self.retries or self._closing:
                with self._cond:
                    self._failed += len(batch)
                self._warn_once("down", f"the daemon did not take logged outputs ({reason}); dropped")
                return
            time.sleep(self.backoff * 2 ** (attempt - 1))

    # ------------------------------------------------------------------ reading the mode

    def mode(self, feature: str, default: str | None = None) -> str:
        """The feature's mode (`normal`, `review`, `fallback`, `off`), or the safe default. Never raises."""
        fallback = default if default in MODES else self.default_mode
        now = time.monotonic()
        with self._modes_lock:
            cached = self._modes.get(feature)
        if cached is not None and cached[1] > now:
            return cached[0] if cached[0] in MODES else fallback
        mode, ttl = self._fetch_mode(feature)
        with self._modes_lock:
            self._modes[feature] = (mode or "", time.monotonic() + ttl)
        return mode or fallback

    def _fetch_mode(self, feature: str) -> tuple[str | None, float]:
        try:
            response = self._reader.get(f"/v1/features/{feature}/status")
        except httpx.HTTPError as exc:
            self._warn_once("mode-down", f"cannot read modes ({type(exc).__name__}); using the default")
            return None, self.retry_after
        except Exception:
            return None, self.retry_after
        if response.status_code != httpx.codes.OK:
            self._warn_once(
                f"mode-{response.status_code}",
                f"reading the mode of {feature!r} answered HTTP {response.status_code}; using the default",
            )
            return None, self.retry_after
        try:
            mode = response.json().get("mode")
        except (ValueError, AttributeError):
            return None, self.retry_after
        return (mode, self.mode_ttl) if mode in MODES else (None, self.retry_after)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("aiqm client: %s", message)


def _bad_indices(response: httpx.Response) -> set[int]:
    try:
        errors = response.json().get("errors", [])
        return {int(e["index"]) for e in errors if isinstance(e.get("index"), int)}
    except (ValueError, AttributeError, KeyError, TypeError):
        return set()


def _close_at_exit(ref: weakref.ref[MonitorClient]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=2.0)
