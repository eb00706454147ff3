"""An LLM judge over any OpenAI-compatible chat-completions API.

One `POST {base_url}/chat/completions` per output: the rubric in the system prompt, the output
(with its input, segment, signals and versions) as a JSON user message, and a request for one
JSON object `{"verdict": "pass" | "fail" | "unsure", "rationale": "..."}` (with
`response_format: {"type": "json_object"}` where the server accepts it). The answer is parsed
leniently (code fences, text around the object, verdict in any case). 429, 5xx, timeouts and
network errors are retried with exponential backoff and jitter (honouring `Retry-After`); a
400 that names a parameter this server does not take (`response_format`, `temperature`,
`max_tokens`) drops or renames it once and tries again. The cost comes from the answer's
`usage` tokens and the configured prices (estimated from the characters when a server reports
no usage). Anything that goes wrong is a JudgeError carrying what the call cost: the caller
records it and the cycle goes on. The API key is read from the environment variable the
config names, at call time, and never appears in an error, a log line or the store.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from monitor.config import LLMJudgeSettings
from monitor.judges.base import JudgeError, JudgeInput, JudgeVerdict, Verdict, as_text

__all__ = ["SYSTEM_PROMPT", "LLMJudge", "parse_verdict"]

MAX_ADAPTATIONS = 3  # request fields dropped or renamed after an endpoint's 400 before giving up

SYSTEM_PROMPT = """You review the outputs of an AI feature in production, one at a time.
Grade the output you are given against this rubric:

{rubric}

