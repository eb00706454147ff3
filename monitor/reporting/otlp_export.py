"""Verdicts out: each cycle's judge and human verdicts as OTLP `gen_ai.evaluation.result` log
records, linked to the span the output came from, so they show beside the trace.

Set `otlp.export_endpoint` (an OTLP/HTTP logs URL, e.g. a collector's `http://collector:4318/v1/logs`)
and, for its headers, `otlp.export_headers_env` (the name of an environment variable holding
`key=value,key2=value2`, as `OTEL_EXPORTER_OTLP_HEADERS`). After a feature's cycle, the labels
received since the previous cycle finished, up to this one's end, on outputs that came in over
OTLP (their trace and span ids are kept in `metadata.otel`), are POSTed as one protobuf
`ExportLogsServiceRequest`. Each record carries `gen_ai.evaluation.name` (the judge's or the
reviewer's name), `gen_ai.evaluation.score.label` (pass, fail or unsure), the score and the
reason when there are, and `aiqm.label.source` (`judge:<name>` or `human:<name>`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import unquote

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from sqlalchemy import Engine

import monitor
from monitor.config import Settings
from monitor.store.cycle_queries import cycle_row
from monitor.store.otlp_queries import OtelVerdict, otel_verdicts, previous_cycle_end

__all__ = ["EVALUATION_EVENT", "ExportFailed", "export_after_cycle", "export_verdicts", "verdict_request"]

log = logging.getLogger(__name__)

EVALUATION_EVENT = "gen_ai.evaluation.result"
SEVERITY_INFO = 9  # OTLP's SEVERITY_NUMBER_INFO
NANOS = 1_000_000_000


class ExportFailed(Exception):
    """The endpoint did not take the verdicts (an HTTP error or no answer)."""


def _attr(key: str, value: str | float) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _nanos(ts: datetime) -> int:
    return int(ts.timestamp()) * NANOS + ts.microsecond * 1000


def _record(verdict: OtelVerdict, observed: int) -> LogRecord:
    record = LogRecord(
        time_unix_nano=_nanos(verdict.ts),
        observed_time_unix_nano=observed,
        severity_number=SEVERITY_INFO,  # type: ignore[arg-type]
        severity_text="INFO",
        event_name=EVALUATION_EVENT,
        trace_id=bytes.fromhex(verdict.trace_id),
        span_id=bytes.fromhex(verdict.span_id),
    )
    attributes = [
        _attr("event.name", EVALUATION_EVENT),
        _attr("gen_ai.evaluation.name", verdict.source.split(":", 1)[1]),
        _attr("gen_ai.evaluation.score.label", verdict.verdict),
        _attr("aiqm.label.source", verdict.source),
        _attr("aiqm.feature", verdict.feature),
        _attr("aiqm.output_id", verdict.output_id),
    ]
    if verdict.score is not None:
        attributes.append(_attr("gen_ai.evaluation.score.value", float(verdict.score)))
    if verdict.reason:
        attributes.append(_attr("gen_ai.evaluation.explanation", verdict.reason))
    record.attributes.extend(attributes)
    return record


def verdict_request(verdicts: Sequence[OtelVerdict], now: datetime) -> ExportLogsServiceRequest:
    """The verdicts as one OTLP logs request from the `ai-quality-monitor` service."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        [_attr("service.name", "ai-quality-monitor"), _attr("service.version", monitor.__version__)]
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "monitor.reporting.otlp_export"
    observed = _nanos(now)
    scope_logs.log_records.extend(_record(verdict, observed) for verdict in verdicts)
    return request


def headers_from(value: str) -> dict[str, str]:
    """`key=value,key2=value2` (values URL-encoded, as OTEL_EXPORTER_OTLP_HEADERS) as headers."""
    headers: dict[str, str] = {}
    for pair in value.split(","):
        key, sep, item = pair.partition("=")
        if sep and key.strip():
            headers[key.strip()] = unquote(item.strip())
    return headers


def export_verdicts(
    settings: Settings,
    verdicts: Sequence[OtelVerdict],
    now: datetime,
    http: httpx.Client | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """POST the verdicts to `otlp.export_endpoint`; how many were sent. ExportFailed if refused."""
    otlp = settings.otlp
    if not otlp.export_endpoint or not verdicts:
        return 0
    headers = {"Content-Type": "application/x-protobuf"}
    if otlp.export_headers_env:
        headers.update(headers_from(environ.get(otlp.export_headers_env, "")))
    body = verdict_request(verdicts, now).SerializeToString()
    client = http or httpx.Client()
    try:
        response = client.post(
            otlp.export_endpoint, content=body, headers=headers, timeout=otlp.export_timeout_seconds
        )
    except httpx.HTTPError as exc:
        raise ExportFailed(f"{otlp.export_endpoint}: {type(exc).__name__}") from None
    finally:
        if http is None:
            client.close()
    if not response.is_success:
        raise ExportFailed(f"{otlp.export_endpoint}: HTTP {response.status_code}")
    return len(verdicts)


def export_after_cycle(
    engine: Engine, settings: Settings, feature: str, at: datetime, http: httpx.Client | None = None
) -> int:
    """After the feature's cycle at `at`: export the verdicts received since the previous cycle
    finished, up to this one's end. Never raises (a failure is logged; how many were sent)."""
    if not settings.otlp.export_endpoint:
        return 0
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            row = cycle_row(conn, feature, at)
            if row is None or row["finished_at"] is None:
                return 0
            verdicts = otel_verdicts(conn, feature, previous_cycle_end(conn, feature, at), row["finished_at"])
        sent = export_verdicts(settings, verdicts, row["finished_at"], http)
    except Exception as exc:
        log.warning(
            "exporting the verdicts of %s after the cycle at %s failed: %s", feature, at.isoformat(), exc
        )
        return 0
    if sent:
        log.info("%d verdicts of %s exported over OTLP in %.2f s", sent, feature, time.monotonic() - started)
    return sent
