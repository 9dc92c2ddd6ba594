"""Selective prediction: answer only the inputs the model is surest of, and see how the error falls.

Inputs are ranked by a confidence score (higher = surer: the top probability, or minus the entropy); at
coverage k/n the model answers the k surest and its risk is their error rate. Inputs with equal scores
cannot be told apart, so within a tie the errors are spread evenly (the expected risk over the orders a
tie could be broken in), which makes every figure independent of the order of the inputs.

AURC is the mean of the risk over the n coverages k/n (Geifman et al. 2019); E-AURC subtracts the AURC of
a ranking that puts every correct input first, the best any score can do at this accuracy.
"""

from __future__ import annotations

import numpy as np

from engine import uncertainty as U
from engine.report_model import RiskCoverage

COVERAGES = {"90": 0.90, "95": 0.95, "99": 0.99}
"""The coverages `accuracy_at` reports, keyed by percent."""
CURVE_POINTS = 101


def errors_at(score: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """Expected errors among the k surest inputs, k = 1..n (ties share their errors evenly)."""
    n = len(score)
    order = np.argsort(-score, kind="stable")
    s = score[order]
    cum = np.cumsum(wrong[order].astype(np.float64))
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last index of each tie group
    x = np.concatenate([[0.0], ends + 1.0])
    y = np.concatenate([[0.0], cum[ends]])
    return np.interp(np.arange(1, n + 1, dtype=np.float64), x, y)


def risk_coverage(score: np.ndarray, wrong: np.ndarray) -> RiskCoverage:
    """The curve (at most CURVE_POINTS points, ending at full coverage), AURC, E-AURC and accuracy_at."""
    n = len(score)
    if n == 0:
        nan = float("nan")
        return RiskCoverage(coverage=[], risk=[], aurc=nan, eaurc=nan, accuracy_at=dict.fromkeys(COVERAGES, nan))
    k = np.arange(1, n + 1, dtype=np.float64)
    risk = errors_at(score, wrong) / k
    best = np.maximum(k - (n - int(np.sum(wrong))), 0.0) / k
    picks = np.unique(np.round(np.linspace(0, n - 1, min(n, CURVE_POINTS))).astype(np.int64))
    return RiskCoverage(
        coverage=(k[picks] / n).tolist(), risk=risk[picks].tolist(), aurc=float(risk.mean()),
        eaurc=float(risk.mean() - best.mean()),
        accuracy_at={name: float(1.0 - risk[max(int(np.ceil(c * n - 1e-9)), 1) - 1]) for name, c in COVERAGES.items()},
    )


def average(curves: list[RiskCoverage]) -> RiskCoverage:
    """Risk–coverage results over the same inputs (one per member), averaged figure by figure."""
    return RiskCoverage(
        coverage=curves[0].coverage, risk=np.mean([c.risk for c in curves], axis=0).tolist(),
        aurc=float(np.mean([c.aurc for c in curves])), eaurc=float(np.mean([c.eaurc for c in curves])),
        accuracy_at={key: float(np.mean([c.accuracy_at[key] for c in curves])) for key in COVERAGES},
    )


def rankings(p: np.ndarray) -> dict[str, np.ndarray]:
    """The two confidence scores of (N, K) probabilities: `confidence` (max probability), `entropy` (negated)."""
    return {"confidence": p.max(axis=1), "entropy": -U.entropy(p)}
