"""Configuration: a YAML file plus `AIQM_` environment overrides.

The file is optional; every setting has a default, and every feature the file does not
name gets the feature defaults of CONTRACT section 5. Unknown keys are errors that name
the key and the file, because a typo in a threshold must not vanish silently.
"""

from __future__ import annotations

from monitor.config.base import Mode, Role
from monitor.config.daemon import (
    DigestSettings,
    MetricsSettings,
    PrivacySettings,
    PullSettings,
    ServerSettings,
    SqlPullSettings,
    TokenSettings,
    WebhookSettings,
)
from monitor.config.feature import DriftSettings, FeatureSettings
from monitor.config.judges import (
    ENV_NAME_PATTERN,
    JUDGE_NAME_PATTERN,
    SCHEMA_KEYWORDS,
    JsonJudgeSettings,
    JudgeAgreementSettings,
    JudgeSettings,
    LengthJudgeSettings,
    LLMJudgeSettings,
    PatternJudgeSettings,
    RefusalJudgeSettings,
)
from monitor.config.otlp import OtlpSettings
from monitor.config.settings import Settings, load_settings

__all__ = [
    "ENV_NAME_PATTERN",
    "JUDGE_NAME_PATTERN",
    "SCHEMA_KEYWORDS",
    "DigestSettings",
    "DriftSettings",
    "FeatureSettings",
    "JsonJudgeSettings",
    "JudgeAgreementSettings",
    "JudgeSettings",
    "LLMJudgeSettings",
    "LengthJudgeSettings",
    "MetricsSettings",
    "Mode",
    "OtlpSettings",
    "PatternJudgeSettings",
    "PrivacySettings",
    "PullSettings",
    "RefusalJudgeSettings",
    "Role",
    "ServerSettings",
    "Settings",
    "SqlPullSettings",
    "TokenSettings",
    "WebhookSettings",
    "load_settings",
]
