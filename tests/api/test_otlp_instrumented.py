"""The issue's "done when" for OpenTelemetry, with the real parts on both stores: an app using the
official `openai` client against a local OpenAI-compatible server, instrumented by
`opentelemetry-instrumentation-openai-v2` (or OpenInference's instrumentation), exports with the
SDK's OTLP/HTTP exporters to a real `aiqm serve`; its outputs are stored with model, tokens,
latency and feature, and `aiqm cycle` samples them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from test_api_serve import daemon, environment, token

from monitor.store.engine import make_engine
from monitor.store.tables import outputs, samples

if TYPE_CHECKING:
    from conftest import CliRunner

APP = Path(__file__).resolve().parent.parent / "otlp_app.py"
ANSWER = "Your parcel ships tomorrow; you will get a tracking link by e-mail."
CALLS = 6


class FakeOpenAI(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` as OpenAI answers it, after a short, real delay."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.02)
        answer = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"] + "-2024-07-18",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}}
            ],
            "usage": {"prompt_tokens": 31, "completion_tokens": 14, "total_tokens": 45},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def fake_openai() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_app(url: str, key: str, openai_url: str, kind: str, **env: str) -> None:
    done = subprocess.run(
        [sys.executable, str(APP), url, key, openai_url, kind, str(CALLS)],
        env={**environment(), **env},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Failed to export" not in done.stderr, done.stderr.decode()


def write_config(folder: Path, store_url: str) -> Path:
    config = folder / "aiqm.yaml"
    config.write_text(
        json.dumps(
            {"database_url": store_url, "otlp": {"segment_attributes": {"env": "deployment.environment"}}}
        ),
        encoding="utf-8",
    )
    return config


def stored(store_url: str) -> list[dict[str, Any]]:
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(select(outputs).order_by(outputs.c.ts)).mappings()]
    finally:
        engine.dispose()


def sampled(store_url: str) -> set[str]:
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(select(samples.c.output_id))}
    finally:
        engine.dispose()


def check_outputs(rows: list[dict[str, Any]]) -> None:
    assert len(rows) == CALLS
    for row in rows:
        assert row["feature"] == "support-bot"
        assert row["model_version"] == "gpt-4o-mini-2024-07-18"
        assert row["signals"]["tokens_in"] == 31 and row["signals"]["tokens_out"] == 14
        assert row["signals"]["latency_ms"] >= 20.0  # the fake's delay, measured by the span
        assert row["segment"] == {"env": "prod"}
        trace_id, span_id = row["output_id"].split("-")
        assert row["metadata"]["otel"]["trace_id"] == trace_id and len(span_id) == 16
        assert ANSWER in json.dumps(row["output"])
        assert (
            "parcel" in json.dumps(row["input"])
            or "address" in json.dumps(row["input"])
            or "jacket" in json.dumps(row["input"])
        )


def cycle_samples(aiqm: CliRunner, config: Path, store_url: str) -> None:
    at = (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ran = aiqm("cycle", "--at", at, "--config", config)
    assert ran.code == 0, ran.err
    outcome = json.loads(ran.out.splitlines()[0])
    assert outcome["feature"] == "support-bot" and outcome["outputs"] == CALLS
    assert outcome["sampled"] == CALLS  # fewer than the sample size: all of them
    assert sampled(store_url) == {row["output_id"] for row in stored(store_url)}


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(
            {
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
            },
            id="content-as-log-events",
        ),
        pytest.param(
            {
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
            },
            id="content-on-spans",
        ),
    ],
)
def test_an_app_instrumented_by_opentelemetry_is_monitored(
    aiqm: CliRunner, store_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    config = write_config(tmp_path, store_url)
    key = token(aiqm, config, "ingest")
    with fake_openai() as openai_url, daemon(config, tmp_path / "daemon.log") as served:
        run_app(served.url, key, openai_url, "openai-v2", **env)
    check_outputs(stored(store_url))
    cycle_samples(aiqm, config, store_url)


def test_an_app_instrumented_by_openinference_is_monitored(
    aiqm: CliRunner, store_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, store_url)
    key = token(aiqm, config, "ingest")
    with fake_openai() as openai_url, daemon(config, tmp_path / "daemon.log") as served:
        run_app(served.url, key, openai_url, "openinference")
    rows = stored(store_url)
    check_outputs(rows)
    assert all(row["metadata"]["otel"]["span_kind"] == "LLM" for row in rows)
    cycle_samples(aiqm, config, store_url)
