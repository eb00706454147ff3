"""Load test (issue 7): sustained HTTP ingest against a real `aiqm serve` while the status endpoint
is polled at a fixed rate; loopback only, bounded in time.

    .venv/bin/python benchmarks/load.py --store sqlite --seconds 20
    .venv/bin/python benchmarks/load.py --store postgresql --seconds 20 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/aiqm_load

The daemon runs in its own process (`python -m monitor serve`) on a fresh store; this process
sends batches of `--batch` outputs from `--clients` threads for `--seconds`, while a third
process requests `GET /v1/features/<f>/status` at `--status-rate` per second (paced, not
back-to-back) and records each latency. It prints the achieved ingest rate and the status
latencies' p50/p99 as JSON. Targets: >= 5,000 outputs/s on SQLite, more on PostgreSQL, status
p99 under 20 ms at 200 requests/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

FEATURE = "load-test"
HARD_LIMIT_SECONDS = 600  # whatever the arguments, nothing here runs longer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bodies(batch: int, count: int, client: int) -> list[bytes]:
    """`count` request bodies of `batch` realistic outputs each, ids unique per client."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    bodies = []
    for b in range(count):
        items = []
        for i in range(batch):
            n = b * batch + i
            items.append(
                {
                    "id": f"c{client}-{n}",
                    "feature": FEATURE,
                    "ts": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
                    "input": f"Customer question {n}: where is my parcel, order {n * 7}?",
                    "output": f"Answer {n}: it ships tomorrow, tracking number TR{n:08d}.",
                    "model_version": "gpt-x-2026-01",
                    "config_version": "prompt-v7",
                    "segment": {"language": ("en", "de", "fr")[n % 3], "channel": "email"},
                    "signals": {"confidence": (n % 100) / 100, "latency_ms": 800 + n % 400, "tokens_out": 42},
                    "user_action": ("accepted", "edited", "rejected")[n % 3],
                }
            )
        bodies.append(orjson.dumps(items))
    return bodies


