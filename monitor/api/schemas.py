"""The API's bodies as pydantic models: for the OpenAPI schema at `/openapi.json`.

Records are validated by `monitor.records` (the same code as `aiqm ingest`), not by these
models; `OutputIn` and `LabelIn` only describe CONTRACT sections 1 and 2 to a reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.config import Mode
from monitor.formats import FEATURE_NAME_PATTERN


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutputIn(_Doc):
    """A logged output (CONTRACT section 1)."""

    id: str = Field(min_length=1, max_length=200)
    feature: str = Field(pattern=FEATURE_NAME_PATTERN)
    ts: str = Field(description="RFC 3339 with a zone")
    input: Any = None
    output: Any = None
    model_version: str | None = None
    config_version: str | None = None
    segment: dict[str, str] | None = None
    signals: dict[str, float] | None = None
    user_action: Literal["accepted", "edited", "rejected", "retried", "ignored"] | None = None
    metadata: dict[str, Any] | None = None


class LabelIn(_Doc):
    """A label (CONTRACT section 2)."""

    output_id: str
    feature: str
    verdict: Literal["pass", "fail", "unsure"]
    score: float | None = Field(None, ge=0, le=1)
    source: str = Field(pattern=r"^(human|judge):\S{1,120}$")
    reason: str | None = None
    ts: str | None = Field(None, description="RFC 3339; default: now")


class BatchResult(BaseModel):
    received: int
    stored: int
    duplicates: int
    replaced: int | None = Field(None, description="labels only: earlier labels of the same source replaced")


class RecordError(BaseModel):
    index: int | None = Field(description="the record's position in the array (null: the whole body)")
    field: str
    message: str


class BatchErrors(BaseModel):
    errors: list[RecordError]


class TooLarge(BaseModel):
    detail: str


class Trigger(BaseModel):
    trigger: str
    scope: str
    state: Literal["pending", "firing"]
    reason: str
    since: str | None


class FeatureStatus(BaseModel):
    feature: str
    mode: Mode
    triggers: list[Trigger]
    reason: str
    since: str | None


class FeatureList(BaseModel):
    features: list[FeatureStatus]


class OverrideIn(_Doc):
    """Set the mode by hand (`mode` null clears the override, as `DELETE` does)."""

    mode: Mode | None
    reason: str = Field("", max_length=2000, description="why; required when setting a mode")
    until: datetime | None = Field(None, description="RFC 3339 with a zone; the override ends then")


class OfrepSuccess(BaseModel):
    key: str
    value: str
    reason: str
    variant: str
    metadata: dict[str, bool | str | float] = Field(default_factory=dict)


class OfrepFailure(BaseModel):
    """The protocol's failure body (its field names are camelCase)."""

    key: str | None = None
    errorCode: str
    errorDetails: str | None = None


class OfrepBulk(BaseModel):
    flags: list[OfrepSuccess]
