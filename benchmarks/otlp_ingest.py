"""OTLP ingest against a real `aiqm serve`: spans/s over `POST /v1/traces` in protobuf and in
OTLP/JSON, beside outputs/s over `POST /v1/outputs`, one sequential client, one run.

Each span is a chat call in the current GenAI conventions (prompt and completion as
`gen_ai.input.messages` / `gen_ai.output.messages`, model, tokens, conversation id), about the
size of the logged output sent to `/v1/outputs` (the same texts, model and signals). Every
request carries `--batch` items with new ids, so everything is stored.

    .venv/bin/python benchmarks/otlp_ingest.py                  # SQLite in a temporary folder
    .venv/bin/python benchmarks/otlp_ingest.py --store postgresql+psycopg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

QUESTION = "My parcel 4411 was due on Friday and has not arrived; can you tell me where it is?"
ANSWER = "I am sorry for the wait. Parcel 4411 left our depot on Thursday and is due tomorrow before noon."


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def spans_request(start: int, count: int, now: datetime) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", "bench-otlp"))
    scope = resource.scope_spans.add()
    inputs = json.dumps([{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}])
    outputs = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}]
    )
    end = int(now.timestamp() * 1e9)
    for index in range(start, start + count):
        span = scope.spans.add(
            trace_id=index.to_bytes(16, "big"),
            span_id=(index + 1).to_bytes(8, "big"),
            name="chat gpt-4o-mini",
            kind=3,  # CLIENT
            start_time_unix_nano=end - 850_000_000,
            end_time_unix_nano=end,
        )
        span.attributes.extend(
            [
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.request.model", "gpt-4o-mini"),
                _kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                _kv("gen_ai.usage.input_tokens", 31),
                _kv("gen_ai.usage.output_tokens", 24),
                _kv("gen_ai.conversation.id", f"conv-{index}"),
                _kv("gen_ai.input.messages", inputs),
                _kv("gen_ai.output.messages", outputs),
            ]
        )
    return request


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    doc = MessageToDict(request)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):
            span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def outputs_batch(start: int, count: int, now: datetime) -> bytes:
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        [
            {
                "id": f"out-{index}",
                "feature": "bench-outputs",
                "ts": ts,
                "input": QUESTION,
                "output": ANSWER,
                "model_version": "gpt-4o-mini-2024-07-18",
                "signals": {"latency_ms": 850.0, "tokens_in": 31, "tokens_out": 24},
                "metadata": {"conversation_id": f"conv-{index}"},
            }
            for index in range(start, start + count)
        ]
    ).encode()


def start_daemon(folder: Path, store: str) -> tuple[subprocess.Popen[bytes], str, str]:
    config = folder / "aiqm.yaml"
    config.write_text(json.dumps({"database_url": store, "server": {"max_batch": 5000}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIQM_")}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "token",
            "create",
            "--role",
            "ingest",
            "--name",
            f"bench-{time.time_ns()}",
            "--config",
            str(config),
        ],
        capture_output=True,
        check=True,
        env=env,
    )
    log = folder / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "0"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "serving on http://" in line:
                url = line.split("serving on ", 1)[1].split()[0]
                return process, url, made.stdout.decode().strip()
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the daemon did not start:\n" + log.read_text())


def timed(
    http: httpx.Client,
    path: str,
    bodies: list[bytes],
    headers: dict[str, str],
    check: Callable[[httpx.Response], None],
) -> float:
    started = time.perf_counter()
    for body in bodies:
        check(http.post(path, content=body, headers=headers))
    return time.perf_counter() - started


def _ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")
    if response.headers["content-type"] == "application/json" and response.json().get("partialSuccess"):
        raise SystemExit(f"partly rejected: {response.text[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", default="", help="the daemon's database URL (default: SQLite in a temporary folder)"
    )
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    now = datetime.now(UTC) - timedelta(minutes=1)
    n = args.requests * args.batch
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        process, url, token = start_daemon(Path(tmp), store)
        auth = {"Authorization": f"Bearer {token}"}
        try:
            protobuf = [
                spans_request(i * args.batch, args.batch, now).SerializeToString()
                for i in range(args.requests)
            ]
            as_json = [
                otlp_json(spans_request((args.requests + i) * args.batch, args.batch, now))
                for i in range(args.requests)
            ]
            plain = [outputs_batch(i * args.batch, args.batch, now) for i in range(args.requests)]
            with httpx.Client(base_url=url, timeout=120) as http:
                rows: list[tuple[str, float, int]] = [
                    (
                        "POST /v1/traces, protobuf",
                        timed(
                            http,
                            "/v1/traces",
                            protobuf,
                            {**auth, "Content-Type": "application/x-protobuf"},
                            _ok,
                        ),
                        sum(map(len, protobuf)),
                    ),
                    (
                        "POST /v1/traces, OTLP/JSON",
                        timed(http, "/v1/traces", as_json, {**auth, "Content-Type": "application/json"}, _ok),
                        sum(map(len, as_json)),
                    ),
                    (
                        "POST /v1/outputs, JSON",
                        timed(http, "/v1/outputs", plain, {**auth, "Content-Type": "application/json"}, _ok),
                        sum(map(len, plain)),
                    ),
                ]
        finally:
            process.terminate()
            process.wait(timeout=30)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = platform.processor() or platform.machine()
    print(
        f"{machine}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"store {store.split(':', 1)[0]}, load average {load:.1f}"
    )
    print(f"{n} items per path, {args.requests} requests of {args.batch}, one sequential client\n")
    print("| path | items | time | items/s | body bytes per item |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, size in rows:
        print(f"| {name} | {n:,} | {seconds:.2f} s | {n / seconds:,.0f} | {size / n:,.0f} |")


if __name__ == "__main__":
    main()
