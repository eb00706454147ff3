"""The rows `/metrics` states, per feature: what `monitor.store.metric_queries.MetricsReader` reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "UNFINISHED_AFTER",
    "BaselineRow",
    "CycleRow",
    "CycleSummary",
    "FeatureRow",
    "JudgeTotals",
    "MetricsData",
    "ReviewRow",
    "TriggerRow",
]

UNFINISHED_AFTER = timedelta(hours=1)
"""A cycle still `running` this long after it started has failed or was interrupted."""


@dataclass(frozen=True)
class FeatureRow:
    name: str
    mode: str
    mode_reason: str
    outputs_total: int
    last_output_ts: datetime | None
    last_ingest_at: datetime | None
    mode_by_override: bool = False


@dataclass(frozen=True)
class CycleSummary:
    """A feature's cycles in one line of the index: counts, timing, and which ones are latest."""

    done: int
    running: int
    failed: int
    """Still `running` longer than `UNFINISHED_AFTER` after they started."""
    duration_sum: float
    duration_count: int
    latest_at: datetime | None
    """The latest finished cycle."""
    measured_at: datetime | None
    """The latest finished cycle with a pass rate (labels can arrive after a cycle ran)."""
    sampled_at: datetime | None
    """The latest cycle that drew a sample: its sample is the review queue."""
    restatements: int
    last_finished_at: datetime | None
    last_restated_at: datetime | None

    @property
    def version(self) -> tuple[Any, ...]:
        """Changes whenever a cycle of the feature finishes or is restated."""
        return (
            self.latest_at,
            self.measured_at,
            self.done,
            self.restatements,
            self.last_finished_at,
            self.last_restated_at,
        )


@dataclass(frozen=True)
class CycleRow:
    """A finished cycle: its counts, timing and stored results."""

    at: datetime
    window_start: datetime
    window_end: datetime
    outputs: int
    sampled: int
    labelled: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    finished_at: datetime | None
    duration_seconds: float | None
    result: Mapping[str, Any]


@dataclass(frozen=True)
class BaselineRow:
    version: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    labelled: int


@dataclass(frozen=True)
class TriggerRow:
    trigger: str
    scope: str
    state: str
    since: datetime


@dataclass(frozen=True)
class ReviewRow:
    """The review queue: the latest cycle's sample, less what humans labelled or somebody flagged."""

    cycle_at: datetime
    drawn: int
    reviewed: int
    flagged: int
    review_seconds: float = 0.0
    """the reviewers' time on the sample's human labels (`labels.review_seconds`)"""

    @property
    def backlog(self) -> int:
        return max(0, self.drawn - self.reviewed - self.flagged)


@dataclass(frozen=True)
class JudgeTotals:
    calls: int
    errors: int
    cost_usd: float


@dataclass
class MetricsData:
    """Everything `/metrics` states, per feature name."""

    features: dict[str, FeatureRow] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    """feature -> source_kind -> labels stored"""
    cycles: dict[str, CycleSummary] = field(default_factory=dict)
    latest: dict[str, CycleRow] = field(default_factory=dict)
    measured: dict[str, CycleRow] = field(default_factory=dict)
    baselines: dict[str, BaselineRow] = field(default_factory=dict)
    proposals: dict[str, int] = field(default_factory=dict)
    triggers: dict[str, list[TriggerRow]] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    """feature -> mode of the override in force"""
    review: dict[str, ReviewRow] = field(default_factory=dict)
    open_flags: dict[str, int] = field(default_factory=dict)
    judges: dict[str, dict[str, JudgeTotals]] = field(default_factory=dict)
    """feature -> judge -> calls, errors and cost of every call recorded"""
    deliveries: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(feature, webhook or digest, retrying or failed) -> deliveries in that state"""
    results_version: tuple[Any, ...] = ()
    """Changes whenever `latest`, `measured`, `triggers`, `baselines` or `proposals` change."""
