"""Judges' settings: the rule judges, the LLM judge, and when a judge disagrees too much."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import _Strict, regular_expressions
from monitor.formats import FEATURE_NAME_PATTERN, is_feature_name

__all__ = [
    "ENV_NAME_PATTERN",
    "JUDGE_NAME_PATTERN",
    "SCHEMA_KEYWORDS",
    "JsonJudgeSettings",
    "JudgeAgreementSettings",
    "JudgeSettings",
    "LLMJudgeSettings",
    "LengthJudgeSettings",
    "PatternJudgeSettings",
    "RefusalJudgeSettings",
]


JUDGE_NAME_PATTERN = FEATURE_NAME_PATTERN
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMA_KEYWORDS = frozenset(
    {"type", "required", "properties", "enum", "items", "additionalProperties"}
    | {"$schema", "$id", "title", "description", "default", "examples"}
)
"""The JSON Schema keywords the `json` judge checks (the rest are annotations it ignores)."""


class _JudgeBase(_Strict):
    name: str = Field("", description="labels come from `judge:<name>`; default: the kind")

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("kind"), str):
            return {**data, "name": data["kind"]}
        return data

    @field_validator("name")
    @classmethod
    def _name_is_a_source(cls, value: str) -> str:

        if not is_feature_name(value):
            raise ValueError(f"judge name {value!r} must match {JUDGE_NAME_PATTERN}")
        return value


class JsonJudgeSettings(_JudgeBase):
    """Fails an output that is not valid JSON, or (with `schema`) does not match the schema."""

    kind: Literal["json"]
    json_schema: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="a JSON Schema subset: type, required, properties, enum, items, additionalProperties",
    )

    @field_validator("json_schema")
    @classmethod
    def _supported_keywords(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_schema_keywords(value, "schema")
        return value


def _check_schema_keywords(schema: Any, where: str) -> None:
    """A keyword the judge would silently ignore is an error: the user must know it is not checked."""
    if not isinstance(schema, dict):
        raise ValueError(f"{where} must be a mapping")
    unknown = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unknown:
        raise ValueError(
            f"{where}: unsupported JSON Schema keyword(s) {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(SCHEMA_KEYWORDS))}"
        )
    for key, sub in (schema.get("properties") or {}).items():
        _check_schema_keywords(sub, f"{where}.properties.{key}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            _check_schema_keywords(schema[keyword], f"{where}.{keyword}")


class PatternJudgeSettings(_JudgeBase):
    """Fails an output unless every `must` regex matches and no `must_not` regex does."""

    kind: Literal["pattern"]
    must: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()
    ignore_case: bool = False

    @field_validator("must", "must_not")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return regular_expressions(value)


class LengthJudgeSettings(_JudgeBase):
    """Fails an output shorter than `min_chars` or longer than `max_chars` characters."""

    kind: Literal["length"]
    min_chars: int = Field(0, ge=0)
    max_chars: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> LengthJudgeSettings:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars must be at least min_chars")
        return self


class RefusalJudgeSettings(_JudgeBase):
    """Fails an output that refuses ("I'm sorry, but I can't ..."): built-in phrases plus `extra`."""

    kind: Literal["refusal"]
    extra: tuple[str, ...] = Field((), description="more refusal phrases (case-insensitive substrings)")


class LLMJudgeSettings(_JudgeBase):
    """A model behind an OpenAI-compatible `POST {base_url}/chat/completions` grades by a rubric."""

    kind: Literal["llm"]
    base_url: str = Field("https://api.openai.com/v1", pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key_env: str = Field(
        "", description="NAME of the environment variable holding the API key (empty: no key sent)"
    )
    rubric: str = Field(min_length=1, description="what a passing output is; the judge's system prompt")
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(
        3, ge=0, description="after the first try, on 429, 5xx, timeouts, network errors"
    )
    price_per_1k_input_tokens: float = Field(0.0, ge=0)
    price_per_1k_output_tokens: float = Field(0.0, ge=0)
    max_output_tokens: int = Field(400, ge=16)
    json_mode: bool = Field(True, description="ask for response_format json_object (dropped if refused)")

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str) -> str:
        import re

        if value and not re.match(ENV_NAME_PATTERN, value):
            raise ValueError(
                "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself"
            )
        return value


JudgeSettings = Annotated[
    JsonJudgeSettings | PatternJudgeSettings | LengthJudgeSettings | RefusalJudgeSettings | LLMJudgeSettings,
    Field(discriminator="kind"),
]


class JudgeAgreementSettings(_Strict):
    """When a judge disagrees with the humans enough to raise the `judge` trigger."""

    kappa: float = Field(0.4, gt=-1, le=1, description="Cohen's kappa a judge must reach with the humans")
    min_items: int = Field(20, ge=2, description="items both a human and the judge labelled, to fire")
    cycles: int = Field(4, ge=1, description="the agreement pools the paired items of this many cycles")
