"""Telling an out-of-distribution (OOD) set from the test split by a score: higher score = more OOD.

Scores of the ensemble (M members, (M, N, K) probabilities, logits where the run saved them):

    msp                 minus the top probability of the members' mean (Hendrycks & Gimpel 2017)
    entropy             total predictive entropy of the mean, nats
    mutual_information  the members' disagreement (epistemic part of the entropy), nats
    energy              the members' mean free energy −logsumexp(logits) (Liu et al. 2020), each member's
                        own logits at temperature 1; needs logits, so runs without them skip it

Balanced sets: the OOD inputs are the positive class and the test split's inputs the negative one, in equal
numbers. When the OOD set and the test split differ in size, the larger side is sampled down to the
smaller's size, uniformly without replacement with a fixed seed (numpy default_rng(0)), so every run on the
same data compares the same inputs. `in_size` and `ood_size` in report.json say how many were compared.

Figures (scikit-learn): `auroc` (roc_auc_score), `aupr_out` (average_precision_score, OOD positive),
`aupr_in` (the same with in-distribution positive and the score negated), `fpr95` (the share of
in-distribution inputs scoring at or above the highest threshold that catches 95 % of the OOD ones, from
roc_curve) and `roc`, the ROC curve thinned to at most 101 (fpr, tpr) points.
"""

from __future__ import annotations

import numpy as np

from engine import uncertainty as U
from engine.report_model import OodScore

SEED = 0
ROC_POINTS = 101
TPR_LEVEL = 0.95


def balanced(n_in: int, n_out: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the in-distribution and OOD inputs to compare, as many of each (see the module doc)."""
    size = min(n_in, n_out)
    rng = np.random.default_rng(seed)
    pick = lambda n: np.arange(n) if n == size else np.sort(rng.choice(n, size=size, replace=False))  # noqa: E731
    return pick(n_in), pick(n_out)


def free_energy(logits: np.ndarray) -> np.ndarray:
    """(M, N, K) logits → (N,) the members' mean −logsumexp(logits)."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=-1, keepdims=True)
    lse = (top + np.log(np.exp(z - top).sum(axis=-1, keepdims=True)))[..., 0]
    return -lse.mean(axis=0)


def score_values(probs: np.ndarray, logits: np.ndarray | None, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each named score per input (higher = more OOD); `energy` is left out when there are no logits."""
    parts = U.decompose(probs)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "msp":
            out[name] = -U.ensemble_mean(probs).max(axis=1)
        elif name in ("entropy", "mutual_information"):
            out[name] = parts[name]
        elif name == "energy" and logits is not None:
            out[name] = free_energy(logits)
    return out


def detection(in_scores: np.ndarray, out_scores: np.ndarray) -> OodScore:
    """AUROC, AUPR-in, AUPR-out, FPR at 95 % TPR and the thinned ROC curve; NaN when a side is empty."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    if len(in_scores) == 0 or len(out_scores) == 0:
        nan = float("nan")
        return OodScore(auroc=nan, aupr_in=nan, aupr_out=nan, fpr95=nan)
    y = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    s = np.concatenate([in_scores, out_scores]).astype(np.float64)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    picks = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS))).astype(np.int64))
    return OodScore(
        auroc=float(roc_auc_score(y, s)),
        aupr_in=float(average_precision_score(1 - y, -s)),
        aupr_out=float(average_precision_score(y, s)),
        fpr95=float(fpr[np.searchsorted(tpr, TPR_LEVEL, side="left")]),
        roc=[(float(f), float(t)) for f, t in zip(fpr[picks], tpr[picks], strict=True)],
    )
