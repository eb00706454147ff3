"""The shared base of the settings models: strict (unknown keys are errors) and frozen, and their checks."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Mode", "Role", "_Strict", "regular_expressions"]


Mode = Literal["normal", "review", "fallback", "off"]
Role = Literal["ingest", "review", "read", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def regular_expressions(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns, each checked to compile (a validator's body: ValueError names the bad one)."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return patterns