The user message is a JSON object with the output's "input", its "output", and context
("segment", "signals", "versions"). Answer with one JSON object and nothing else:
{{"verdict": "pass" | "fail" | "unsure", "rationale": "<one or two sentences: why>"}}
Say "unsure" only when the rubric cannot be applied to this output."""

MAX_FIELD_CHARS = 12_000
"""An input or output longer than this is cut (and marked) before it is sent."""
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
CHARS_PER_TOKEN = 4.0
"""For cost estimates only: the budget's guard, and servers that report no usage."""
_VERDICTS: dict[str, Verdict] = {
    "pass": "pass",
    "passed": "pass",
    "fail": "fail",
    "failed": "fail",
    "unsure": "unsure",
    "uncertain": "unsure",
    "unknown": "unsure",
}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMJudge:
    """Grades outputs by the configured rubric; see the module's docstring."""

    def __init__(
        self,
        settings: LLMJudgeSettings,
        http: httpx.Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.http = http
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.environ = environ if environ is not None else os.environ
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self.system = SYSTEM_PROMPT.format(rubric=settings.rubric.strip())
        self._dropped: set[str] = set()
        """Request parameters this server refused (`response_format`, `temperature`, `max_tokens`)."""
        self._costs: list[float] = []

    # -- cost

    def _price(self, tokens_in: float, tokens_out: float) -> float:
        s = self.settings
        return (
            tokens_in / 1000 * s.price_per_1k_input_tokens + tokens_out / 1000 * s.price_per_1k_output_tokens
        )

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        """The mean cost of this judge's calls so far; before any, a bound from the prompt's size."""
        if self._costs:
            return sum(self._costs) / len(self._costs)
        tokens_in = (len(self.system) + len(self._user_message(item))) / CHARS_PER_TOKEN
        return self._price(tokens_in, self.settings.max_output_tokens)

    # -- the call

    def _user_message(self, item: JudgeInput) -> str:
        def cut(value: Any) -> Any:
            text = as_text(value)
            if len(text) <= MAX_FIELD_CHARS:
                return value
            return text[:MAX_FIELD_CHARS] + f" [... cut: {len(text) - MAX_FIELD_CHARS} more characters]"

        message = {
            "input": cut(item.input),
            "output": cut(item.output),
            "segment": dict(item.segment),
            "signals": dict(item.signals),
            "versions": dict(item.versions),
        }
        return json.dumps(message, ensure_ascii=False)

    def _body(self, item: JudgeInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self._user_message(item)},
            ],
        }
        if "temperature" not in self._dropped:
            body["temperature"] = 0
        key = "max_completion_tokens" if "max_tokens" in self._dropped else "max_tokens"
        body[key] = self.settings.max_output_tokens
        if self.settings.json_mode and "response_format" not in self._dropped:
            body["response_format"] = {"type": "json_object"}
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        name = self.settings.api_key_env
        if name:
            key = self.environ.get(name, "")
            if not key:
                raise JudgeError(f"the environment variable {name} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _redact(self, text: str) -> str:
        key = self.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
        return text.replace(key, "***") if key else text

    def judge(self, item: JudgeInput) -> JudgeVerdict:
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        headers = self._headers()
        attempt = 0
        adapted = 0
        while True:
            body = self._body(item)
            try:
                response = self._post(body, headers)
            except _Retryable as exc:
                if attempt >= self.settings.max_retries:
                    tries = attempt + 1
                    raise JudgeError(
                        f"{self._redact(str(exc))} (after {tries} tr{'y' if tries == 1 else 'ies'})",
                        latency_ms=elapsed(),
                    ) from None
                self.sleep(self._backoff(attempt, exc.retry_after))
                attempt += 1
                continue
            bad_request = response.status_code == httpx.codes.BAD_REQUEST
            if bad_request and adapted < MAX_ADAPTATIONS and self._adapt(response.text, body):
                adapted += 1
                continue
            if response.is_error:
                raise JudgeError(
                    f"HTTP {response.status_code}: {self._redact(_snippet(response.text))}",
                    latency_ms=elapsed(),
                )
            return self._verdict(response, item, elapsed)

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            response = self.http.post(
                self.url, json=body, headers=headers, timeout=httpx.Timeout(self.settings.timeout_seconds)
            )
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.settings.timeout_seconds:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"network error: {type(exc).__name__}: {exc}") from None
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS or response.is_server_error:
            raise _Retryable(
                f"HTTP {response.status_code}: {_snippet(response.text)}",
                _retry_after(response.headers.get("retry-after")),
            )
        return response

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half to all of the step), or the server's Retry-After."""
        if retry_after is not None:
            return min(retry_after, BACKOFF_CAP_SECONDS)
        step: float = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)
        return step * (0.5 + 0.5 * self.rng.random())

    def _adapt(self, text: str, body: dict[str, Any]) -> bool:
        """A 400 naming a parameter this server does not take: leave it out from now on."""
        lowered = text.lower()
        for parameter in ("response_format", "temperature", "max_tokens"):
            if parameter in body and parameter not in self._dropped and parameter in lowered:
                self._dropped.add(parameter)
                return True
        return False

    def _verdict(
        self, response: httpx.Response, item: JudgeInput, elapsed: Callable[[], float]
    ) -> JudgeVerdict:
        try:
            data = response.json()
        except ValueError:
            raise JudgeError(
                f"the answer is not JSON: {_snippet(response.text)}", latency_ms=elapsed()
            ) from None
        content = _content(data)
        cost = self._cost(data, item, content)
        self._costs.append(cost)
        try:
            verdict, rationale = parse_verdict(content)
        except ValueError as exc:
            raise JudgeError(str(exc), cost_usd=cost, latency_ms=elapsed()) from None
        return JudgeVerdict(verdict, rationale, cost_usd=cost, latency_ms=elapsed())

    def _cost(self, data: Any, item: JudgeInput, content: str) -> float:
        usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(usage, dict):
            tokens_in = _number(usage.get("prompt_tokens", usage.get("input_tokens")))
            tokens_out = _number(usage.get("completion_tokens", usage.get("output_tokens")))
            if tokens_in is not None or tokens_out is not None:
                return self._price(tokens_in or 0.0, tokens_out or 0.0)
        tokens_in = (len(self.system) + len(self._user_message(item))) / CHARS_PER_TOKEN
        return self._price(tokens_in, len(content) / CHARS_PER_TOKEN)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: use our own backoff
    return max(0.0, seconds)


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _content(data: Any) -> str:
    """The first choice's message text (a list of text parts is joined)."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def parse_verdict(content: str) -> tuple[Verdict, str]:
    """The verdict and rationale of a model's answer; ValueError when it holds none."""
    text = _FENCE.sub("", content.strip())
    found: Any = None
    try:
        found = json.loads(text)
    except ValueError:
        decoder = json.JSONDecoder()
        for match in re.finditer(r"\{", text):
            try:
                candidate, _ = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            if isinstance(candidate, dict) and "verdict" in candidate:
                found = candidate
                break
    if not isinstance(found, dict):
        raise ValueError(f"the answer holds no JSON object with a verdict: {_snippet(content) or '(empty)'}")
    raw = found.get("verdict")
    verdict = _VERDICTS.get(str(raw).strip().lower()) if isinstance(raw, str) else None
    if verdict is None:
        raise ValueError(f"the answer's verdict {raw!r} is not pass, fail or unsure")
    rationale = found.get("rationale", found.get("reason", ""))
    rationale = " ".join(str(rationale).split()) if rationale is not None else ""
    return verdict, (rationale[:2000] or "(no rationale given)")
