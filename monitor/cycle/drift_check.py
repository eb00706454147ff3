"""Each cycle's window tested against its baseline's outputs, the baseline's side prepared once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from monitor.config import FeatureSettings
from monitor.cycle.result import DriftCheck, DriftEntry
from monitor.decide.drift import (
    OutputColumns,
    PreparedReference,
    compare_columns,
    prepare_reference,
    thresholds_of,
)
from monitor.store import cycle_queries as q


@dataclass
class DriftChecker:
    """Keeps the prepared reference of each (feature, baseline version) between cycles."""

    _references: dict[tuple[str, int], PreparedReference] = field(default_factory=dict)

    def check(
        self,
        conn: Connection,
        feature: str,
        settings: FeatureSettings,
        baseline_row: Mapping[str, Any],
        window: Sequence[Mapping[str, Any]],
    ) -> DriftCheck:
        version = int(baseline_row["version"])
        reference = self._references.get((feature, version))
        if reference is None:
            columns = OutputColumns.from_records(
                q.window_records(conn, feature, baseline_row["window_start"], baseline_row["window_end"])
            )
            reference = self._references[(feature, version)] = prepare_reference(columns)
        report = compare_columns(reference, OutputColumns.from_records(window), thresholds_of(settings.drift))
        return DriftCheck(
            baseline_version=baseline_row["version"],
            entries=tuple(DriftEntry.of(entry) for entry in report.primary),
            drifted=tuple(report.drifted),
        )
