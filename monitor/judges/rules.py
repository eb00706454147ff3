"""Rule judges: free, instant and deterministic checks of one output.

- `json`: the output is valid JSON (a stored JSON value counts), matching an optional schema;
- `pattern`: every `must` regular expression matches the output, no `must_not` one does;
- `length`: the output's length in characters is within [min_chars, max_chars];
- `refusal`: the output does not refuse ("I'm sorry, but I can't ..."), by built-in phrases
  and any `extra` ones.

Each says `pass` or `fail` with the reason; none raises on odd input.
"""

from __future__ import annotations

import json
import re
from typing import Any

from monitor.config import (
    JsonJudgeSettings,
    LengthJudgeSettings,
    PatternJudgeSettings,
    RefusalJudgeSettings,
)
from monitor.judges.base import JudgeInput, JudgeVerdict, as_text
from monitor.judges.schema import schema_errors

__all__ = ["REFUSAL_PHRASES", "JsonJudge", "LengthJudge", "PatternJudge", "RefusalJudge"]


class _RuleJudge:
    name: str

    def estimate_cost_usd(self, item: JudgeInput) -> float:
        return 0.0


class JsonJudge(_RuleJudge):
    def __init__(self, settings: JsonJudgeSettings) -> None:
        self.name = settings.name
        self.schema = settings.json_schema

    def judge(self, item: JudgeInput) -> JudgeVerdict:
        value: Any = item.output
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                return JudgeVerdict("fail", f"not valid JSON: {exc}")
        elif value is None:
            return JudgeVerdict("fail", "no output")
        if self.schema is None:
            return JudgeVerdict("pass", "valid JSON")
        errors = schema_errors(value, self.schema)
        if errors:
            return JudgeVerdict("fail", "does not match the schema: " + "; ".join(errors))
        return JudgeVerdict("pass", "valid JSON matching the schema")


class PatternJudge(_RuleJudge):
    def __init__(self, settings: PatternJudgeSettings) -> None:
        self.name = settings.name
        flags = re.IGNORECASE if settings.ignore_case else 0
        self.must = [re.compile(p, flags) for p in settings.must]
        self.must_not = [re.compile(p, flags) for p in settings.must_not]

    def judge(self, item: JudgeInput) -> JudgeVerdict:
        text = as_text(item.output)
        missing = [p.pattern for p in self.must if not p.search(text)]
        found = [p.pattern for p in self.must_not if p.search(text)]
        problems = [f"does not match {p!r}" for p in missing] + [f"matches {p!r}" for p in found]
        if problems:
            return JudgeVerdict("fail", "; ".join(problems))
        return JudgeVerdict("pass", "every required pattern matches, no forbidden one does")


class LengthJudge(_RuleJudge):
    def __init__(self, settings: LengthJudgeSettings) -> None:
        self.name = settings.name
        self.min_chars = settings.min_chars
        self.max_chars = settings.max_chars

    def judge(self, item: JudgeInput) -> JudgeVerdict:
        length = len(as_text(item.output))
        if length < self.min_chars:
            return JudgeVerdict("fail", f"{length} characters, fewer than {self.min_chars}")
        if self.max_chars is not None and length > self.max_chars:
            return JudgeVerdict("fail", f"{length} characters, more than {self.max_chars}")
        return JudgeVerdict("pass", f"{length} characters, within bounds")


REFUSAL_PHRASES = (
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "sorry, i can't help with",
    "i can't help with that",
    "i cannot help with that",
    "i can't assist with",
    "i cannot assist with",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i am not able to help",
    "i can't provide",
    "i cannot provide",
    "i won't be able to",
    "as an ai language model",
    "as an ai, i",
    "i must decline",
    "i'm not allowed to",
)
"""Lower-case phrases that open or carry a refusal (curly apostrophes are read as straight)."""


class RefusalJudge(_RuleJudge):
    def __init__(self, settings: RefusalJudgeSettings) -> None:
        self.name = settings.name
        extra = (" ".join(p.lower().replace("\u2019", "'").split()) for p in settings.extra)
        self.phrases = tuple(dict.fromkeys([*REFUSAL_PHRASES, *(p for p in extra if p)]))

    def judge(self, item: JudgeInput) -> JudgeVerdict:
        text = " ".join(as_text(item.output).lower().replace("\u2019", "'").split())
        for phrase in self.phrases:
            if phrase in text:
                return JudgeVerdict("fail", f"refuses: contains {phrase!r}")
        return JudgeVerdict("pass", "no refusal found")
