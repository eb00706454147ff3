"""The contract's records (CONTRACT sections 1 and 2) and their validation.

Validation is written out by hand rather than through a model class: it runs for every
line of multi-gigabyte files, and each error must name the field in the user's terms.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

from monitor.errors import InputError

USER_ACTIONS = frozenset({"accepted", "edited", "rejected", "retried", "ignored"})
VERDICTS = frozenset({"pass", "fail", "unsure"})
OUTPUT_FIELDS = frozenset(
    {
        "id",
        "feature",
        "ts",
        "input",
        "output",
        "model_version",
        "config_version",
        "segment",
        "signals",
        "user_action",
        "metadata",
    }
)
LABEL_FIELDS = frozenset({"output_id", "feature", "verdict", "score", "source", "reason", "ts"})
FEATURE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
SOURCE_RE = re.compile(r"^(human|judge):\S{1,120}$")
MAX_VERSION_CHARS = 200
MAX_TAG_CHARS = 200


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One logged output, validated."""

    id: str
    feature: str
    ts: datetime
    input: Any = None
    output: Any = None
    model_version: str | None = None
    config_version: str | None = None
    segment: Mapping[str, str] | None = None
    signals: Mapping[str, float] | None = None
    user_action: str | None = None
    metadata: Mapping[str, Any] | None = None

    @property
    def input_length(self) -> int | None:
        return text_length(self.input)

    @property
    def output_length(self) -> int | None:
        return text_length(self.output)

    def to_json(self) -> dict[str, Any]:
        """The record in the contract's wire format."""
        out: dict[str, Any] = {"id": self.id, "feature": self.feature, "ts": format_ts(self.ts)}
        for name in (
            "input",
            "output",
            "model_version",
            "config_version",
            "segment",
            "signals",
            "user_action",
            "metadata",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if isinstance(value, Mapping) else value
        return out


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """One reviewer's or judge's verdict on a logged output, validated."""

    output_id: str
    feature: str
    verdict: Literal["pass", "fail", "unsure"]
    source: str
    score: float | None = None
    reason: str | None = None
    ts: datetime | None = None

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "output_id": self.output_id,
            "feature": self.feature,
            "verdict": self.verdict,
            "source": self.source,
        }
        if self.score is not None:
            out["score"] = self.score
        if self.reason is not None:
            out["reason"] = self.reason
        if self.ts is not None:
            out["ts"] = format_ts(self.ts)
        return out


def text_length(value: Any) -> int | None:
    """Length in characters of an input or output: a string's, or its JSON text's."""
    if value is None:
        return None
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, ensure_ascii=False))


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: Any, field: str = "ts") -> datetime:
    """An RFC 3339 timestamp with its zone, as an aware UTC datetime."""
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        raise InputError(
            f"must be an RFC 3339 timestamp with a zone, like 2026-03-02T06:00:00Z; got {value!r:.60}",
            field=field,
        )
    text = value.replace("z", "Z").replace("t", "T")
    if "." in text:  # Python takes at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits is not None
        frac = digits.group(0)
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"is not a valid date and time: {exc}", field=field) from None
    return parsed.astimezone(UTC)


def _string(value: Any, field: str, max_chars: int, min_chars: int = 1) -> str:
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", field=field)
    if not min_chars <= len(value) <= max_chars:
        raise InputError(f"must be {min_chars} to {max_chars} characters long, got {len(value)}", field=field)
    return value


def _feature(value: Any) -> str:
    if not isinstance(value, str) or not FEATURE_RE.match(value):
        raise InputError(f"must match [A-Za-z0-9_.-]{{1,64}}, got {value!r:.80}", field="feature")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"must be a number, got {type(value).__name__}", field=field)
    number = float(value)
    if not math.isfinite(number):
        raise InputError("must be a finite number", field=field)
    return number


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"must be an object, got {type(value).__name__}", field=field)
    return value


def validate_output(raw: Any) -> OutputRecord:
    """Check one decoded JSON value against CONTRACT section 1."""
    obj = _object(raw, "")
    unknown = obj.keys() - OUTPUT_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InputError("unknown field (a typo must not vanish silently)", field=name)
    for required in ("id", "feature", "ts"):
        if required not in obj:
            raise InputError("is required", field=required)
    record_id = _string(obj["id"], "id", 200)
    feature = _feature(obj["feature"])
    ts = parse_ts(obj["ts"])
    versions = {}
    for name in ("model_version", "config_version"):
        value = obj.get(name)
        versions[name] = None if value is None else _string(value, name, MAX_VERSION_CHARS)
    segment = obj.get("segment")
    if segment is not None:
        for key, tag in _object(segment, "segment").items():
            _string(key, "segment", MAX_TAG_CHARS)
            _string(tag, f"segment.{key}", MAX_TAG_CHARS, min_chars=0)
    signals = obj.get("signals")
    if signals is not None:
        signals = {
            key: _number(value, f"signals.{key}") for key, value in _object(signals, "signals").items()
        }
    action = obj.get("user_action")
    if action is not None and action not in USER_ACTIONS:
        raise InputError(
            f"must be one of {', '.join(sorted(USER_ACTIONS))}; got {action!r:.40}", field="user_action"
        )
    metadata = obj.get("metadata")
    if metadata is not None:
        _object(metadata, "metadata")
    return OutputRecord(
        id=record_id,
        feature=feature,
        ts=ts,
        input=obj.get("input"),
        output=obj.get("output"),
        model_version=versions["model_version"],
        config_version=versions["config_version"],
        segment=segment,
        signals=signals,
        user_action=action,
        metadata=metadata,
    )


def validate_label(raw: Any) -> LabelRecord:
    """Check one decoded JSON value against CONTRACT section 2."""
    obj = _object(raw, "")
    unknown = obj.keys() - LABEL_FIELDS
    if unknown:
        raise InputError("unknown field (a typo must not vanish silently)", field=sorted(unknown)[0])
    for required in ("output_id", "feature", "verdict", "source"):
        if required not in obj:
            raise InputError("is required", field=required)
    output_id = _string(obj["output_id"], "output_id", 200)
    feature = _feature(obj["feature"])
    verdict = obj["verdict"]
    if verdict not in VERDICTS:
        raise InputError(f"must be pass, fail or unsure; got {verdict!r:.40}", field="verdict")
    source = obj["source"]
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        raise InputError(f"must be human:<name> or judge:<name>; got {source!r:.60}", field="source")
    score = obj.get("score")
    if score is not None:
        score = _number(score, "score")
        if not 0.0 <= score <= 1.0:
            raise InputError(f"must be in [0, 1], got {score}", field="score")
    reason = obj.get("reason")
    if reason is not None:
        reason = _string(reason, "reason", 10_000, min_chars=0)
    ts = parse_ts(obj["ts"]) if obj.get("ts") is not None else None
    return LabelRecord(
        output_id=output_id,
        feature=feature,
        verdict=verdict,
        source=source,
        score=score,
        reason=reason,
        ts=ts,
    )


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be taken, and why."""

    line: int
    field: str
    message: str
    text: str

    def describe(self, source: str) -> str:
        field = f"field {self.field!r}: " if self.field else ""
        return f"{source}:{self.line}: {field}{self.message}"


def decode_line(text: str, line_no: int, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON ({exc.msg} at column {exc.colno})", source=source, line=line_no
        ) from None


def iter_jsonl(stream: IO[bytes], source: str) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; undecodable bytes become a line-level error."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 ({exc.reason} at byte {exc.start})", source=source, line=number
            ) from None
        if text.strip():
            yield number, text
