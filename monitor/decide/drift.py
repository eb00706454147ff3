"""Drift between two sets of logged outputs, signal by signal and tag by tag.

This is the layer between the contract's records (CONTRACT section 1, as plain dicts)
and the pure statistics of :mod:`monitor.stats`. The cycle and ``aiqm drift`` share it:

>>> reference = prepare_reference(OutputColumns.from_records(baseline_records))  # doctest: +SKIP
>>> report = compare_columns(reference, OutputColumns.from_records(window_records))  # doctest: +SKIP
>>> report.to_json()  # {"signals": [...]} exactly as CONTRACT section 5  # doctest: +SKIP

Columns taken from each record:

numeric
    ``signals.<name>`` for every signal; ``input_length`` and ``output_length``, the
    length in characters of ``input``/``output`` — a string's ``len``, or for a JSON
    value the ``len`` of ``json.dumps(value, ensure_ascii=False)``. Non-finite numbers
    and booleans are skipped. A record without the field adds nothing to the column.
categorical
    ``segment.<key>`` for every segment key, ``user_action``, ``config_version`` and
    ``model_version``, as counts per value. Records without the field add nothing (absence
    is not a category).
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.config import DriftSettings
from monitor.stats.drift_result import (
    DriftMeasurement,
    DriftResult,
    DriftThresholds,
    compare_categorical,
    compare_numeric_columns,
    decide,
    untested,
)
from monitor.stats.numeric import NumericReference

__all__ = [
    "CATEGORICAL_FIELDS",
    "DEFAULT_THRESHOLDS",
    "DriftReport",
    "OutputColumns",
    "PreparedReference",
    "compare_columns",
    "format_report",
    "prepare_reference",
    "thresholds_of",
]


def thresholds_of(settings: DriftSettings) -> DriftThresholds:
    """The statistical thresholds of a feature's (or the defaults') drift settings."""
    return DriftThresholds(
        alpha=settings.alpha,
        numeric_effect=settings.numeric_effect,
        categorical_effect=settings.categorical_effect,
        psi_effect=settings.psi_effect,
    )


DEFAULT_THRESHOLDS = thresholds_of(DriftSettings())
"""The configuration's defaults (`monitor.config.DriftSettings`)."""

#: Top-level record fields compared as categories (besides ``segment.<key>``).
CATEGORICAL_FIELDS = ("user_action", "config_version", "model_version")


def text_length(value: Any) -> int:
    """Length in characters: ``len`` of a string, else of its ``json.dumps(..., ensure_ascii=False)``."""
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, ensure_ascii=False))


@dataclass
class OutputColumns:
    """The columns of a set of logged outputs that drift is measured on.

    ``numeric`` maps ``signals.<name>``, ``input_length``, ``output_length`` to float
    arrays; ``categorical`` maps ``segment.<key>``, ``user_action``, ``config_version``,
    ``model_version`` to counts per value. Columns hold only records that had the field.
    """

    numeric: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    categorical: dict[str, Counter[str]] = field(default_factory=dict)
    records: int = 0

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> OutputColumns:
        """Collect the columns in one pass; the records themselves are not kept."""
        collector = _ColumnCollector()
        for record in records:
            collector.add(record)
        return cls(
            numeric={
                name: np.frombuffer(column, dtype=np.float64).copy()
                for name, column in collector.numeric.items()
            },
            categorical=collector.categorical,
            records=collector.count,
        )


class _ColumnCollector:
    """Appends one record at a time to growing numeric columns and category counts."""

    def __init__(self) -> None:
        self.numeric: dict[str, array[float]] = {}
        self.categorical: dict[str, Counter[str]] = {}
        self.count = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.count += 1
        for side in ("input", "output"):
            known = record.get(f"{side}_length")  # the store keeps lengths, not always texts
            if known is not None:
                self.add_number(f"{side}_length", known)
            elif record.get(side) is not None:
                self.add_number(f"{side}_length", text_length(record[side]))
        signals = record.get("signals")
        if isinstance(signals, Mapping):
            for name, value in signals.items():
                self.add_number(f"signals.{name}", value)
        segment = record.get("segment")
        if isinstance(segment, Mapping):
            for key, value in segment.items():
                self.add_category(f"segment.{key}", value)
        for name in CATEGORICAL_FIELDS:
            self.add_category(name, record.get(name))

    def add_number(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        number = float(value)
        if math.isfinite(number):
            column = self.numeric.get(name)
            if column is None:
                column = self.numeric[name] = array("d")
            column.append(number)

    def add_category(self, name: str, value: Any) -> None:
        if value is None:
            return
        counter = self.categorical.get(name)
        if counter is None:
            counter = self.categorical[name] = Counter()
        counter[value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)] += 1


