"""What the OTLP span and log mappings share: attribute values, GenAI message shapes, drafts.

A `Draft` is the part of a logged output one piece of telemetry tells (a span: model, tokens,
latency; a log event: the prompt or the completion); drafts of the same span are merged, then
`finish` turns each into a record validated by `monitor.records` or a rejection naming the span.
An attribute value longer than `otlp.max_attribute_chars` refuses the whole body (413).

Verdicts from `gen_ai.evaluation.result` (span events or log records) become `LabelDraft`s: the
evaluator's name is the judge (`judge:<name>`), the score's label the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from monitor.config import OtlpSettings
from monitor.errors import InputError
from monitor.intake.otlp_decode import TOO_LARGE, BadBody
from monitor.records import OutputRecord, format_ts, validate_output

__all__ = [
    "EVALUATION_EVENT",
    "Draft",
    "LabelDraft",
    "Mapped",
    "Rejection",
    "attributes",
    "context_fields",
    "evaluation_label",
    "finish",
    "genai_fields",
    "output_id",
    "simplify_messages",
    "ts_of",
]

EVALUATION_EVENT = "gen_ai.evaluation.result"
PASS_LABELS = frozenset({"pass", "passed", "true", "yes", "correct", "good", "relevant", "ok"})
FAIL_LABELS = frozenset({"fail", "failed", "false", "no", "incorrect", "bad", "irrelevant"})
UNSURE_LABELS = frozenset({"unsure", "unknown", "uncertain"})
NANOS_PER_MS = 1_000_000
NANOS_PER_SECOND = 1_000_000_000


@dataclass
class Draft:
    """The fields of one logged output that a span or its events tell; None: not told."""

    id: str
    where: str
    feature: str | None = None
    ts: datetime | None = None
    input: Any = None
    output: Any = None
    model_version: str | None = None
    segment: dict[str, str] = field(default_factory=dict)
    signals: dict[str, float] = field(default_factory=dict)
    user_action: str | None = None
    otel: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the span cannot be an output (a bad feature name, a bad user action), if it cannot."""

    def merge(self, other: Draft) -> None:
        """Take what `other` tells and this one does not (the span's own fields come first)."""
        for name in ("feature", "ts", "input", "output", "model_version", "user_action", "error"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        self.segment = {**other.segment, **self.segment}
        self.signals = {**other.signals, **self.signals}
        self.otel = {**other.otel, **self.otel}


@dataclass(frozen=True)
class LabelDraft:
    """A verdict on the output `output_id` (its feature is looked up in the store)."""

    output_id: str
    where: str
    judge: str
    verdict: str
    score: float | None
    reason: str | None
    ts: datetime | None


@dataclass(frozen=True)
class Rejection:
    where: str
    message: str

    def describe(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Mapped:
    """What one OTLP request tells: output drafts by id, verdicts, rejections, what was ignored."""

    drafts: dict[str, Draft] = field(default_factory=dict)
    labels: list[LabelDraft] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored: int = 0
    items: int = 0

    def add(self, draft: Draft) -> None:
        known = self.drafts.get(draft.id)
        if known is None:
            self.drafts[draft.id] = draft
        else:
            known.merge(draft)


# --------------------------------------------------------------------------- values


def any_value(value: AnyValue, limit: int, where: str) -> Any:
    """An `AnyValue` as plain Python (bytes as hex); a string past `limit` chars refuses the body."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = value.string_value
        if len(text) > limit:
            raise BadBody(TOO_LARGE, f"{where}: a value of {len(text)} characters; at most {limit}")
        return text
    if kind == "array_value":
        return [any_value(item, limit, where) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values, limit, where)
    if kind == "bytes_value":
        if len(value.bytes_value) * 2 > limit:
            raise BadBody(
                TOO_LARGE, f"{where}: a value of {len(value.bytes_value)} bytes; at most {limit // 2}"
            )
        return value.bytes_value.hex()
    if kind is None:
        return None
    return getattr(value, kind)


def attributes(pairs: Sequence[KeyValue], limit: int, where: str) -> dict[str, Any]:
    """Key-value pairs as a dict (a later duplicate key wins, as in the SDKs)."""
    return {pair.key: any_value(pair.value, limit, f"{where} attribute {pair.key!r}") for pair in pairs}


def output_id(trace_id: bytes, span_id: bytes) -> str:
    """The logged output's id: the span's trace id and span id in hex, joined by a dash."""
    return f"{trace_id.hex()}-{span_id.hex()}"


def ts_of(nanos: int) -> datetime | None:
    """A time in nanoseconds since the epoch, or None for 0 (unset)."""
    if nanos <= 0:
        return None
    return datetime.fromtimestamp(nanos // NANOS_PER_SECOND, UTC).replace(
        microsecond=(nanos % NANOS_PER_SECOND) // 1000
    )


def _json_or_text(value: Any) -> Any:
    """A JSON document given as a string (as span attributes carry messages) decoded, else as is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _message_text(message: Any) -> str | None:
    """A message's text when it is text alone: `content` (older form) or text `parts` (current)."""
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str) and not message.get("parts") and not message.get("tool_calls"):
        return content
    parts = message.get("parts")
    if (
        isinstance(parts, list)
        and parts
        and all(isinstance(p, dict) and p.get("type") == "text" for p in parts)
    ):
        return "\n".join(str(p.get("content", "")) for p in parts)
    return None


def simplify_messages(messages: Any) -> Any:
    """One text-only message becomes its text (what reviewers and rule judges read); else as is."""
    messages = _json_or_text(messages)
    if isinstance(messages, list) and len(messages) == 1:
        text = _message_text(messages[0])
        if text is not None:
            return text
    return messages


def _lookup(attrs: Mapping[str, Any], resource: Mapping[str, Any], name: str) -> Any:
    return attrs[name] if name in attrs else resource.get(name)


def _first(attrs: Mapping[str, Any], *names: str) -> Any:
    return next((attrs[name] for name in names if attrs.get(name) is not None), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _openinference_messages(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    """OpenInference's flattened `llm.input_messages.<i>.message.role|content` as messages."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit() or rest not in ("message.role", "message.content"):
            continue
        found.setdefault(int(index), {})[rest.split(".", 1)[1]] = value
    if not found:
        return None
    return [found[index] for index in sorted(found)]


def _openinference_fields(attrs: Mapping[str, Any]) -> dict[str, Any]:
    inputs = _openinference_messages(attrs, "llm.input_messages.")
    outputs = _openinference_messages(attrs, "llm.output_messages.")
    return {
        "input": inputs if inputs is not None else _json_or_text(attrs.get("input.value")),
        "output": outputs if outputs is not None else _json_or_text(attrs.get("output.value")),
        "model": attrs.get("llm.model_name"),
        "tokens_in": attrs.get("llm.token_count.prompt"),
        "tokens_out": attrs.get("llm.token_count.completion"),
    }


def _semconv_fields(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "input": attrs.get("gen_ai.input.messages"),
        "output": attrs.get("gen_ai.output.messages"),
        "model": _first(attrs, "gen_ai.response.model", "gen_ai.request.model"),
        "tokens_in": _first(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "tokens_out": _first(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    }


_OTEL_KEYS = {
    "gen_ai.operation.name": "operation",
    "gen_ai.conversation.id": "conversation_id",
    "gen_ai.provider.name": "provider",
    "gen_ai.system": "provider",
    "gen_ai.response.id": "response_id",
    "gen_ai.response.finish_reasons": "finish_reasons",
    "openinference.span.kind": "span_kind",
    "session.id": "conversation_id",
}


def genai_fields(
    draft: Draft, attrs: Mapping[str, Any], resource: Mapping[str, Any], settings: OtlpSettings
) -> None:
    """Fill `draft` from GenAI attributes: semantic conventions, else OpenInference's."""
    told = (
        _semconv_fields(attrs)
        if any(k.startswith("gen_ai.") for k in attrs)
        else _openinference_fields(attrs)
    )
    if told["input"] is not None:
        draft.input = simplify_messages(told["input"])
    if told["output"] is not None:
        draft.output = simplify_messages(told["output"])
    if isinstance(told["model"], str) and told["model"]:
        draft.model_version = told["model"]
    for signal, key in (("tokens_in", "tokens_in"), ("tokens_out", "tokens_out")):
        number = _number(told[key])
        if number is not None:
            draft.signals[signal] = number
    for key, name in _OTEL_KEYS.items():
        if attrs.get(key) is not None:
            draft.otel.setdefault(name, attrs[key])
    context_fields(draft, attrs, resource, settings)


def context_fields(
    draft: Draft, attrs: Mapping[str, Any], resource: Mapping[str, Any], settings: OtlpSettings
) -> None:
    """The feature, segment and user action from the configured attributes."""
    feature = _lookup(attrs, resource, settings.feature_attribute)
    if feature is not None:
        draft.feature = str(feature)
    for key, name in settings.segment_attributes.items():
        tag = _lookup(attrs, resource, name)
        if tag is not None:
            draft.segment[key] = tag if isinstance(tag, str) else orjson.dumps(tag).decode()
    if settings.user_action_attribute:
        action = _lookup(attrs, resource, settings.user_action_attribute)
        if action is not None:
            draft.user_action = str(action)


def evaluation_label(
    attrs: Mapping[str, Any], body: Any, output: str, where: str, ts: datetime | None
) -> LabelDraft | Rejection:
    """A `gen_ai.evaluation.result` event as a verdict by `judge:<gen_ai.evaluation.name>`."""
    if isinstance(body, dict):
        attrs = {**body, **attrs}
    name = attrs.get("gen_ai.evaluation.name")
    if not isinstance(name, str) or not name.strip():
        return Rejection(where, "gen_ai.evaluation.result without gen_ai.evaluation.name (the judge)")
    label = str(attrs.get("gen_ai.evaluation.score.label", "")).strip().lower()
    verdict = (
        "pass"
        if label in PASS_LABELS
        else "fail"
        if label in FAIL_LABELS
        else "unsure"
        if label in UNSURE_LABELS
        else None
    )
    if verdict is None:
        return Rejection(
            where,
            f"gen_ai.evaluation.score.label {label!r} is not a verdict: use pass, fail or unsure "
            f"(or one of {', '.join(sorted(PASS_LABELS | FAIL_LABELS))})",
        )
    score = _number(attrs.get("gen_ai.evaluation.score.value"))
    reason = attrs.get("gen_ai.evaluation.explanation")
    return LabelDraft(
        output_id=output,
        where=where,
        judge=name.strip().replace(" ", "_"),
        verdict=verdict,
        score=score if score is not None and 0.0 <= score <= 1.0 else None,
        reason=reason if isinstance(reason, str) else None,
        ts=ts,
    )


def finish(draft: Draft) -> OutputRecord:
    """The draft as a validated record; InputError (naming the field) when it cannot be one."""
    if draft.error is not None:
        raise InputError(draft.error)
    if draft.feature is None:
        raise InputError(
            "no feature: set otlp.feature_attribute's attribute on the span or resource", field="feature"
        )
    if draft.ts is None:
        raise InputError("no time: the span has no end time, nor the log record a time", field="ts")
    raw: dict[str, Any] = {
        "id": draft.id,
        "feature": draft.feature,
        "ts": format_ts(draft.ts),
        "metadata": {"otel": draft.otel},
    }
    for name in ("input", "output", "model_version", "user_action"):
        value = getattr(draft, name)
        if value is not None:
            raw[name] = value
    if draft.segment:
        raw["segment"] = draft.segment
    if draft.signals:
        raw["signals"] = draft.signals
    return validate_output(raw)


# --------------------------------------------------------------------------- the older event form

ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
PROMPT_EVENT = "gen_ai.content.prompt"  # the first conventions: the whole prompt in `gen_ai.prompt`
COMPLETION_EVENT = "gen_ai.content.completion"
MESSAGE_EVENTS = frozenset({*ROLE_EVENTS, CHOICE_EVENT, PROMPT_EVENT, COMPLETION_EVENT})


@dataclass
class EventMessages:
    """The prompt and completion told by the older conventions' events, in their order."""

    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)

    def add(self, name: str, payload: Mapping[str, Any]) -> None:
        """One event's payload (a span event's attributes, or a log record's body and attributes)."""
        if name in ROLE_EVENTS:
            told = {key: value for key, value in payload.items() if not key.startswith("gen_ai.")}
            self.inputs.append({"role": payload.get("role", ROLE_EVENTS[name]), **told})
        elif name == CHOICE_EVENT:
            message = payload.get("message")
            if isinstance(message, dict):
                self.outputs.append({"role": "assistant", **message})
        elif name == PROMPT_EVENT:
            self.inputs.extend(_as_list(_json_or_text(payload.get("gen_ai.prompt"))))
        elif name == COMPLETION_EVENT:
            self.outputs.extend(_as_list(_json_or_text(payload.get("gen_ai.completion"))))

    def fill(self, draft: Draft) -> None:
        if self.inputs and draft.input is None:
            draft.input = simplify_messages(self.inputs)
        if self.outputs and draft.output is None:
            draft.output = simplify_messages(self.outputs)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
