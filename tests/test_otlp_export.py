"""Verdicts out, on both stores: after `aiqm cycle`, the judge and human verdicts on outputs that came
in over OTLP reach an OTLP/HTTP receiver on loopback (a real HTTP server decoding the protobuf) as
`gen_ai.evaluation.result` log records carrying the original trace and span ids; the next cycle
sends only what is new; a refusing endpoint never fails the cycle."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlp_support import TRACE, chat_attrs, span, span_id, traces
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.intake.otlp_spans import map_traces
from monitor.intake.otlp_store import store_mapped
from monitor.records import validate_label
from monitor.reporting.otlp_export import headers_from
from monitor.store.writes import insert_labels

if TYPE_CHECKING:
    from conftest import CliRunner


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], ExportLogsServiceRequest]] = []
        self.status = 200


@contextmanager
def receiver() -> Iterator[tuple[str, Receiver]]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the standard library's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.requests.append((dict(self.headers), ExportLogsServiceRequest.FromString(body)))
            self.send_response(got.status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/logs", got
    finally:
        server.shutdown()
        server.server_close()


def attrs_of(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in record.attributes:
        kind = pair.value.WhichOneof("value")
        out[pair.key] = getattr(pair.value, kind)
    return out


def label(index: int, source: str, verdict: str, **extra: Any) -> Any:
    return validate_label(
        {
            "output_id": f"{TRACE.hex()}-{span_id(index).hex()}",
            "feature": "support-bot",
            "verdict": verdict,
            "source": source,
            **extra,
        }
    )


def test_verdicts_go_out_beside_their_spans(
    aiqm: CliRunner, engine: Engine, store_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    request = traces(
        [span(i, now - timedelta(hours=1), 100.0, chat_attrs()) for i in (1, 2, 3)],
        {"service.name": "support-bot"},
    )
    store_mapped(engine, map_traces(request, Settings().otlp), now)
    with engine.begin() as conn:
        insert_labels(
            conn,
            [label(1, "human:ana", "fail", reason="wrong date"), label(2, "judge:tone", "pass", score=0.8)],
            now,
        )
    with receiver() as (url, got):
        config = tmp_path / "aiqm.yaml"
        config.write_text(
            json.dumps(
                {
                    "database_url": store_url,
                    "otlp": {"export_endpoint": url, "export_headers_env": "OTLP_HEADERS"},
                }
            ),
            encoding="utf-8",
        )
        at = (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ran = aiqm(
            "cycle",
            "--at",
            at,
            "--config",
            config,
            env={"OTLP_HEADERS": "Authorization=Bearer%20s3cret,x-team=ml"},
        )
        assert ran.code == 0, ran.err
        assert len(got.requests) == 1
        headers, sent = got.requests[0]
        assert headers["Authorization"] == "Bearer s3cret" and headers["x-team"] == "ml"
        assert headers["Content-Type"] == "application/x-protobuf"
        resource = attrs_of(sent.resource_logs[0].resource)
        assert resource["service.name"] == "ai-quality-monitor"
        records = sorted(sent.resource_logs[0].scope_logs[0].log_records, key=lambda r: r.span_id)
        assert [(r.trace_id, r.span_id, r.event_name) for r in records] == [
            (TRACE, span_id(1), "gen_ai.evaluation.result"),
            (TRACE, span_id(2), "gen_ai.evaluation.result"),
        ]
        first, second = (attrs_of(r) for r in records)
        assert first["gen_ai.evaluation.name"] == "ana" and first["aiqm.label.source"] == "human:ana"
        assert (
            first["gen_ai.evaluation.score.label"] == "fail"
            and first["gen_ai.evaluation.explanation"] == "wrong date"
        )
        assert second["gen_ai.evaluation.name"] == "tone" and second["gen_ai.evaluation.score.value"] == 0.8
        # A later verdict goes out with the next cycle, alone; a refusing endpoint does not fail it.
        with engine.begin() as conn:
            insert_labels(conn, [label(3, "human:bo", "unsure", reason="unclear")], datetime.now(UTC))
        got.status = 503
        later = (now + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ran = aiqm("cycle", "--at", later, "--config", config, env={"OTLP_HEADERS": "x=y"})
        assert ran.code == 0, ran.err
        assert len(got.requests) == 2
        records = list(got.requests[1][1].resource_logs[0].scope_logs[0].log_records)
        assert [(r.span_id, attrs_of(r)["aiqm.label.source"]) for r in records] == [(span_id(3), "human:bo")]


def test_headers_are_read_as_otel_exporter_otlp_headers() -> None:
    assert headers_from("a=1, b = x%3Dy ,broken,=nokey") == {"a": "1", "b": "x=y"}
