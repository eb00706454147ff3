"""Record validation per CONTRACT sections 1 and 2: what is taken, what is refused and how it is named."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import InputError
from monitor.records import (
    LabelRecord,
    OutputRecord,
    format_ts,
    loads,
    parse_ts,
    text_length,
    validate_label,
    validate_output,
)


def output(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "o-1", "feature": "support-reply", "ts": "2026-03-02T06:00:00Z"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def label(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "output_id": "o-1",
        "feature": "support-reply",
        "verdict": "pass",
        "source": "human:ana",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def field_of(raw: Any, validate: Any = validate_output) -> str:
    with pytest.raises(InputError) as caught:
        validate(raw)
    return caught.value.field


# --------------------------------------------------------------------------- outputs


def test_a_full_output_is_taken_with_every_field() -> None:
    record = validate_output(
        output(
            ts="2026-03-02T07:30:00.250+01:30",
            input={"question": "Wo ist mein Paket?"},
            output="Ihr Paket ist unterwegs.",
            model_version="model-2026-01",
            config_version="prompt-v3",
            segment={"language": "de", "channel": "email"},
            signals={"confidence": 0.91, "tokens_out": 12},
            user_action="edited",
            metadata={"ticket": 123, "nested": {"a": [1, None, True]}},
        )
    )
    assert record.ts == datetime(2026, 3, 2, 6, 0, 0, 250000, tzinfo=UTC)
    assert record.ts.tzinfo is UTC
    assert record.signals == {"confidence": 0.91, "tokens_out": 12}
    assert type((record.signals or {})["tokens_out"]) is int  # numbers are kept as given
    assert record.segment == {"language": "de", "channel": "email"}
    assert record.metadata == {"ticket": 123, "nested": {"a": [1, None, True]}}
    assert record.input_length == len(json.dumps({"question": "Wo ist mein Paket?"}, ensure_ascii=False))
    assert record.output_length == len("Ihr Paket ist unterwegs.")


def test_a_minimal_output_has_nothing_but_the_required_fields() -> None:
    record = validate_output(output())
    assert record == OutputRecord(id="o-1", feature="support-reply", ts=datetime(2026, 3, 2, 6, tzinfo=UTC))
    assert record.input_length is None and record.output_length is None


@pytest.mark.parametrize("missing", ["id", "feature", "ts"])
def test_each_required_field_is_named_when_missing(missing: str) -> None:
    assert field_of(output(**{missing: ...})) == missing


def test_unknown_top_level_field_is_an_error_naming_it() -> None:
    assert field_of(output(user_acton="accepted")) == "user_acton"
    with pytest.raises(InputError, match="unknown field ''"):
        validate_output(output(**{"": 1}))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 201}, "id"),
        ({"id": 17}, "id"),
        ({"id": "a\x00b"}, "id"),
        ({"feature": "has space"}, "feature"),
        ({"feature": "x" * 65}, "feature"),
        ({"feature": "ok\n"}, "feature"),
        ({"feature": ""}, "feature"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": "2026-03-02T06:00:00"}, "ts"),  # no zone
        ({"ts": "2026-03-02"}, "ts"),
        ({"ts": "2026-02-30T06:00:00Z"}, "ts"),  # no such day
        ({"ts": "2026-03-02T24:00:00Z"}, "ts"),
        ({"ts": "2026-03-02T06:00:00Z\n"}, "ts"),
        ({"ts": "２０２６-03-02T06:00:00Z"}, "ts"),  # full-width digits are not RFC 3339
        ({"ts": "0001-01-01T00:00:00+01:00"}, "ts"),  # before the first UTC instant Python has
        ({"ts": 1772431200}, "ts"),
        ({"model_version": ""}, "model_version"),
        ({"config_version": 3}, "config_version"),
        ({"segment": ["de"]}, "segment"),
        ({"segment": {"language": 1}}, "segment.language"),
        ({"segment": {"": "de"}}, "segment"),
        ({"segment": {"language": "x" * 201}}, "segment.language"),
        ({"signals": {"confidence": "high"}}, "signals.confidence"),
        ({"signals": {"confidence": True}}, "signals.confidence"),
        ({"signals": {"confidence": math.inf}}, "signals.confidence"),
        ({"signals": {"confidence": math.nan}}, "signals.confidence"),
        ({"signals": {"huge": 10**400}}, "signals.huge"),
        ({"signals": [0.5]}, "signals"),
        ({"user_action": "clicked"}, "user_action"),
        ({"user_action": ["accepted"]}, "user_action"),
        ({"metadata": "free text"}, "metadata"),
        ({"metadata": {"a": {"b": math.nan}}}, "metadata.a.b"),
        ({"metadata": {"a": ["ok", "nul\x00"]}}, "metadata.a[1]"),
        ({"input": "nul \x00 inside"}, "input"),
        ({"output": {"x": math.inf}}, "output.x"),
    ],
)
def test_bad_values_are_named_by_field(fields: dict[str, Any], field: str) -> None:
    assert field_of(output(**fields)) == field


def test_a_non_object_is_refused() -> None:
    for raw in ([], "text", 3, None):
        with pytest.raises(InputError, match="must be an object"):
            validate_output(raw)


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    assert field_of(output(metadata={"x": deep})) == "metadata"


def test_large_integers_in_metadata_are_kept_exactly() -> None:
    big = 2**70 + 1
    raw = json.dumps(output(metadata={"big": big, "negative": -(2**64) - 3})).encode()
    record = validate_output(loads(raw))
    assert record.metadata == {"big": big, "negative": -(2**64) - 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T06:00:00Z", datetime(2026, 3, 2, 6, tzinfo=UTC)),
        ("2026-03-02t06:00:00z", datetime(2026, 3, 2, 6, tzinfo=UTC)),
        ("2026-03-02 06:00:00+00:00", datetime(2026, 3, 2, 6, tzinfo=UTC)),
        ("2026-03-02T08:00:00+02:00", datetime(2026, 3, 2, 6, tzinfo=UTC)),
        ("2026-03-01T23:00:00-07:00", datetime(2026, 3, 2, 6, tzinfo=UTC)),
        ("2026-03-02T06:00:00.5Z", datetime(2026, 3, 2, 6, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-02T06:00:00.123456789Z", datetime(2026, 3, 2, 6, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_ts(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_format_ts_writes_utc_with_z() -> None:
    ts = datetime(2026, 3, 2, 8, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    assert format_ts(ts) == "2026-03-02T06:00:00.000001Z"
    assert parse_ts(format_ts(ts)) == ts


def test_text_length_counts_characters_not_bytes() -> None:
    assert text_length("Grüße") == 5
    assert text_length({"k": "é"}) == len('{"k": "é"}')
    assert text_length(None) is None


# --------------------------------------------------------------------------- labels


def test_a_full_label_is_taken() -> None:
    record = validate_label(label(verdict="fail", score=0.25, reason="wrong", ts="2026-03-03T10:00:00+01:00"))
    assert record == LabelRecord(
        output_id="o-1",
        feature="support-reply",
        verdict="fail",
        source="human:ana",
        score=0.25,
        reason="wrong",
        ts=datetime(2026, 3, 3, 9, tzinfo=UTC),
    )
    assert record.source_kind == "human"
    assert validate_label(label(source="judge:gpt-rubric")).source_kind == "judge"


@pytest.mark.parametrize("missing", ["output_id", "feature", "verdict", "source"])
def test_each_required_label_field_is_named(missing: str) -> None:
    assert field_of(label(**{missing: ...}), validate_label) == missing


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"verdict": "ok"}, "verdict"),
        ({"verdict": ["pass"]}, "verdict"),
        ({"source": "ana"}, "source"),
        ({"source": "robot:x"}, "source"),
        ({"source": "human:"}, "source"),
        ({"source": "human:a b"}, "source"),
        ({"source": "human:ana\n"}, "source"),
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": "high"}, "score"),
        ({"score": True}, "score"),
        ({"ts": "soon"}, "ts"),
        ({"reason": 3}, "reason"),
        ({"comment": "typo"}, "comment"),
        ({"output_id": ""}, "output_id"),
    ],
)
def test_bad_label_values_are_named(fields: dict[str, Any], field: str) -> None:
    assert field_of(label(**fields), validate_label) == field


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"id": "x",', "not valid JSON"),
        (b'{"id": NaN}', "not valid JSON"),
        (b'{"id": "\\ud800"}', "not valid JSON"),
        (b'{"id": "caf\xe9"}', "not UTF-8"),
    ],
)
def test_loads_names_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        loads(raw)


# --------------------------------------------------------------------------- properties

chars = st.characters(codec="utf-8", exclude_characters="\x00")
names = st.text(chars, min_size=1, max_size=20)
feature_names = st.text(st.sampled_from("abcXYZ019_.-"), min_size=1, max_size=64)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
near_valid_outputs = st.fixed_dictionaries(
    {
        "id": st.one_of(names, json_scalars),
        "feature": st.one_of(feature_names, json_scalars),
        "ts": st.one_of(timestamps, json_scalars),
    },
    optional={
        "input": json_values,
        "output": json_values,
        "model_version": st.one_of(names, json_scalars),
        "config_version": st.one_of(names, json_scalars),
        "segment": st.one_of(st.dictionaries(names, st.text(max_size=10), max_size=3), json_values),
        "signals": st.one_of(st.dictionaries(names, st.integers() | st.floats(), max_size=4), json_values),
        "user_action": st.one_of(
            st.sampled_from(["accepted", "edited", "rejected", "retried", "ignored"]), json_scalars
        ),
        "metadata": json_values,
        "extra": json_values,
    },
)


@given(near_valid_outputs | json_values)
def test_validator_returns_a_record_or_raises_input_error_and_nothing_else(raw: Any) -> None:
    try:
        record = validate_output(raw)
    except InputError as exc:
        assert exc.field or "object" in exc.message or "unknown field ''" in exc.message
        return
    assert isinstance(record, OutputRecord)
    assert record.ts.tzinfo is UTC


valid_outputs = st.fixed_dictionaries(
    {"id": names, "feature": feature_names, "ts": timestamps},
    optional={
        "input": st.text(chars, max_size=30)
        | st.dictionaries(st.text(chars, max_size=5), st.integers(), max_size=3),
        "output": st.text(chars, max_size=30),
        "model_version": names,
        "segment": st.dictionaries(names, st.text(chars, max_size=10)),
        "signals": st.dictionaries(
            names, st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
        ),
        "user_action": st.sampled_from(["accepted", "edited", "rejected", "retried", "ignored"]),
        "metadata": st.dictionaries(
            st.text(chars, max_size=5), st.integers() | st.text(chars, max_size=5), max_size=3
        ),
    },
)


@given(valid_outputs)
def test_to_json_round_trips_through_json_text(raw: dict[str, Any]) -> None:
    record = validate_output(raw)
    wire = record.to_json()
    assert validate_output(loads(json.dumps(wire).encode())) == record
    assert set(wire) == set(raw)  # nothing invented, nothing dropped


sources = st.builds(
    "{}:{}".format,
    st.sampled_from(["human", "judge"]),
    st.text(st.sampled_from("ab9._-é"), min_size=1, max_size=20),
)


@given(valid_outputs.map(lambda d: {"output_id": d["id"], "feature": d["feature"]}), st.data())
def test_label_to_json_round_trips(base: dict[str, Any], data: st.DataObject) -> None:
    raw = {
        **base,
        "verdict": data.draw(st.sampled_from(["pass", "fail", "unsure"])),
        "source": data.draw(sources),
        "score": data.draw(st.none() | st.floats(0, 1)),
        "ts": data.draw(st.none() | timestamps),
    }
    record = validate_label({k: v for k, v in raw.items() if v is not None})
    assert validate_label(loads(json.dumps(record.to_json()).encode())) == record
