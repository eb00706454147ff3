"""Configuration: a YAML file plus `AIQM_` environment overrides.

The file is optional; every setting has a default, and every feature the file does not
name gets the feature defaults of CONTRACT section 5. Unknown keys are errors that name
the key and the file, because a typo in a threshold must not vanish silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.errors import ConfigError
from monitor.formats import FEATURE_NAME_PATTERN, is_feature_name

Mode = Literal["normal", "review", "fallback", "off"]
Role = Literal["ingest", "review", "read", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftSettings(_Strict):
    """When inputs or outputs count as no longer looking like the baseline.

    The one place drift's thresholds are set: the daemon's cycles and `aiqm drift` both use them.

    `alpha` (0.01) is the Benjamini-Hochberg false discovery rate over all primary tests (KS for
    numbers, chi-square for categories) of one comparison; with no drift it bounds the chance of
    any drifted signal in that comparison by 1 %. A signal drifts only when it is also far enough
    from the baseline to matter (the effect thresholds below), and the daemon's `drift` trigger
    fires only after `cycles_to_fire` (2) drifted cycles in a row, so a stable feature does not
    page anyone on one unlucky week. `aiqm drift`, a one-off comparison of two files, has no
    second cycle: its 1 % is per comparison.

    `numeric_effect` (0.1): Wasserstein-1 distance over the baseline's standard deviation; for a
    location shift, the shift in standard deviations (Cohen's d): half of a "small" effect, about a
    KS D of 0.04. `categorical_effect` (0.05): Jensen-Shannon distance (base 2) of the category
    shares, a 50/50 split moving to about 56/44. `psi_effect` (0.2): population stability index of
    the secondary `psi` entries, between the customary 0.1 ("moderate") and 0.25 ("major"); coarser
    on purpose, and only counted when the signal's primary test is significant.
    """

    alpha: float = Field(0.01, gt=0, lt=1, description="false-discovery rate across one comparison's tests")
    numeric_effect: float = Field(0.1, gt=0, description="Wasserstein distance / baseline spread")
    categorical_effect: float = Field(0.05, gt=0, description="Jensen-Shannon distance of the tag mix")
    psi_effect: float = Field(0.2, gt=0, description="population stability index of a `psi` entry")
    cycles_to_fire: int = Field(2, ge=1, description="consecutive drifted cycles before `drift` fires")
    ignore: tuple[str, ...] = Field(
        ("config_version", "model_version"),
        description="signals reported but never firing `drift` (a version change proposes a baseline)",
    )


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
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


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


class FeatureSettings(_Strict):
    """Everything one feature's cycle needs; defaults are CONTRACT section 5's."""

    owner: str = "unassigned"
    decision_owner: str = ""
    schedule: str = Field("0 6 * * 1", description="cron: minute hour day month weekday, in UTC")
    window_days: float = Field(7.0, gt=0)
    sample_size: int = Field(50, ge=1)
    max_sample_size: int = Field(200, ge=1, description="cap when evidence of a drop is building")
    min_per_stratum: int = Field(3, ge=0)
    stratify_by: tuple[str, ...] | None = Field(None, description="segment keys; None means all of them")
    max_strata: int = Field(50, ge=1)
    low_confidence_signal: str = "confidence"
    low_confidence_oversample: float = Field(
        0.0, ge=0, le=1, description="share of the sample drawn from the least confident outputs"
    )
    baseline_cycles: int = Field(4, ge=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    retrain_drop: float = Field(0.05, gt=0, lt=1)
    fallback_drop: float = Field(0.15, gt=0, lt=1)
    fallback_mode: Literal["review", "fallback", "off"] = "review"
    stale_cycles: int = Field(2, ge=1, description="cycles without human labels or outputs before `stale`")
    cooldown_cycles: int = Field(2, ge=0, description="cycles a resolved trigger waits before it may fire")
    segment_min_labels: int = Field(
        30, ge=1, description="baseline labels a segment needs for a baseline of its own"
    )
    drift: DriftSettings = DriftSettings()
    judges: tuple[JudgeSettings, ...] = Field((), description="rule and LLM judges of each drawn output")
    judge_budget_usd: float = Field(5.0, ge=0, description="per cycle, over all the feature's judges")
    quality_judge: str | None = Field(
        None,
        description="the judge whose verdicts stretch the human labels in the pass rate "
        "(prediction-powered); None: the first llm judge, if any. Rule judges only when named.",
    )

    @property
    def quality_judge_source(self) -> str | None:
        """The label source (`judge:<name>`) the pass rate may lean on, or None."""
        if self.quality_judge is not None:
            return f"judge:{self.quality_judge}"
        llm = [judge.name for judge in self.judges if judge.kind == "llm"]
        return f"judge:{llm[0]}" if llm else None

    judge_min_agreement: JudgeAgreementSettings = JudgeAgreementSettings()
    # The launch brief (printed by `aiqm brief`).
    user_role: str = ""
    allowed_actions: tuple[str, ...] = ()
    blocked_actions: tuple[str, ...] = ()
    review_path: str = ""
    fallback_behaviour: str = ""
    known_limitations: tuple[str, ...] = ()
    # The cost of quality (`aiqm report`).
    review_hourly_usd: float = Field(50.0, ge=0, description="what an hour of a reviewer's time costs")
    budget_usd_per_week: float | None = Field(
        None, ge=0, description="model + judges + reviewers per week; over it, a `budget` event; None: none"
    )

    @field_validator("schedule")
    @classmethod
    def _cron_has_five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("must be a cron expression with five fields: minute hour day month weekday")
        return value

    @model_validator(mode="after")
    def _drops_are_ordered(self) -> FeatureSettings:
        if self.fallback_drop <= self.retrain_drop:
            raise ValueError("fallback_drop must be larger than retrain_drop")
        if self.max_sample_size < self.sample_size:
            raise ValueError("max_sample_size must be at least sample_size")
        names = [judge.name for judge in self.judges]
        if len(names) != len(set(names)):
            raise ValueError("two judges of a feature have the same name (set `name` on one)")
        return self


class WebhookSettings(_Strict):
    """A sink for trigger transitions: generic JSON or a Slack-compatible incoming webhook."""

    name: str = Field(pattern=JUDGE_NAME_PATTERN)
    url: str = Field("", description="where to POST; a Slack URL is a secret: prefer url_env")
    url_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env variable with the URL")
    kind: Literal["json", "slack"] = "json"
    features: tuple[str, ...] = Field((), description="only these features' transitions; empty: all")
    max_attempts: int = Field(5, ge=1)
    timeout_seconds: float = Field(10.0, gt=0)
    backoff_seconds: float = Field(1.0, ge=0, description="first retry's wait; doubles each attempt")
    max_age_hours: float = Field(
        24.0, gt=0, description="older transitions, first seen by this sink, are recorded as skipped"
    )

    @model_validator(mode="after")
    def _one_url(self) -> WebhookSettings:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("set exactly one of url and url_env")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self

    def resolved_url(self) -> str:
        """The URL to POST to (read from the environment at send time when `url_env` is set)."""
        return self.url or os.environ.get(self.url_env, "")


class DigestSettings(_Strict):
    """The weekly digest (`aiqm report` after each cycle): email over SMTP and/or named webhooks."""

    smtp_host: str = Field("", description="the SMTP server; empty: no email")
    smtp_port: int = Field(25, ge=1, le=65535)
    sender: str = Field("", alias="from", description="the From address")
    to_owner: bool = Field(True, description="send to the feature's owner (when it is an email address)")
    to: tuple[str, ...] = Field((), description="more recipients, for every feature")
    starttls: bool = False
    username_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env var: SMTP user")
    password_env: str = Field(
        "", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description="env var: SMTP password"
    )
    timeout_seconds: float = Field(30.0, gt=0)
    webhooks: tuple[str, ...] = Field((), description="names of `webhooks` the digest is POSTed to")


class TokenSettings(_Strict):
    name: str
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token, never the token")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(10_000_000, ge=1024)
    max_batch: int = Field(5000, ge=1)
    metrics_token_sha256: str = Field(
        "",
        pattern=r"^([0-9a-f]{64})?$",
        description="sha256 hex of a bearer token /metrics then requires (empty: /metrics is open)",
    )
    metrics_role: Role | None = Field(
        None, description="/metrics also admits any API token of this role (or admin); None: open"
    )
    session_secret_env: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
        description="env variable whose value signs review sessions (empty: a secret stored in the store)",
    )
    read_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="how long a polled mode and the stored tokens are reused before the store is read "
        "again (changes made elsewhere show within this time; 0: read every time)",
    )


class MetricsSettings(_Strict):
    """What `/metrics` exports: cardinality bounds (the overflow is counted, never silently cut)."""

    max_scopes_per_feature: int = Field(
        20, ge=0, description="segment scopes per feature per metric; the rest are counted as dropped"
    )
    max_signals_per_feature: int = Field(
        60, ge=0, description="drift signals per feature; the rest are counted as dropped"
    )


class PrivacySettings(_Strict):
    """Redaction of personal data and retention of raw text (see `monitor.intake.privacy`)."""

    redact: bool = Field(False, description="replace e-mails, phones, card numbers, IBANs and `patterns`")
    patterns: tuple[str, ...] = Field((), description="more regular expressions to redact")
    redact_before: Literal["storage", "judges"] = Field(
        "storage", description="storage: redact at ingest; judges: store raw, redact what judges see"
    )
    retention_days: float | None = Field(
        None, gt=0, description="raw inputs and outputs older than this are deleted (None: kept)"
    )
    unsampled_text: Literal["keep", "delete"] = Field(
        "keep",
        description="delete: after each cycle, the raw input and output of outputs no cycle sampled "
        "and no later cycle can sample are deleted (lengths kept for drift); keep: kept until retention",
    )

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class SqlPullSettings(_Strict):
    """The app's own table or view (see `monitor.intake.pull_sql`), copied incrementally."""

    url: str = Field(description="SQLAlchemy URL of the app's database")
    table: str = Field(min_length=1, description="table or view, optionally schema-qualified")
    columns: dict[str, str] = Field(description="output field -> column: id and ts at least")
    feature: str | None = Field(None, description="the feature of every row, unless columns maps one")
    cursor: str | None = Field(None, description="column the copy advances by (default: the ts column)")
    batch: int = Field(5_000, ge=1)
    copy_text: Literal["sampled", "all"] = Field(
        "sampled",
        description="sampled: copy every row but the input and output text (their lengths are kept for "
        "drift) and read the text of the outputs a cycle samples from the table then; all: copy it all",
    )
    lookback_seconds: float = Field(
        0.0,
        ge=0,
        description="a date-time cursor: each pass reads again this far before the watermark, so rows "
        "committed late with an earlier time are copied too (copies are told apart by id)",
    )


class PullSettings(_Strict):
    """Pull mode (see `monitor.intake.pull_jsonl`): read outputs where the app already writes them."""

    jsonl_dirs: tuple[Path, ...] = Field((), description="directories of JSONL logs shared with the app")
    pattern: str = Field("*.jsonl", min_length=1, description="which files of those directories are logs")
    interval_seconds: float = Field(60.0, gt=0, description="how often the daemon pulls new lines")
    sql: SqlPullSettings | None = Field(None, description="the app's table or view; None: none")


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
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of settings")
        odd = [key for key in loaded if not isinstance(key, str)]
        if odd:
            raise ConfigError(f"{file}: invalid configuration\n  {odd[0]!r}: unknown key (keys are names)")
        raw = {**loaded, "config_file": file}
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid configuration: nested too deeply") from None
