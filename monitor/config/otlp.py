"""The OTLP receiver's mapping (`POST /v1/traces`, `POST /v1/logs`) and the verdicts' export."""

from __future__ import annotations

from pydantic import Field, field_validator

from monitor.config.base import _Strict

__all__ = ["OtlpSettings"]

_ENV_NAME = r"^([A-Za-z_][A-Za-z0-9_]*)?$"


class OtlpSettings(_Strict):
    """How GenAI spans become logged outputs, and where verdicts go back out as log records."""

    feature_attribute: str = Field(
        "service.name",
        min_length=1,
        description="span attribute naming the feature, else the same resource attribute",
    )
    segment_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="segment key -> span (else resource) attribute whose value is the tag",
    )
    user_action_attribute: str = Field(
        "", description="span (else resource) attribute holding the user action ('': none)"
    )
    max_attribute_chars: int = Field(
        1_000_000, ge=1024, description="a longer attribute value or message refuses the body (413)"
    )
    export_endpoint: str = Field(
        "",
        description="OTLP/HTTP logs URL the verdicts go to after each cycle, e.g. "
        "http://collector:4318/v1/logs ('': not exported)",
    )
    export_headers_env: str = Field(
        "",
        pattern=_ENV_NAME,
        description="env variable with the export's headers, as OTEL_EXPORTER_OTLP_HEADERS: k=v,k2=v2",
    )
    export_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("export_endpoint")
    @classmethod
    def _http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("export_endpoint must start with http:// or https://")
        return value