def _status_prober(url: str, token: str, rate: float, seconds: float, out: Any) -> None:
    """Another process: GET the status `rate` times a second for `seconds`, on a fixed schedule
    (four threads share it, so one slow answer does not delay the next); send back latencies (ms)."""
    latencies: list[float] = []
    errors = [0]
    threads_n = 4
    interval = threads_n / rate
    lock = threading.Lock()
    begin = time.perf_counter() + 0.5

    def probe(offset: float) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            http.get(f"/v1/features/{FEATURE}/status")  # connect once, outside the measurement
            next_at = begin + offset
            while next_at - begin < seconds:
                now = time.perf_counter()
                if now < next_at:
                    time.sleep(next_at - now)
                sent = time.perf_counter()
                answer = http.get(f"/v1/features/{FEATURE}/status")
                took = (time.perf_counter() - sent) * 1000
                with lock:
                    latencies.append(took)
                    errors[0] += answer.status_code != 200
                next_at += interval

    threads = [threading.Thread(target=probe, args=(i / rate,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    out.send({"latencies": latencies, "errors": errors[0], "seconds": time.perf_counter() - begin})
    out.close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the daemon did not start in time")


def _fresh_database(url: str) -> None:
    """Drop and create the PostgreSQL database `url` names, so every run starts from an empty store."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def machine_load() -> dict[str, Any]:
    """What else the machine was doing: the load averages, and the busiest other processes (ps)."""
    one, five, fifteen = os.getloadavg()
    busy: list[str] = []
    try:
        listing = subprocess.run(
            ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.splitlines()
        busy = [line.strip() for line in listing[:5]]
    except (OSError, subprocess.SubprocessError):
        pass
    return {"loadavg_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)], "busiest": busy}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds = min(args.seconds, HARD_LIMIT_SECONDS / 2)
    folder = Path(tempfile.mkdtemp(prefix="aiqm-load-"))
    ingest_token, read_token = _write_config(args, folder)
    if args.store == "postgresql":
        _fresh_database(args.database_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    daemon = _start_daemon(folder, port)
    try:
        _wait_ready(url, daemon, time.monotonic() + 60)
        headers = {"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/json"}
        # The feature exists before the status is polled.
        httpx.post(f"{url}/v1/outputs", content=_bodies(1, 1, 999)[0], headers=headers, timeout=30)
        receiver, sender = mp.Pipe(duplex=False)
        prober = mp.get_context("spawn").Process(
            target=_status_prober, args=(url, read_token, args.status_rate, seconds, sender)
        )
        load_before = machine_load()
        prober.start()
        clients = _Clients(args, url, headers)
        elapsed = clients.run(seconds)
        empty: dict[str, Any] = {"latencies": [], "errors": -1, "seconds": 0}
        probe: dict[str, Any] = receiver.recv() if receiver.poll(seconds + 60) else empty
        prober.join(timeout=30)
        return {
            **_summary(args, elapsed, clients, probe),
            "daemon_log": str(folder / "daemon.log"),
            "load_before": load_before,
            "load_after": machine_load(),
        }
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()


def _write_config(args: argparse.Namespace, folder: Path) -> tuple[str, str]:
    """The daemon's configuration in `folder`, with an ingest and a read token; the two tokens."""
    ingest_token, read_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    config = {
        "data_dir": str(folder),
        "database_url": args.database_url if args.store == "postgresql" else "",
        "server": {"max_batch": max(args.batch, 5000), "max_body_bytes": 50_000_000},
        "tokens": [
            {
                "name": "load-ingest",
                "role": "ingest",
                "sha256": hashlib.sha256(ingest_token.encode()).hexdigest(),
            },
            {"name": "load-read", "role": "read", "sha256": hashlib.sha256(read_token.encode()).hexdigest()},
        ],
    }
    (folder / "aiqm.yaml").write_text(json.dumps(config), encoding="utf-8")
    return ingest_token, read_token


def _start_daemon(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    command = [sys.executable, "-m", "monitor", "serve", "--config", str(folder / "aiqm.yaml")]
    return subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "daemon.log", "wb"),
    )


class _Clients:
    """Client threads posting batches of outputs, paced (--ingest-rate) or as fast as taken (0)."""

    def __init__(self, args: argparse.Namespace, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers, self.count = url, headers, args.clients
        self.bodies = [_bodies(args.batch, 4, c) for c in range(args.clients)]
        self.stored = [0] * args.clients
        self.failures = [0] * args.clients
        self.stop_at = 0.0
        self.interval = args.clients * args.batch / args.ingest_rate if args.ingest_rate else 0.0

    def run(self, seconds: float) -> float:
        """Post for `seconds`; how long it really took."""
        begin = time.perf_counter()
        self.stop_at = begin + seconds
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=HARD_LIMIT_SECONDS)
        return time.perf_counter() - begin

    def client(self, index: int) -> None:
        marker = f'"id":"c{index}-'.encode()
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as http:
            next_at = time.perf_counter()
            for request in range(10**9):
                if not self._wait_turn(next_at):
                    return
                next_at += self.interval
                # Every request a fresh batch: the template with ids unique to this request.
                template = self.bodies[index][request % len(self.bodies[index])]
                answer = http.post(
                    "/v1/outputs", content=template.replace(marker, f'"id":"c{index}-r{request}-'.encode())
                )
                if answer.status_code == httpx.codes.OK:
                    self.stored[index] += int(answer.json()["stored"])
                else:
                    self.failures[index] += 1

    def _wait_turn(self, next_at: float) -> bool:
        """Sleep until the next paced request; False once the run is over."""
        now = time.perf_counter()
        if now < next_at:
            time.sleep(max(0.0, min(next_at, self.stop_at) - now))
        return time.perf_counter() < self.stop_at


def _summary(
    args: argparse.Namespace, elapsed: float, clients: _Clients, probe: dict[str, Any]
) -> dict[str, Any]:
    latencies: list[float] = probe["latencies"]
    return {
        "store": args.store,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        "seconds": round(elapsed, 2),
        "batch": args.batch,
        "clients": args.clients,
        "outputs_stored": sum(clients.stored),
        "ingest_rate_asked": args.ingest_rate or "max",
        "outputs_per_second": round(sum(clients.stored) / elapsed),
        "failed_requests": sum(clients.failures),
        "status_requests": len(latencies),
        "status_rate": round(len(latencies) / probe["seconds"], 1) if probe["seconds"] else 0,
        "status_errors": probe["errors"],
        "status_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "status_p99_ms": round(_percentile(latencies, 0.99), 2) if latencies else None,
        "status_max_ms": round(max(latencies), 2) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/aiqm_load")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--status-rate", type=float, default=200.0)
    parser.add_argument(
        "--ingest-rate", type=float, default=0.0, help="outputs/s to send, paced (0: as fast as taken)"
    )
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
