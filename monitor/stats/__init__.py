"""Pure numpy/SciPy statistics: intervals, drift tests, multiple testing, agreement.

No I/O and no pandas here; every result is a frozen dataclass (or a named tuple) whose
docstring carries its formula and a reference. One statistical idea per module:

- :mod:`~monitor.stats.intervals` — Wilson, Jeffreys, weighted (Hájek/Kish) pass rates,
  Newcombe differences, Fisher's exact test
- :mod:`~monitor.stats.ppi` — prediction-powered pass rate (judge + a few humans)
- :mod:`~monitor.stats.agreement` — Cohen's kappa
- :mod:`~monitor.stats.numeric` — KS, Wasserstein, PSI, JS for numeric signals
- :mod:`~monitor.stats.categorical` — chi-square, PSI, JS, new categories
- :mod:`~monitor.stats.divergence` — PSI and JS from bin counts
- :mod:`~monitor.stats.multitest` — Benjamini-Hochberg
- :mod:`~monitor.stats.drift_result` — thresholds, measurements and verdicts
"""

from monitor.stats.agreement import Agreement, cohens_kappa
from monitor.stats.categorical import (
    ChiSquareResult,
    chi_square_test,
    js_distance_categorical,
    new_categories,
    psi_categorical,
)
from monitor.stats.divergence import js_distance_from_counts, psi_from_counts
from monitor.stats.drift_result import (
    DriftMeasurement,
    DriftResult,
    DriftThresholds,
    compare_categorical,
    compare_numeric,
    decide,
)
from monitor.stats.intervals import (
    Difference,
    Estimate,
    TestResult,
    fisher_exact_test,
    jeffreys_interval,
    newcombe_difference,
    weighted_pass_rate,
    wilson_interval,
)
from monitor.stats.multitest import benjamini_hochberg
from monitor.stats.numeric import (
    KSResult,
    NumericReference,
    NumericSample,
    bin_counts,
    js_distance_numeric,
    ks_p_value,
    ks_test,
    psi,
    wasserstein_scaled,
)
from monitor.stats.ppi import PoweredPassRate, covariate_powered_pass_rate

__all__ = [
    "Agreement",
    "ChiSquareResult",
    "Difference",
    "DriftMeasurement",
    "DriftResult",
    "DriftThresholds",
    "Estimate",
    "KSResult",
    "NumericReference",
    "NumericSample",
    "PoweredPassRate",
    "TestResult",
    "benjamini_hochberg",
    "bin_counts",
    "chi_square_test",
    "cohens_kappa",
    "compare_categorical",
    "compare_numeric",
    "covariate_powered_pass_rate",
    "decide",
    "fisher_exact_test",
    "jeffreys_interval",
    "js_distance_categorical",
    "js_distance_from_counts",
    "js_distance_numeric",
    "ks_p_value",
    "ks_test",
    "new_categories",
    "newcombe_difference",
    "psi",
    "psi_categorical",
    "psi_from_counts",
    "wasserstein_scaled",
    "weighted_pass_rate",
    "wilson_interval",
]
