"""The LLM judge against a real chat-completions server on loopback: its own httpx code runs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_api import ChatServer, Reply, completion, verdict

from monitor.config import LLMJudgeSettings
from monitor.judges import JudgeError, JudgeInput
from monitor.judges.llm import LLMJudge, parse_verdict

KEY = "sk-test-0123456789abcdef"
ITEM = JudgeInput(
    output_id="o-1",
    input="Where is my parcel?",
    output="It left our warehouse yesterday; tracking number 12345.",
    segment={"language": "en"},
    signals={"confidence": 0.8},
    versions={"model_version": "m-1"},
)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def make(
    server: ChatServer, http: httpx.Client, sleeps: list[float] | None = None, **overrides: Any
) -> LLMJudge:
    values: dict[str, Any] = {
        "kind": "llm",
        "name": "grader",
        "base_url": server.base_url,
        "model": "test-model",
        "api_key_env": "JUDGE_KEY",
        "rubric": "Pass if the reply answers the customer's question.",
        "timeout_seconds": 2.0,
        "max_retries": 2,
        "price_per_1k_input_tokens": 0.01,
        "price_per_1k_output_tokens": 0.03,
        **overrides,
    }
    recorded = sleeps if sleeps is not None else []
    return LLMJudge(
        LLMJudgeSettings(**values),
        http,
        sleep=recorded.append,
        rng=random.Random(7),
        environ={"JUDGE_KEY": KEY},
    )


def test_a_verdict_with_its_rationale_cost_and_latency(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.script = [verdict("fail", "does not   answer", prompt_tokens=1000, completion_tokens=500)]
    result = make(chat_server, http).judge(ITEM)
    assert result.verdict == "fail"
    assert result.rationale == "does not answer"
    assert result.cost_usd == pytest.approx(1000 / 1000 * 0.01 + 500 / 1000 * 0.03)
    assert result.latency_ms > 0
    [seen] = chat_server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    body = seen.body
    assert body["model"] == "test-model"
    assert body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "Pass if the reply answers" in system["content"]
    assert '"verdict"' in system["content"]
    sent = json.loads(user["content"])
    assert sent == {
        "input": ITEM.input,
        "output": ITEM.output,
        "segment": {"language": "en"},
        "signals": {"confidence": 0.8},
        "versions": {"model_version": "m-1"},
    }


def test_500s_are_retried_with_growing_backoff_then_answered(
    chat_server: ChatServer, http: httpx.Client
) -> None:
    chat_server.script = [Reply(500, {"error": "boom"}), Reply(502, "bad gateway"), verdict("pass")]
    sleeps: list[float] = []
    result = make(chat_server, http, sleeps, max_retries=2).judge(ITEM)
    assert result.verdict == "pass"
    assert len(chat_server.requests) == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0  # 0.5 s doubling, times a jitter of 1/2..1


def test_429_waits_as_long_as_retry_after_says(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.script = [Reply(429, {"error": "slow down"}, headers={"Retry-After": "3"}), verdict("pass")]
    sleeps: list[float] = []
    assert make(chat_server, http, sleeps).judge(ITEM).verdict == "pass"
    assert sleeps == [3.0]


def test_it_gives_up_after_max_retries(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.default = lambda _seen: Reply(503, {"error": {"message": "overloaded"}})
    with pytest.raises(JudgeError, match=r"HTTP 503.*overloaded.*after 3 tries") as caught:
        make(chat_server, http, max_retries=2).judge(ITEM)
    assert len(chat_server.requests) == 3
    assert caught.value.cost_usd == 0.0


def test_a_slow_answer_times_out_and_is_retried(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.script = [Reply(delay=3.0, body=completion('{"verdict": "pass"}'))]
    chat_server.default = lambda _seen: verdict("fail", "too short")
    result = make(chat_server, http, timeout_seconds=1.0, max_retries=1).judge(ITEM)
    assert result.verdict == "fail"
    assert len(chat_server.requests) == 2


def test_only_slow_answers_end_in_a_timeout_error(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.default = lambda _seen: Reply(delay=0.6, body=completion('{"verdict": "pass"}'))
    with pytest.raises(JudgeError, match=r"timed out after 0.2 s \(after 2 tries\)"):
        make(chat_server, http, timeout_seconds=0.2, max_retries=1).judge(ITEM)
    assert len(chat_server.requests) == 2


def test_an_answer_without_a_verdict_is_an_error_that_still_costs(
    chat_server: ChatServer, http: httpx.Client
) -> None:
    chat_server.script = [
        Reply(body=completion("Looks fine to me!", prompt_tokens=2000, completion_tokens=0))
    ]
    with pytest.raises(JudgeError, match="no JSON object with a verdict") as caught:
        make(chat_server, http).judge(ITEM)
    assert caught.value.cost_usd == pytest.approx(0.02)
    assert len(chat_server.requests) == 1  # a nonsense answer is not paid for again


def test_a_body_that_is_not_json_is_an_error(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.script = [Reply(body="<html>proxy error</html>")]
    with pytest.raises(JudgeError, match="not JSON"):
        make(chat_server, http).judge(ITEM)


def test_an_unknown_verdict_is_an_error(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.script = [Reply(body=completion('{"verdict": "maybe", "rationale": "?"}'))]
    with pytest.raises(JudgeError, match="'maybe' is not pass, fail or unsure"):
        make(chat_server, http).judge(ITEM)


def test_a_server_refusing_response_format_is_asked_again_without_it(
    chat_server: ChatServer, http: httpx.Client
) -> None:
    def answer(seen: Any) -> Reply:
        if "response_format" in seen.body:
            return Reply(400, {"error": {"message": "Unrecognized request argument: response_format"}})
        return verdict("pass")

    chat_server.default = answer
    judge = make(chat_server, http)
    assert judge.judge(ITEM).verdict == "pass"
    assert judge.judge(ITEM).verdict == "pass"
    assert len(chat_server.requests) == 3  # the refusal once, then two answers
    assert "response_format" not in chat_server.requests[-1].body


def test_a_401_is_not_retried_and_the_key_never_shows(chat_server: ChatServer, http: httpx.Client) -> None:
    chat_server.default = lambda _seen: Reply(
        401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    )
    with pytest.raises(JudgeError) as caught:
        make(chat_server, http).judge(ITEM)
    assert "HTTP 401" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(chat_server.requests) == 1


def test_a_missing_key_variable_is_an_error_before_any_request(
    chat_server: ChatServer, http: httpx.Client
) -> None:
    judge = LLMJudge(
        LLMJudgeSettings(
            kind="llm", base_url=chat_server.base_url, model="m", rubric="r", api_key_env="NOT_SET"
        ),
        http,
        environ={},
    )
    with pytest.raises(JudgeError, match="NOT_SET"):
        judge.judge(ITEM)
    assert chat_server.requests == []


def test_no_key_variable_sends_no_authorization(chat_server: ChatServer, http: httpx.Client) -> None:
    judge = LLMJudge(LLMJudgeSettings(kind="llm", base_url=chat_server.base_url, model="m", rubric="r"), http)
    assert judge.judge(ITEM).verdict == "pass"
    assert "authorization" not in chat_server.requests[0].headers


def test_a_refused_connection_is_retried_then_reported(http: httpx.Client) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    judge = LLMJudge(
        LLMJudgeSettings(
            kind="llm", base_url=f"http://127.0.0.1:{port}/v1", model="m", rubric="r", max_retries=1
        ),
        http,
        sleep=sleeps.append,
    )
    with pytest.raises(JudgeError, match="network error: ConnectError"):
        judge.judge(ITEM)
    assert len(sleeps) == 1


def test_cost_is_estimated_when_the_server_reports_no_usage(
    chat_server: ChatServer, http: httpx.Client
) -> None:
    chat_server.script = [Reply(body=completion('{"verdict": "pass", "rationale": "ok"}', None, None))]
    result = make(chat_server, http).judge(ITEM)
    assert result.cost_usd > 0


def test_the_budget_estimate_follows_the_calls_made(chat_server: ChatServer, http: httpx.Client) -> None:
    judge = make(chat_server, http, price_per_1k_output_tokens=0.0)
    first = judge.estimate_cost_usd(ITEM)
    assert 0 < first < 0.01  # about a thousand characters of prompt at 0.01 per 1000 tokens
    chat_server.script = [verdict(prompt_tokens=3000, completion_tokens=10)]
    judge.judge(ITEM)
    assert judge.estimate_cost_usd(ITEM) == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"verdict": "pass", "rationale": "fine"}', ("pass", "fine")),
        ('```json\n{"verdict": "FAIL", "rationale": "rude"}\n```', ("fail", "rude")),
        (
            'Here you go: {"verdict": "Unsure", "reason": "no context"} Hope that helps.',
            ("unsure", "no context"),
        ),
        (
            '{"note": {"x": 1}} then {"verdict": "failed", "rationale": "wrong order"}',
            ("fail", "wrong order"),
        ),
        ('{"verdict": "pass"}', ("pass", "(no rationale given)")),
    ],
)
def test_answers_are_parsed_leniently(content: str, expected: tuple[str, str]) -> None:
    assert parse_verdict(content) == expected


@pytest.mark.parametrize("content", ["", "pass", "[1, 2]", '{"rationale": "no verdict"}', '{"verdict": 1}'])
def test_answers_without_a_verdict_are_refused(content: str) -> None:
    with pytest.raises(ValueError):
        parse_verdict(content)
