"""Prediction-powered inference: a judge's scores on many outputs, corrected by a few humans."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.stats._common import as_1d_float, z_value
from monitor.stats.intervals import Estimate

__all__ = ["MIN_ITEMS", "prediction_powered_pass_rate"]

MIN_ITEMS = 2  # human labels, and judge scores without one, that the estimate needs at least


def prediction_powered_pass_rate(
    human: npt.ArrayLike,
    judge_on_human: npt.ArrayLike,
    judge_on_unlabelled: npt.ArrayLike,
    confidence: float = 0.95,
) -> Estimate:
    r"""Prediction-powered estimate of a pass rate (the PPI mean estimator).

    ``human`` holds the human verdicts :math:`Y_i` (1 pass, 0 fail, or scores in [0, 1])
    on *n* outputs, ``judge_on_human`` the judge's verdicts :math:`f(X_i)` on those same
    outputs, and ``judge_on_unlabelled`` the judge's verdicts :math:`f(\tilde X_j)` on *N*
    outputs no human has labelled. The judge's mean is corrected by the *rectifier*, the
    mean human-minus-judge gap measured where both exist:

    .. math::

        \hat\theta = \frac1N\sum_j f(\tilde X_j) + \frac1n\sum_i \big(Y_i - f(X_i)\big),
        \qquad
        \hat\sigma^2 = \frac{s^2_{f(\tilde X)}}{N} + \frac{s^2_{Y - f(X)}}{n}

    (sample variances with ``ddof=1``), and the interval is the normal one,
    :math:`\hat\theta \pm z_{1-\alpha/2}\hat\sigma`, with estimate and bounds clipped to
    [0, 1]. :math:`\hat\theta` is unbiased whatever the judge's bias; the interval is
    narrower than one from the *n* human labels alone when the judge agrees with humans
    well. ``n`` in the result is the number of human labels; ``method`` is ``"ppi"``.
    Needs at least two human labels and two unlabelled judge scores (else ``ValueError``).

    Reference: A. N. Angelopoulos, S. Bates, C. Fannjiang, M. I. Jordan, T. Zrnic (2023),
    "Prediction-powered inference", Science 382(6671):669-674, section "Mean estimation".
    """
    y = as_1d_float(human, "human")
    f_labelled = as_1d_float(judge_on_human, "judge_on_human")
    f_unlabelled = as_1d_float(judge_on_unlabelled, "judge_on_unlabelled")
    if y.shape != f_labelled.shape:
        raise ValueError(f"human and judge_on_human differ in length ({y.size} != {f_labelled.size})")
    if y.size < MIN_ITEMS or f_unlabelled.size < MIN_ITEMS:
        raise ValueError("prediction-powered inference needs >= 2 human labels and >= 2 unlabelled scores")
    for name, array in (("human", y), ("judge_on_human", f_labelled), ("judge_on_unlabelled", f_unlabelled)):
        if not bool(np.all(np.isfinite(array))):
            raise ValueError(f"{name} must be finite")
    z = z_value(confidence)
    rectifier = y - f_labelled
    theta = float(f_unlabelled.mean()) + float(rectifier.mean())
    variance = float(f_unlabelled.var(ddof=1)) / f_unlabelled.size + float(rectifier.var(ddof=1)) / y.size
    half = z * math.sqrt(max(variance, 0.0))
    value = min(max(theta, 0.0), 1.0)
    return Estimate(
        value=value,
        low=min(max(theta - half, 0.0), 1.0),
        high=min(max(theta + half, 0.0), 1.0),
        n=float(y.size),
        method="ppi",
        confidence=confidence,
    )
