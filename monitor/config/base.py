"""The shared base of the settings models: strict (unknown keys are errors) and frozen."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Mode", "Role", "_Strict"]


Mode = Literal["normal", "review", "fallback", "off"]
Role = Literal["ingest", "review", "read", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
