"""The contract's records (CONTRACT sections 1 and 2) and their validation.

Validation is written out by hand rather than through a model class: it runs for every
line of multi-gigabyte files, and each error must name the field in the user's terms.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson

from monitor.errors import InputError
from monitor.formats import FEATURE_NAME_RE, is_feature_name
from monitor.formats import parse_ts as parse_ts  # the one parser; here for the records and old callers

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
SOURCE_RE = re.compile(r"(human|judge):[^\s\x00]{1,120}")
MAX_VERSION_CHARS = 200
MAX_TAG_CHARS = 200
MAX_JSON_DEPTH = 128
_EXACT_INT = 2**53


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
    kept_lengths: tuple[int | None, int | None] | None = None
    """The lengths of `input` and `output` when their text is not stored with the record (pull
    mode keeps the text of sampled outputs only; drift still needs every output's lengths)."""

    @property
    def input_length(self) -> int | None:
        if self.input is None and self.kept_lengths is not None:
            return self.kept_lengths[0]
        return text_length(self.input)

    @property
    def output_length(self) -> int | None:
        if self.output is None and self.kept_lengths is not None:
            return self.kept_lengths[1]
        return text_length(self.output)

    def without_text(self) -> OutputRecord:
        """The record without its input and output text, their lengths kept."""
        return dataclasses.replace(
            self, input=None, output=None, kept_lengths=(self.input_length, self.output_length)
        )

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


def _string(value: Any, field: str, max_chars: int, min_chars: int = 1) -> str:
    if type(value) is not str:
        raise InputError(f"must be a string, got {_kind(value)}", field=field)
    if not min_chars <= len(value) <= max_chars:
        raise InputError(f"must be {min_chars} to {max_chars} characters long, got {len(value)}", field=field)
    if "\x00" in value:
        raise InputError("must not contain the NUL character (\\u0000)", field=field)
    return value


# A value's type in JSON's words, for error messages; bool before int (a bool is an int).
_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _kind(value: Any) -> str:
    """A value's type in JSON's words, for error messages."""
    return next((name for kinds, name in _JSON_KINDS if isinstance(value, kinds)), type(value).__name__)


def _feature(value: Any) -> str:
    if type(value) is not str or not is_feature_name(value):
        raise InputError(f"must match {FEATURE_NAME_RE.pattern}, got {value!r:.80}", field="feature")
    return value


def _number(value: Any, field: str) -> float:
    if type(value) is float:
        if math.isfinite(value):
            return value
        raise InputError("must be a finite number", field=field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"must be a number, got {_kind(value)}", field=field)
    try:
        number = float(value)
    except OverflowError:
        raise InputError("must be a finite number (this one is too large)", field=field) from None
    if not math.isfinite(number):
        raise InputError("must be a finite number", field=field)
    return number


def _object(value: Any, field: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise InputError(f"must be an object, got {_kind(value)}", field=field)
    return value


def _check_json(value: Any, field: str) -> None:
    """A free-form JSON value every store can keep: finite numbers, no NUL, bounded nesting.

    PostgreSQL's jsonb rejects the NUL character, and NaN or Infinity are not JSON; both would
    otherwise fail (or be changed) at write time, far from the line that caused them.
    """
    if type(value) is str:
        _check_text(value, field)
        return
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, where, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth >= MAX_JSON_DEPTH:
                raise InputError(f"is nested more than {MAX_JSON_DEPTH} levels deep", field=field)
            stack.extend(_json_children(item, where, depth + 1))
        else:
            _check_json_leaf(item, kind, where)


def _check_text(text: str, field: str) -> None:
    if "\x00" in text:
        raise InputError("must not contain the NUL character (\\u0000)", field=field)


def _json_children(item: Any, where: str, depth: int) -> list[tuple[Any, str, int]]:
    """The members of a JSON object or array, each with its path; an object's keys checked."""
    if type(item) is list:
        return [(inner, f"{where}[{i}]", depth) for i, inner in enumerate(item)]
    children = []
    for key, inner in item.items():
        if type(key) is not str or "\x00" in key:
            raise InputError("has a key that is not a string without NUL", field=where)
        children.append((inner, f"{where}.{key}", depth))
    return children


def _check_json_leaf(item: Any, kind: type, where: str) -> None:
    if kind is str:
        _check_text(item, where)
    elif kind is float:
        if not math.isfinite(item):
            raise InputError("must be a finite number (NaN and Infinity are not JSON)", field=where)
    elif not (item is None or kind is bool or kind is int):
        raise InputError(f"is not a JSON value ({_kind(item)})", field=where)


def _unknown_field(name: str) -> InputError:
    return InputError(f"unknown field {name!r} (a typo must not vanish silently)", field=name)


def _is_name(text: Any, min_chars: int = 1) -> bool:
    """A tag's key or value, or a signal's name, as the store keeps it (the fast check)."""
    return type(text) is str and min_chars <= len(text) <= MAX_TAG_CHARS and "\x00" not in text


def _segment(value: Any) -> dict[str, str]:
    for key, tag in _object(value, "segment").items():
        if not (_is_name(key) and _is_name(tag, 0)):
            _string(key, "segment", MAX_TAG_CHARS)  # raises the precise error
            _string(tag, f"segment.{key}", MAX_TAG_CHARS, min_chars=0)
    return value  # type: ignore[no-any-return]  # checked above


def _signals(value: Any) -> dict[str, float]:
    """Finite numbers by name, kept as given (an integer stays an integer)."""
    for key, number in _object(value, "signals").items():
        kind = type(number)
        if not (
            (kind is float and number - number == 0.0)
            or (kind is int and -_EXACT_INT <= number <= _EXACT_INT)
        ):
            _number(number, f"signals.{key}")  # raises unless it is a finite number after all
        if not _is_name(key):
            _string(key, "signals", MAX_TAG_CHARS)
    return value  # type: ignore[no-any-return]  # checked above


def _optional_string(obj: dict[str, Any], field: str, max_chars: int) -> Any:
    value = obj.get(field)
    if value is not None:
        _string(value, field, max_chars)
    return value


def _check_free_json(record_input: Any, record_output: Any, metadata: Any) -> None:
    """The free-form parts of an output: any JSON, but one every store can keep."""
    if record_input is not None:
        _check_json(record_input, "input")
    if record_output is not None:
        _check_json(record_output, "output")
    if metadata is not None:
        _check_json(_object(metadata, "metadata"), "metadata")


def validate_output(raw: Any) -> OutputRecord:
    """Check one decoded JSON value against CONTRACT section 1."""
    obj = _object(raw, "")
    if not obj.keys() <= OUTPUT_FIELDS:
        name = sorted(obj.keys() - OUTPUT_FIELDS)[0]
        raise _unknown_field(name)
    try:
        record_id, feature, ts = obj["id"], obj["feature"], obj["ts"]
    except KeyError as missing:
        raise InputError("is required", field=str(missing.args[0])) from None
    record_id = _string(record_id, "id", 200)
    feature = _feature(feature)
    ts = parse_ts(ts)
    model_version = _optional_string(obj, "model_version", MAX_VERSION_CHARS)
    config_version = _optional_string(obj, "config_version", MAX_VERSION_CHARS)
    segment = obj.get("segment")
    if segment is not None:
        _segment(segment)
    signals = obj.get("signals")
    if signals is not None:
        signals = _signals(signals)
    action = obj.get("user_action")
    if action is not None and (type(action) is not str or action not in USER_ACTIONS):
        raise InputError(
            f"must be one of {', '.join(sorted(USER_ACTIONS))}; got {action!r:.40}", field="user_action"
        )
    record_input, record_output, metadata = obj.get("input"), obj.get("output"), obj.get("metadata")
    _check_free_json(record_input, record_output, metadata)
    return OutputRecord(
        id=record_id,
        feature=feature,
        ts=ts,
        input=record_input,
        output=record_output,
        model_version=model_version,
        config_version=config_version,
        segment=segment,
        signals=signals,
        user_action=action,
        metadata=metadata,
    )


def validate_label(raw: Any) -> LabelRecord:
    """Check one decoded JSON value against CONTRACT section 2."""
    obj = _object(raw, "")
    if not obj.keys() <= LABEL_FIELDS:
        raise _unknown_field(sorted(obj.keys() - LABEL_FIELDS)[0])
    for required in ("output_id", "feature", "verdict", "source"):
        if required not in obj:
            raise InputError("is required", field=required)
    output_id = _string(obj["output_id"], "output_id", 200)
    feature = _feature(obj["feature"])
    verdict = obj["verdict"]
    if type(verdict) is not str or verdict not in VERDICTS:
        raise InputError(f"must be pass, fail or unsure; got {verdict!r:.40}", field="verdict")
    source = obj["source"]
    if type(source) is not str or SOURCE_RE.fullmatch(source) is None:
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
        verdict=verdict,  # type: ignore[arg-type]  # checked against VERDICTS above
        source=source,
        score=score,
        reason=reason,
        ts=ts,
    )


def loads(raw: bytes) -> Any:
    """Decode one JSON document (bytes, UTF-8), raising InputError with the reason.

    orjson is strict (UTF-8, no NaN, no lone surrogates) and fast; numbers it cannot keep
    exactly (integers beyond 64 bits, which it turns into floats) go through the standard
    library instead, so metadata is kept verbatim.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(_why_not_json(raw, exc)) from None
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        try:
            value = json.loads(raw)
        except RecursionError:  # orjson nests 1,024 levels, the standard library fewer
            raise InputError(f"not valid JSON (nested more than {MAX_JSON_DEPTH} levels deep)") from None
        except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
            raise InputError(f"not valid JSON ({exc})") from None
    return value


# A run of 19 digits may be an integer past 64 bits; translate + `in` finds one far quicker than a regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _why_not_json(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not UTF-8 ({bad.reason} at byte {bad.start + 1})"
    return f"not valid JSON ({exc.msg} at column {exc.colno})"


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


def decode_line(text: str | bytes, line_no: int, source: str) -> Any:
    """One JSONL line decoded, or an InputError naming the source and line."""
    try:
        return loads(text.encode("utf-8") if isinstance(text, str) else text)
    except InputError as exc:
        raise InputError(exc.message, source=source, line=line_no) from None


def iter_jsonl(stream: IO[bytes], source: str) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; undecodable bytes become a line-level error."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 ({exc.reason} at byte {exc.start + 1})", source=source, line=number
            ) from None
        if text.strip():
            yield number, text
