"""One feature's settings (CONTRACT section 5's defaults) and its drift thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import _Strict
from monitor.config.judges import JudgeAgreementSettings, JudgeSettings
from monitor.formats import CRON_FIELDS

__all__ = ["DriftSettings", "FeatureSettings"]


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
    active_sampling: bool = Field(
        True,
        description="when judges labelled the window's outputs, draw more of those where they leave "
        "most doubt (inclusion probabilities kept exact; without judge labels the draw is unchanged)",
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
        if len(value.split()) != CRON_FIELDS:
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
