"""What more members are worth: NLL(k) ≈ a + b/k fitted to an ensemble-size curve.

Averaging k members whose errors are independent shrinks the part of the NLL that averaging can remove
as 1/k, so a least-squares line through (1/k, NLL(k)) gives the limit `a` of an unbounded ensemble and the
removable part `b`. Numpy only: the ranks fit it live, rank 0 fits it again for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.report_model import ProjectedNll, SizeLaw

SHARE = 0.95
"""`gain_95`: the share of the attainable gain asked for."""
MAX_PROJECTED = 1024


def fit_size_law(sizes: Sequence[int], nll: Sequence[float]) -> SizeLaw | None:
    """The law through the curve's points (k, NLL(k)); None with fewer than two sizes or a non-finite point."""
    k = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(nll, dtype=np.float64)
    if len(k) < 2 or len(np.unique(k)) < 2 or not np.isfinite(y).all():
        return None
    b, a = np.polyfit(1.0 / k, y, 1)
    a, b = float(a), float(b)
    largest = int(k.max())
    attainable = float(y[np.argmin(k)]) - a
    if b > 0 and attainable > 0:
        gain_95 = min(MAX_PROJECTED, max(1, math.ceil(b / ((1.0 - SHARE) * attainable))))
    else:
        gain_95 = largest  # nothing more to gain: the members already there are enough
    sizes_out = sorted({largest + 1, 2 * largest, 4 * largest, gain_95} - set(range(largest + 1)))
    return SizeLaw(
        a=a, b=b, sizes=largest, next_gain=b / largest - b / (largest + 1), gain_95=gain_95,
        projected=[ProjectedNll(size=n, nll=a + b / n) for n in sizes_out if n <= MAX_PROJECTED],
    )
