"""The API's bodies as pydantic models: for the OpenAPI schema at `/openapi.json`.

Records are validated by `monitor.records` (the same code as `aiqm ingest`), not by these
models; `OutputIn` and `LabelIn` only describe CONTRACT sections 1 and 2 to a reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from monitor.config import Mode
from monitor.errors import InputError
from monitor.formats import FEATURE_NAME_PATTERN, parse_ts
from monitor.records import MAX_TAG_CHARS, MAX_VERSION_CHARS

SCHEMAS = "#/components/schemas/{model}"
"""Where the document keeps its schemas (`monitor.api.openapi` puts every model there)."""

NO_NUL = r"^[^\x00]*$"
"""Text every store keeps: PostgreSQL refuses the NUL character."""

JSON_VALUE: dict[str, Any] = {
    "description": "any JSON value whose texts (and keys) carry no NUL character",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": SCHEMAS.format(model="JsonValue")}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": SCHEMAS.format(model="JsonValue")},
        },
    ],
}
"""The free-form parts of a record (`input`, `output`, `metadata`'s members), as the server checks them."""

_JSON_REF = {"$ref": SCHEMAS.format(model="JsonValue")}
_ANY_JSON = WithJsonSchema({"allOf": [_JSON_REF]})


def _object_or_null(names: dict[str, Any], values: dict[str, Any]) -> WithJsonSchema:
    """An object whose every key matches `names` and every value `values`, or null."""
    shape = {"type": "object", "propertyNames": names, "additionalProperties": values}
    return WithJsonSchema({"anyOf": [shape, {"type": "null"}], "default": None})


_NAME = {"minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": NO_NUL}


def _moment(field: str) -> BeforeValidator:
    """A timestamp read by the one parser (`monitor.formats.parse_ts`), its error naming `field`."""

    def parse(value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_ts(value, field)
        except InputError as exc:
            raise ValueError(exc.message) from None

    return BeforeValidator(parse)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


Version = Annotated[str, Field(min_length=1, max_length=MAX_VERSION_CHARS, pattern=NO_NUL)]


class OutputIn(_Doc):
    """A logged output (CONTRACT section 1)."""

    id: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    feature: str = Field(pattern=FEATURE_NAME_PATTERN)
    ts: datetime = Field(description="RFC 3339 with a zone")
    input: Annotated[Any, _ANY_JSON] = None
    output: Annotated[Any, _ANY_JSON] = None
    model_version: Version | None = None
    config_version: Version | None = None
    segment: Annotated[
        dict[str, str] | None,
        _object_or_null(_NAME, {"type": "string", "maxLength": MAX_TAG_CHARS, "pattern": NO_NUL}),
    ] = None
    signals: Annotated[dict[str, float] | None, _object_or_null(_NAME, {"type": "number"})] = Field(
        None, description="finite numbers by name"
    )
    user_action: Literal["accepted", "edited", "rejected", "retried", "ignored"] | None = None
    metadata: Annotated[dict[str, Any] | None, _object_or_null({"pattern": NO_NUL}, _JSON_REF)] = None


class LabelIn(_Doc):
    """A label (CONTRACT section 2); its output must be stored (else the batch is a 422)."""

    output_id: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    feature: str = Field(pattern=FEATURE_NAME_PATTERN)
    verdict: Literal["pass", "fail", "unsure"]
    score: float | None = Field(None, ge=0, le=1)
    source: str = Field(pattern=r"^(human|judge):[^\s\x00]{1,120}$")
    reason: str | None = Field(None, max_length=10_000, pattern=NO_NUL)
    ts: datetime | None = Field(None, description="RFC 3339 with a zone; default: now")


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


class Problem(BaseModel):
    """Why a request was refused (401, 403, 404, 405, 413, 503)."""

    detail: str


class FieldError(BaseModel):
    field: str = Field(description="the field (dotted path) at fault; empty: the whole body")
    message: str


class Errors(BaseModel):
    """Every 422 of this API other than a batch's: what is wrong, by field."""

    errors: list[FieldError]


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
    reason: str = Field(
        "", max_length=2000, pattern=NO_NUL, description="why; required (not blank) when setting a mode"
    )
    until: Annotated[datetime | None, _moment("until")] = Field(
        None, description="RFC 3339 with a zone, in the future; only with a mode; the override ends then"
    )


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
