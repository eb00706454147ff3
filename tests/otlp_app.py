"""A small AI app, instrumented as teams do, for the OpenTelemetry tests (run as its own process).

It asks the official `openai` client for chat completions from an OpenAI-compatible server (the
test's fake), instrumented by OpenTelemetry's GenAI instrumentation for OpenAI
(`opentelemetry-instrumentation-openai-v2`) or by OpenInference's
(`openinference-instrumentation-openai`), and exports spans (and the GenAI events, as log
records) with the OpenTelemetry SDK's OTLP/HTTP exporters to the daemon, bearer token and all.

    python otlp_app.py DAEMON_URL TOKEN OPENAI_URL {openai-v2|openinference} CALLS
"""

from __future__ import annotations

import sys

from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

QUESTIONS = ["Where is my parcel?", "Can I change the delivery address?", "How do I return a jacket?"]


def main(daemon: str, token: str, openai_url: str, kind: str, calls: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    resource = Resource.create({"service.name": "support-bot", "deployment.environment": "prod"})
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{daemon}/v1/traces", headers=headers))
    )
    logging = LoggerProvider(resource=resource)
    logging.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{daemon}/v1/logs", headers=headers))
    )
    if kind == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracing, logger_provider=logging)
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

        OpenInference().instrument(tracer_provider=tracing)
    client = OpenAI(base_url=f"{openai_url}/v1", api_key="test-key", max_retries=0)
    for index in range(calls):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You answer customers of a parcel shop, briefly."},
                {"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]},
            ],
        )
    tracing.shutdown()  # flushes the spans
    logging.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
