"""The whole configuration and how it is loaded: a YAML file plus `AIQM_` environment overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.daemon import (
    DigestSettings,
    MetricsSettings,
    PrivacySettings,
    PullSettings,
    ServerSettings,
    TokenSettings,
    WebhookSettings,
)
from monitor.config.feature import FeatureSettings
from monitor.config.otlp import OtlpSettings
from monitor.errors import ConfigError
from monitor.formats import FEATURE_NAME_PATTERN, is_feature_name

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """The whole configuration. Environment variables `AIQM_<NAME>` win over the file."""

    model_config = SettingsConfigDict(
        env_prefix="AIQM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str = ""
    data_dir: Path = Path("./data")
    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    privacy: PrivacySettings = PrivacySettings()
    pull: PullSettings = PullSettings()
    otlp: OtlpSettings = OtlpSettings()
    tokens: tuple[TokenSettings, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    digest: DigestSettings | None = Field(None, description="the weekly digest; None: none is sent")
    defaults: FeatureSettings = FeatureSettings()
    features: dict[str, FeatureSettings] = Field(default_factory=dict)
    config_file: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @model_validator(mode="before")
    @classmethod
    def _features_start_from_defaults(cls, data: Any) -> Any:
        # Runs on the file and the environment together, so AIQM_DEFAULTS__X reaches every feature.
        return _merge_feature_blocks(data) if isinstance(data, dict) else data

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: dict[str, FeatureSettings]) -> dict[str, FeatureSettings]:

        for name in value:
            if not is_feature_name(name):
                raise ValueError(f"feature name {name!r} must match {FEATURE_NAME_PATTERN}")
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhook_names(cls, value: tuple[WebhookSettings, ...]) -> tuple[WebhookSettings, ...]:
        names = [hook.name for hook in value]
        if len(names) != len(set(names)):
            raise ValueError("two webhooks have the same name")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The store's URL: the configured one, or a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aiqm.sqlite3').resolve()}"

    def feature(self, name: str) -> FeatureSettings:
        """The settings of one feature: its own block, or the defaults."""
        return self.features.get(name, self.defaults)

    def owner_of(self, name: str) -> str:
        return self.feature(name).owner


def _merge_feature_blocks(raw: dict[str, Any]) -> dict[str, Any]:
    """Each feature block starts from the `defaults` block, then overrides what it names."""
    defaults = raw.get("defaults") or {}
    features = raw.get("features") or {}
    if not isinstance(defaults, dict) or not isinstance(features, dict):
        return raw
    merged: dict[str, Any] = {}
    for name, block in features.items():
        if block is None:
            block = {}
        if not isinstance(block, dict):
            merged[name] = block
            continue
        combined = {**defaults, **block}
        for nested in ("drift", "judge_min_agreement"):
            if isinstance(defaults.get(nested), dict) and isinstance(block.get(nested), dict):
                combined[nested] = {**defaults[nested], **block[nested]}
        merged[name] = combined
    return {**raw, "features": merged}


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the YAML file (the argument, else `AIQM_CONFIG`, else none) and the environment."""
    chosen = path if path is not None else os.environ.get("AIQM_CONFIG")
    raw: dict[str, Any] = {}
    source = "environment"
    if chosen:
        file = Path(chosen)
        source = str(file)
        raw = {**_read_yaml(file), "config_file": file}
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid configuration: nested too deeply") from None


def _read_yaml(file: Path) -> dict[str, Any]:
    """The file's top-level mapping of settings (empty for an empty file); ConfigError otherwise."""
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: not valid YAML: nested too deeply") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of settings")
    odd = [key for key in loaded if not isinstance(key, str)]
    if odd:
        raise ConfigError(f"{file}: invalid configuration\n  {odd[0]!r}: unknown key (keys are names)")
    return loaded
