"""Numeric columns compared on a thread pool give exactly what one-by-one comparison gives."""

from __future__ import annotations

import numpy as np

from monitor.stats import NumericReference, compare_numeric
from monitor.stats.drift_result import PARALLEL_VALUES, compare_numeric_columns


def test_the_thread_pool_changes_nothing_but_the_time() -> None:
    rng = np.random.default_rng(4)
    size = PARALLEL_VALUES // 3 + 1
    columns = [
        (
            f"signals.s{k}",
            NumericReference.prepare(rng.lognormal(k % 3, 0.5, size)),
            rng.lognormal(k % 3 + 0.02 * k, 0.5, size).round(k % 2),
        )
        for k in range(5)
    ]
    pooled = compare_numeric_columns(columns, workers=2)
    one_by_one = [m for name, ref, values in columns for m in compare_numeric(name, ref, values)]
    assert pooled == one_by_one
    assert compare_numeric_columns(columns[:1], workers=2) == compare_numeric(*columns[0])