@dataclass(frozen=True)
class PreparedReference:
    """A baseline prepared once: a :class:`NumericReference` per numeric column, counts per category."""

    numeric: Mapping[str, NumericReference]
    categorical: Mapping[str, Mapping[str, float]]
    records: int = 0


def prepare_reference(columns: OutputColumns, bins: int = 10) -> PreparedReference:
    """Sort and bin every numeric column (deciles by default) and freeze the category counts.

    A numeric column without a finite value is left out (it then compares as missing).
    """
    numeric = {
        name: NumericReference.prepare(values, bins=bins)
        for name, values in columns.numeric.items()
        if values.size
    }
    categorical = {name: dict(counts) for name, counts in columns.categorical.items()}
    return PreparedReference(numeric=numeric, categorical=categorical, records=columns.records)


@dataclass(frozen=True)
class DriftReport:
    """The verdicts of one comparison: primary entries (``ks``, ``chi2``) and secondary ones."""

    signals: list[DriftResult]
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS

    @property
    def drifted(self) -> list[str]:
        """Names of the signals whose primary test says drifted, in report order."""
        return [r.signal for r in self.signals if r.primary and r.drifted]

    @property
    def primary(self) -> list[DriftResult]:
        """One entry per signal: its primary test."""
        return [r for r in self.signals if r.primary]

    def to_json(self) -> dict[str, Any]:
        """``{"signals": [...]}``, the shape of CONTRACT section 5 (``aiqm drift --json``)."""
        return {"signals": [r.to_json() for r in self.signals]}


def compare_columns(
    reference: PreparedReference,
    current: OutputColumns,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> DriftReport:
    """Compare the current window with a prepared baseline, all signals and tags in one family.

    Every column present on either side gets an entry: numeric columns first, then
    categorical ones, each sorted by name. A column missing (or too small) on one side is
    reported untested — ``n_current`` or ``n_reference`` 0, p-value None, not drifted — and
    a categorical column missing from the reference still lists its values as
    ``new_categories``. Benjamini-Hochberg runs over all tested primary entries together
    (see :mod:`monitor.stats.drift_result`).
    """
    measurements: list[DriftMeasurement] = []
    tested: list[tuple[str, NumericReference, npt.NDArray[np.float64]]] = []
    for name in sorted(set(reference.numeric) | set(current.numeric)):
        prepared = reference.numeric.get(name)
        values = current.numeric.get(name, np.zeros(0))
        if prepared is None:
            n_current = int(np.count_nonzero(np.isfinite(values)))
            measurements.append(untested(name, "numeric", 0, n_current))
        else:
            tested.append((name, prepared, values))
    measurements.extend(compare_numeric_columns(tested))
    for name in sorted(set(reference.categorical) | set(current.categorical)):
        measurements.extend(
            compare_categorical(name, reference.categorical.get(name, {}), current.categorical.get(name, {}))
        )
    return DriftReport(signals=decide(measurements, thresholds), thresholds=thresholds)


_SCIENTIFIC_FROM = 1e6  # a table cell this large (or smaller than its digits show) is written 1.23e+06


def _cell(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0.0 and (abs(value) < 10.0**-digits or abs(value) >= _SCIENTIFIC_FROM):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def format_report(report: DriftReport, *, secondary: bool = True) -> str:
    """A fixed-width table: signal, test, statistic, p-value, BH-adjusted p, effect, verdict.

    Secondary entries (no p-value of their own) are indented under their signal; pass
    ``secondary=False`` for primary entries only. New categories are listed after the table.
    """
    rows = [r for r in report.signals if secondary or r.primary]
    header = ("signal", "test", "statistic", "p", "p_adj", "effect", "n_ref", "n_cur", "verdict")
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        verdict = "untested" if r.p_value is None and r.primary else "DRIFTED" if r.drifted else "ok"
        table.append(
            (
                r.signal if r.primary else "  " + r.signal,
                r.test,
                _cell(r.statistic),
                _cell(r.p_value),
                _cell(r.p_value_adjusted),
                _cell(r.effect),
                str(r.n_reference),
                str(r.n_current),
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric_columns = {2, 3, 4, 5, 6, 7}
    lines = []
    for row in table:
        cells = [
            cell.rjust(w) if i in numeric_columns else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in report.primary:
        if r.new_categories:
            lines.append(f"new in {r.signal}: {', '.join(r.new_categories)}")
    thresholds = report.thresholds
    lines.append(
        f"drifted = BH-adjusted p <= {thresholds.alpha:g} and effect >= threshold "
        f"(wasserstein/scale {thresholds.numeric_effect:g}, js {thresholds.categorical_effect:g}, "
        f"psi {thresholds.psi_effect:g}); drifted signals: {', '.join(report.drifted) or 'none'}"
    )
    return "\n".join(lines)
