"""Rule judges: JSON (with the schema subset), patterns, length bounds, refusals; and their config."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config import (
    JsonJudgeSettings,
    LengthJudgeSettings,
    PatternJudgeSettings,
    RefusalJudgeSettings,
    Settings,
)
from monitor.errors import ConfigError
from monitor.judges import JudgeInput
from monitor.judges.rules import JsonJudge, LengthJudge, PatternJudge, RefusalJudge
from monitor.judges.schema import schema_errors


def item(output: Any) -> JudgeInput:
    return JudgeInput(output_id="o", input="q", output=output)


SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "additionalProperties": False,
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number"},
        "tone": {"enum": ["friendly", "neutral"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "count": {"type": ["integer", "null"]},
    },
}


def test_json_judge_without_a_schema_checks_validity() -> None:
    judge = JsonJudge(JsonJudgeSettings(kind="json"))
    assert judge.name == "json"
    assert judge.judge(item('{"a": 1}')).verdict == "pass"
    assert judge.judge(item({"already": "json"})).verdict == "pass"  # stored as a JSON value
    failed = judge.judge(item("{'a': 1}"))
    assert failed.verdict == "fail" and "not valid JSON" in failed.rationale
    assert judge.judge(item(None)).verdict == "fail"


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ('{"answer": "yes", "confidence": 0.9}', None),
        ('{"answer": "yes", "confidence": 1, "tags": ["a"], "count": null}', None),
        ('{"answer": "yes"}', "missing required property 'confidence'"),
        ('{"answer": 3, "confidence": 0.9}', "$.answer: expected string, got integer"),
        ('{"answer": "y", "confidence": true}', "$.confidence: expected number, got boolean"),
        ('{"answer": "y", "confidence": 1, "tone": "rude"}', "'rude' is not one of"),
        ('{"answer": "y", "confidence": 1, "tags": ["a", 2]}', "$.tags[1]: expected string"),
        ('{"answer": "y", "confidence": 1, "count": 1.5}', "$.count: expected integer or null"),
        ('{"answer": "y", "confidence": 1, "extra": 1}', "property 'extra' is not allowed"),
        ("[1, 2]", "$: expected object, got array"),
    ],
)
def test_json_judge_checks_the_schema(output: str, problem: str | None) -> None:
    judge = JsonJudge(JsonJudgeSettings(kind="json", name="shape", schema=SCHEMA))
    result = judge.judge(item(output))
    if problem is None:
        assert result.verdict == "pass", result.rationale
    else:
        assert result.verdict == "fail"
        assert problem in result.rationale


def test_schema_errors_are_capped() -> None:
    errors = schema_errors({f"k{i}": i for i in range(20)}, {"additionalProperties": False}, limit=3)
    assert len(errors) == 3


def test_pattern_judge_needs_every_must_and_no_must_not() -> None:
    judge = PatternJudge(
        PatternJudgeSettings(kind="pattern", must=(r"ticket #\d+", r"^Dear"), must_not=(r"(?i)as an ai",))
    )
    assert judge.judge(item("Dear Ann, see ticket #42.")).verdict == "pass"
    missing = judge.judge(item("Hi Ann, see ticket #42."))
    assert missing.verdict == "fail" and "does not match '^Dear'" in missing.rationale
    forbidden = judge.judge(item("Dear Ann, As an AI I opened ticket #1"))
    assert forbidden.verdict == "fail" and "matches '(?i)as an ai'" in forbidden.rationale
    folded = PatternJudge(PatternJudgeSettings(kind="pattern", must=("dear",), ignore_case=True))
    assert folded.judge(item("DEAR Ann")).verdict == "pass"


def test_length_judge_bounds_characters() -> None:
    judge = LengthJudge(LengthJudgeSettings(kind="length", min_chars=3, max_chars=5))
    assert [judge.judge(item(text)).verdict for text in ("ab", "abc", "abcde", "abcdef")] == [
        "fail",
        "pass",
        "pass",
        "fail",
    ]
    assert "fewer than 3" in judge.judge(item("ab")).rationale
    assert judge.judge(item({"a": 1})).verdict == "fail"  # '{"a": 1}' is 8 characters


def test_refusal_judge_finds_refusals() -> None:
    judge = RefusalJudge(RefusalJudgeSettings(kind="refusal", extra=("Outside  my remit",)))
    assert judge.judge(item("Your refund was sent on Monday.")).verdict == "pass"
    for text in (
        "I'm sorry, but I can't help with that request.",
        "I\u2019m sorry, but I cannot share that.",
        "As an AI language model, I do not have opinions.",
        "That is outside my\nremit, I fear.",
    ):
        result = judge.judge(item(text))
        assert result.verdict == "fail", text
        assert result.rationale.startswith("refuses")


def test_rule_judges_are_free() -> None:
    assert RefusalJudge(RefusalJudgeSettings(kind="refusal")).estimate_cost_usd(item("x")) == 0.0


def settings_with_judges(*judges: dict[str, Any]) -> Settings:
    return Settings.model_validate({"features": {"f": {"judges": list(judges)}}})


@pytest.mark.parametrize(
    ("judges", "message"),
    [
        (
            [{"kind": "json", "schema": {"type": "object", "minProperties": 1}}],
            "unsupported JSON Schema keyword",
        ),
        ([{"kind": "json", "schema": {"properties": {"a": {"pattern": "x"}}}}], "schema.properties.a"),
        ([{"kind": "pattern", "must": ["("]}], "invalid regular expression"),
        ([{"kind": "length", "min_chars": 10, "max_chars": 5}], "max_chars must be at least min_chars"),
        ([{"kind": "refusal"}, {"kind": "refusal"}], "same name"),
        ([{"kind": "vibes"}], "does not match any of the expected tags"),
        (
            [{"kind": "llm", "model": "m", "rubric": "r", "api_key_env": "sk-live-123"}],
            "never the key itself",
        ),
        ([{"kind": "llm", "model": "m", "rubric": "r", "api_key": "sk"}], "Extra inputs are not permitted"),
        ([{"kind": "refusal", "name": "has space"}], "must match"),
    ],
)
def test_bad_judge_config_is_refused(judges: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_with_judges(*judges)


def test_judges_in_a_config_file(tmp_path: Any) -> None:
    from monitor.config import load_settings

    path = tmp_path / "aiqm.yaml"
    path.write_text(
        "defaults:\n"
        "  judge_min_agreement: {kappa: 0.5}\n"
        "features:\n"
        "  replies:\n"
        "    judge_budget_usd: 0.5\n"
        "    judge_min_agreement: {min_items: 30}\n"
        "    judges:\n"
        "      - {kind: refusal}\n"
        "      - {kind: llm, name: grader, model: m, rubric: polite, api_key_env: OPENAI_API_KEY}\n",
        encoding="utf-8",
    )
    feature = load_settings(path).feature("replies")
    assert [j.name for j in feature.judges] == ["refusal", "grader"]
    assert feature.judge_budget_usd == 0.5
    assert (feature.judge_min_agreement.kappa, feature.judge_min_agreement.min_items) == (0.5, 30)
    path.write_text(
        "features:\n  replies:\n    judges: [{kind: llm, model: m, rubric: r, api_key_env: sk-1}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "sk-1" not in str(caught.value)  # a key pasted by mistake is not echoed back
