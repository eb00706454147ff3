"""The demo's simulated LLM judge: a small OpenAI-compatible chat-completions server on loopback.

The product's real `llm` judge (`monitor.judges.llm.LLMJudge`) calls it over HTTP exactly as it
would call a hosted model, so its calls, cost (from the answer's `usage`, at the configured
prices), agreement with the reviewers and the judge-backed pass rate are all real; only the
model is simulated. It grades the way a careful reader would: a support reply or summary that
contains one of the flaws the simulator writes (`monitor.demo.texts.FLAWS`) fails, as does a
triage label whose queue is not the one the ticket's topic belongs in. Like any model it is not
perfect: a fixed share of its answers (chosen by a hash of the output, so a rerun answers the
same) is wrong, which is what makes its agreement with the humans worth measuring.
It listens on 127.0.0.1 only and calls nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.demo.texts import FLAWS, TOPIC_QUEUE, Draft, customer_message

__all__ = ["FakeGrader", "grade"]

MISSES = 0.08
"""Share of bad outputs the simulated model passes."""
FALSE_ALARMS = 0.03
"""Share of good outputs it fails."""
CHARS_PER_TOKEN = 4
_EVERY_FLAW = [flaw for flaws in FLAWS.values() for flaw in flaws]


def _topic_of(text: str) -> str | None:
    """The topic a customer message is about (the ticket's words give it away)."""
    for topic in TOPIC_QUEUE:
        if customer_message_about(topic) in text:
            return topic
    return None


def customer_message_about(topic: str) -> str:
    """The words of a customer message about `topic`, without its order number."""
    return customer_message(Draft(topic, 0, True, 0, "en")).split(": ", 1)[1]


def _share(text: str) -> float:
    """A number in [0, 1) fixed by the text: which answers the simulated model gets wrong."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def _judge(given: str, output: str) -> tuple[bool, str]:
    """What a careful reader says: (passes, why)."""
    for flaw in _EVERY_FLAW:
        if flaw in output:
            return False, f"The output states something wrong or unsafe: {flaw!r}"
    try:
        label = json.loads(output)
    except ValueError:
        label = None
    if isinstance(label, dict) and "queue" in label:
        topic = _topic_of(given)
        expected = TOPIC_QUEUE.get(topic or "")
        if expected is not None and label["queue"] != expected:
            return False, f"A {topic} ticket belongs in the {expected} queue, not {label['queue']!r}."
        return True, f"The {label['queue']} queue is right for this ticket."
    return True, "Accurate, polite and complete for what the customer asked."


def grade(message: dict[str, Any]) -> dict[str, str]:
    """The simulated model's answer to the judge's user message (the output as JSON)."""
    given, output = str(message.get("input") or ""), str(message.get("output") or "")
    passes, why = _judge(given, output)
    share = _share(output)
    if passes and share < FALSE_ALARMS:
        return {"verdict": "fail", "rationale": "The reply feels curt and skips a step the customer needs."}
    if not passes and share < MISSES:
        return {"verdict": "pass", "rationale": "Looks fine to me."}
    return {"verdict": "pass" if passes else "fail", "rationale": why}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the judge's client reuses its connection
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms wait for an ACK

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length))
            messages = body["messages"]
            prompt = "".join(str(m.get("content", "")) for m in messages)
            answer = json.dumps(grade(json.loads(messages[-1]["content"])))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self._send(400, {"error": {"message": f"bad request: {type(exc).__name__}"}})
            return
        tokens_in, tokens_out = len(prompt) // CHARS_PER_TOKEN, len(answer) // CHARS_PER_TOKEN
        self._send(
            200,
            {
                "id": f"chatcmpl-demo-{_share(prompt):.12f}"[:32],
                "object": "chat.completion",
                "model": body.get("model", "demo-grader"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            },
        )

    def _send(self, status: int, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints what matters."""


class FakeGrader:
    """The server on a free loopback port, in a daemon thread, while the context lasts."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-grader", daemon=True)

    def __enter__(self) -> FakeGrader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
