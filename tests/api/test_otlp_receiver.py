"""`POST /v1/traces` and `POST /v1/logs` on both stores, over real HTTP: GenAI spans in protobuf and
OTLP/JSON (gzip too) become logged outputs with model, tokens, latency, feature, segments; the
older event form and OpenInference's attributes too; evaluation results become judge labels;
OTLP's partial success names the first bad span; malformed bodies are 4xx and store nothing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from api_support import NOW, Site, settings_for, site
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp_support import TRACE, chat_attrs, log_record, logs, otlp_json, span, span_id, traces
from sqlalchemy import Engine, func, select

from monitor.config import Settings
from monitor.store.tables import labels, outputs

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
APP = {"service.name": "support-bot", "deployment.environment": "prod"}
START = NOW - timedelta(hours=1)


def settings(**otlp: Any) -> Settings:
    base = settings_for(max_body_bytes=2_000_000)
    return Settings(**{**base.model_dump(exclude={"config_file"}), "otlp": otlp})


@pytest.fixture
def api(engine: Engine) -> Iterator[Site]:
    config = settings(
        segment_attributes={"env": "deployment.environment", "tier": "app.tier"},
        user_action_attribute="app.user_action",
        max_attribute_chars=50_000,
    )
    with site(engine, config) as served:
        yield served


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(outputs)).mappings().all()
    return {row["output_id"]: dict(row) for row in rows}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def oid(index: int) -> str:
    return f"{TRACE.hex()}-{span_id(index).hex()}"


def post(api: Site, path: str, body: bytes, headers: dict[str, str], role: str = "ingest") -> Any:
    return api.post(path, role, content=body, headers=headers)


def test_genai_spans_in_protobuf_become_outputs_and_other_spans_are_counted(
    api: Site, engine: Engine
) -> None:
    request = traces(
        [
            span(1, START, 812.5, chat_attrs(**{"app.tier": "gold", "app.user_action": "accepted"})),
            span(2, START, 3.0, {"http.method": "GET"}, name="GET /orders"),
            span(3, START, 40.0, {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e-3"}),
        ],
        APP,
    )
    response = post(
        api,
        "/v1/traces",
        gzip.compress(request.SerializeToString()),
        {**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0
    assert answer.partial_success.error_message == "2 spans not GenAI operations were ignored"
    rows = stored(engine)
    assert list(rows) == [oid(1)]
    row = rows[oid(1)]
    assert row["feature"] == "support-bot"
    assert row["model_version"] == "gpt-4o-mini-2024-07-18"
    assert row["signals"] == {"latency_ms": 812.5, "tokens_in": 21, "tokens_out": 7}
    assert row["input"] == "Where is my parcel?" and row["output"] == "It ships tomorrow."
    assert row["segment"] == {"env": "prod", "tier": "gold"} and row["user_action"] == "accepted"
    assert row["ts"] == START + timedelta(milliseconds=812.5)
    assert row["metadata"]["otel"] == {
        "trace_id": TRACE.hex(),
        "span_id": span_id(1).hex(),
        "span_name": "chat gpt-4o-mini",
        "operation": "chat",
        "provider": "openai",
        "conversation_id": "conv-1",
    }
    again = post(api, "/v1/traces", request.SerializeToString(), PROTOBUF)
    assert again.status_code == 200 and count(engine, outputs) == 1  # idempotent


def test_otlp_json_with_hex_ids_and_string_integers(api: Site, engine: Engine) -> None:
    body = otlp_json(traces([span(4, START, 250.0, chat_attrs())], APP))
    assert b'"traceId": "0af7651916cd43dd8448eb211c80319c"' in body and b'"startTimeUnixNano": "' in body
    response = post(api, "/v1/traces", gzip.compress(body), {**JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}  # all accepted: no partial success
    row = stored(engine)[oid(4)]
    assert row["signals"]["latency_ms"] == 250.0 and row["signals"]["tokens_in"] == 21


def test_openinference_attributes(api: Site, engine: Engine) -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "Refund?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Refunds take 5 days.",
        "llm.token_count.prompt": 12,
        "llm.token_count.completion": 5,
        "output.value": "Refunds take 5 days.",
    }
    chain = {"openinference.span.kind": "CHAIN", "input.value": "Refund?"}
    response = post(
        api,
        "/v1/traces",
        otlp_json(traces([span(5, START, 90.0, attrs), span(6, START, 95.0, chain)], APP)),
        JSON,
    )
    assert response.json()["partialSuccess"]["errorMessage"] == "1 spans not GenAI operations were ignored"
    row = stored(engine)[oid(5)]
    assert row["model_version"] == "gpt-4o" and row["output"] == "Refunds take 5 days."
    assert row["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Refund?"},
    ]
    assert row["signals"] == {"latency_ms": 90.0, "tokens_in": 12, "tokens_out": 5}


def test_older_event_form_on_the_span_and_as_log_records_in_either_order(api: Site, engine: Engine) -> None:
    old = {"gen_ai.system": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
    events = [
        ("gen_ai.user.message", {"content": "Hi"}),
        ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"content": "Hello!"}}),
    ]
    post(
        api,
        "/v1/traces",
        traces([span(7, START, 10.0, old, events=events)], APP).SerializeToString(),
        PROTOBUF,
    )
    row = stored(engine)[oid(7)]
    assert (row["input"], row["output"]) == ("Hi", "Hello!")
    # The span first, then its log events (as openai-v2 sends them): the output is completed.
    post(
        api,
        "/v1/traces",
        traces([span(8, START, 20.0, {**old, "gen_ai.usage.input_tokens": 3})], APP).SerializeToString(),
        PROTOBUF,
    )
    assert stored(engine)[oid(8)]["output"] is None
    records = [
        log_record(8, START, "gen_ai.system.message", {"content": "Be kind."}, {"gen_ai.system": "openai"}),
        log_record(8, START, "gen_ai.user.message", {"content": "Hi"}),
        log_record(
            8, START, "gen_ai.choice", {"index": 0, "message": {"role": "assistant", "content": "Hey"}}
        ),
        log_record(8, START, "", "a plain log line"),
    ]
    response = post(api, "/v1/logs", logs(records, APP).SerializeToString(), PROTOBUF)
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert (
        answer.partial_success.rejected_log_records == 0
        and "1 log records" in answer.partial_success.error_message
    )
    row = stored(engine)[oid(8)]
    assert row["output"] == "Hey" and row["output_length"] == 3
    assert row["input"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert row["signals"]["tokens_in"] == 3 and row["model_version"] == "gpt-4o"
    # The log events first, then the span: the span fills in model, tokens and latency.
    post(
        api,
        "/v1/logs",
        logs(
            [log_record(9, START, "gen_ai.choice", {"message": {"content": "Yes"}})], APP
        ).SerializeToString(),
        PROTOBUF,
    )
    post(
        api,
        "/v1/traces",
        traces([span(9, START, 30.0, {**old, "gen_ai.usage.output_tokens": 1})], APP).SerializeToString(),
        PROTOBUF,
    )
    row = stored(engine)[oid(9)]
    assert row["output"] == "Yes" and row["model_version"] == "gpt-4o"
    assert row["signals"] == {"latency_ms": 30.0, "tokens_out": 1}
    assert count(engine, outputs) == 3


def test_evaluation_results_become_judge_labels(api: Site, engine: Engine) -> None:
    evaluation = (
        "gen_ai.evaluation.result",
        {
            "gen_ai.evaluation.name": "Relevance",
            "gen_ai.evaluation.score.label": "pass",
            "gen_ai.evaluation.score.value": 0.9,
        },
    )
    post(
        api,
        "/v1/traces",
        traces([span(10, START, 5.0, chat_attrs(), events=[evaluation])], APP).SerializeToString(),
        PROTOBUF,
    )
    records = [
        log_record(
            10,
            START,
            "gen_ai.evaluation.result",
            None,
            {
                "gen_ai.evaluation.name": "tone",
                "gen_ai.evaluation.score.label": "fail",
                "gen_ai.evaluation.explanation": "curt",
            },
        ),
        log_record(
            99,
            START,
            "gen_ai.evaluation.result",
            None,
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": "fail"},
        ),
    ]
    response = post(api, "/v1/logs", otlp_json(logs(records, APP)), JSON)
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"  # int64 as a string, as OTLP/JSON has it
    assert "logRecords[1]" in partial["errorMessage"] and "no stored output" in partial["errorMessage"]
    with engine.connect() as conn:
        rows = conn.execute(select(labels).order_by(labels.c.source)).mappings().all()
    assert [(r["source"], r["verdict"], r["score"], r["reason"], r["feature"]) for r in rows] == [
        ("judge:Relevance", "pass", 0.9, None, "support-bot"),
        ("judge:tone", "fail", None, "curt", "support-bot"),
    ]


def test_partial_success_names_the_first_bad_span_and_stores_the_rest(api: Site, engine: Engine) -> None:
    good = span(11, START, 5.0, chat_attrs())
    bad_action = span(12, START, 5.0, chat_attrs(**{"app.user_action": "loved"}))
    request = traces([good, bad_action], APP)
    other = traces([span(13, START, 5.0, chat_attrs())], {"service.name": "my support bot"})
    request.resource_spans.extend(other.resource_spans)
    response = post(api, "/v1/traces", request.SerializeToString(), PROTOBUF)
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    message = answer.partial_success.error_message
    assert message.startswith(
        f"span {TRACE.hex()}/{span_id(12).hex()} ('chat gpt-4o-mini'): field 'user_action'"
    )
    assert message.endswith("(and 1 more)")
    assert list(stored(engine)) == [oid(11)]


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("truncated protobuf", 400, "cannot be decoded"),
        ("wrong content type", 415, "text/plain"),
        ("bad trace id", 400, "traceId 'zz"),
        ("short span id", 400, "spanId"),
        ("huge attribute", 413, "gen_ai.input.messages"),
        ("truncated gzip", 400, "gzip"),
        ("not json", 400, "not valid JSON"),
        ("gzip bomb", 413, "inflates"),
    ],
)
def test_malformed_bodies_are_refused_and_store_nothing(
    api: Site, engine: Engine, case: str, status: int, words: str
) -> None:
    good = traces([span(20, START, 5.0, chat_attrs()), span(21, START, 5.0, chat_attrs())], APP)
    raw = good.SerializeToString()
    as_json = json.loads(otlp_json(good))
    body, headers = raw, dict(PROTOBUF)
    if case == "truncated protobuf":
        body = raw[: len(raw) - 7]
    elif case == "wrong content type":
        headers = {"Content-Type": "text/plain"}
    elif case == "bad trace id":
        as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "zz" * 16
        body, headers = json.dumps(as_json).encode(), JSON
    elif case == "short span id":
        as_json["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "abcd"
        body, headers = json.dumps(as_json).encode(), JSON
    elif case == "huge attribute":
        body = traces(
            [
                span(20, START, 5.0, chat_attrs()),
                span(21, START, 5.0, chat_attrs(**{"gen_ai.input.messages": "x" * 60_000})),
            ],
            APP,
        ).SerializeToString()
    elif case == "truncated gzip":
        body, headers = gzip.compress(raw)[:-10], {**PROTOBUF, "Content-Encoding": "gzip"}
    elif case == "not json":
        body, headers = b'{"resourceSpans": [', JSON
    elif case == "gzip bomb":
        body, headers = gzip.compress(b"\n" * 3_000_000), {**PROTOBUF, "Content-Encoding": "gzip"}
    response = post(api, "/v1/traces", body, headers)
    assert response.status_code == status, response.text
    if response.headers["content-type"] == "application/json":
        assert words in response.json()["message"]
    else:
        assert words.encode() in response.content
    assert count(engine, outputs) == 0


def test_the_ingest_role_is_required(api: Site, engine: Engine) -> None:
    body = traces([span(30, START, 5.0, chat_attrs())], APP).SerializeToString()
    assert post(api, "/v1/traces", body, PROTOBUF, role="").status_code == 401
    assert post(api, "/v1/logs", body, PROTOBUF, role="read").status_code == 403
    assert post(api, "/v1/traces", body, PROTOBUF, role="admin").status_code == 200
    assert count(engine, outputs) == 1


def test_redaction_applies_and_the_feature_attribute_is_configurable(engine: Engine) -> None:
    config = Settings(
        **{
            **settings(feature_attribute="app.feature").model_dump(exclude={"config_file"}),
            "privacy": {"redact": True},
        }
    )
    attrs = chat_attrs(
        **{
            "app.feature": "refunds",
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Mail ana@example.com"}]}]
            ),
        }
    )
    with site(engine, config) as served:
        post(
            served,
            "/v1/traces",
            traces(
                [span(31, START, 5.0, attrs), span(32, START, 5.0, chat_attrs())],
                {**APP, "app.feature": "chat"},
            ).SerializeToString(),
            PROTOBUF,
        )
    rows = stored(engine)
    assert rows[oid(31)]["feature"] == "refunds" and rows[oid(31)]["output"] == "Mail [EMAIL]"
    assert rows[oid(32)]["feature"] == "chat"  # the resource's attribute of that name
