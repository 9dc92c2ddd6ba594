"""Uncertainty of a deep ensemble from its members' softmax outputs.

All functions take `probs` as (members, samples, classes) arrays of probabilities and work in
nats. The decomposition is the usual one: total predictive entropy H[E p] = aleatoric E H[p]
+ epistemic (mutual information between the prediction and the member).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (nats) along `axis`."""
    return -(p * np.log(np.clip(p, EPS, 1.0))).sum(axis=axis)


def ensemble_mean(probs: np.ndarray) -> np.ndarray:
    """The ensemble's predictive distribution: the average of member probabilities."""
    return probs.mean(axis=0)


def decompose(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample total entropy, aleatoric (expected member entropy) and mutual information."""
    total = entropy(ensemble_mean(probs))
    aleatoric = entropy(probs).mean(axis=0)
    return {"entropy": total, "aleatoric": aleatoric, "mutual_information": np.maximum(total - aleatoric, 0.0)}


CONFIDENT_SHARE = 0.95
"""Share of correctly classified test inputs a verdict threshold keeps `confident`."""
FLAGGED_SHARE = 0.05
"""Share of in-distribution test inputs the `out-of-distribution` threshold flags."""


def verdict_thresholds(parts: dict[str, np.ndarray], correct: np.ndarray) -> dict[str, float]:
    """Entropy above which an input is `uncertain`, mutual information above which it is `out-of-distribution`.

    Both are quantiles of the run's own test split, so a verdict means the same on any dataset: an
    `uncertain` input is less sure than 95 % of the inputs the ensemble got right, an out-of-distribution
    one disagrees more than all but 5 % of in-distribution inputs.
    """
    right = parts["entropy"][correct] if correct.any() else parts["entropy"]
    return {
        "entropy": float(np.quantile(right, CONFIDENT_SHARE)),
        "mutual_information": float(np.quantile(parts["mutual_information"], 1.0 - FLAGGED_SHARE)),
    }


def verdicts(entropy: np.ndarray, mutual_information: np.ndarray, thresholds: dict[str, float]) -> list[str]:
    """`confident | uncertain | out-of-distribution` per input; disagreement among members outranks doubt."""
    return ["out-of-distribution" if mi > thresholds["mutual_information"] else
            "uncertain" if h > thresholds["entropy"] else "confident"
            for h, mi in zip(entropy.tolist(), mutual_information.tolist(), strict=True)]


def accuracy(p: np.ndarray, labels: np.ndarray) -> float:
    return float((p.argmax(axis=1) == labels).mean())


def nll(p: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    return float(-np.log(np.clip(p[np.arange(len(labels)), labels], EPS, 1.0)).mean())


def brier(p: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance to the one-hot label, summed over classes."""
    onehot = np.eye(p.shape[1])[labels]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def reliability(p: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Confidence vs accuracy in equal-width confidence bins (the reliability diagram's data)."""
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=confidence, minlength=bins) / np.maximum(count, 1)
    acc = np.bincount(index, weights=correct, minlength=bins) / np.maximum(count, 1)
    return [{"bin_lower": float(edges[b]), "bin_upper": float(edges[b + 1]), "count": int(count[b]),
             "confidence": float(conf[b]), "accuracy": float(acc[b])} for b in range(bins)]


def ece(p: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the count-weighted gap between confidence and accuracy (reliability's bins)."""
    confidence = p.max(axis=1)
    index = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    right = np.bincount(index, weights=(p.argmax(axis=1) == labels).astype(np.float64), minlength=bins)
    sure = np.bincount(index, weights=confidence, minlength=bins)
    return float(np.abs(right - sure).sum() / max(len(labels), 1))


def member_figures(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Accuracy, NLL, ECE and mean entropy of each of M members at once, (M,) each (what `ece` and `nll` give
    one by one, in one pass over the (M, N, K) array)."""
    m, n, _ = probs.shape
    confidence = probs.max(axis=2)
    right = (probs.argmax(axis=2) == labels).astype(np.float64)
    picked = np.take_along_axis(probs, labels[None, :, None], axis=2)[..., 0]
    index = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    index = index + bins * np.arange(m)[:, None]
    gap = np.abs(np.bincount(index.ravel(), weights=right.ravel(), minlength=m * bins)
                 - np.bincount(index.ravel(), weights=confidence.ravel(), minlength=m * bins))
    return {"accuracy": right.mean(axis=1), "nll": -np.log(np.clip(picked, EPS, 1.0)).mean(axis=1),
            "ece": gap.reshape(m, bins).sum(axis=1) / max(n, 1), "entropy": entropy(probs).mean(axis=1)}


def scores(p: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The four headline metrics of one predictive distribution."""
    return {"accuracy": accuracy(p, labels), "nll": nll(p, labels), "brier": brier(p, labels), "ece": ece(p, labels)}


def size_curve(probs: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """Accuracy and NLL of the first k members' ensemble, k = 1..M."""
    running = np.zeros_like(probs[0])
    curve = []
    for k, member in enumerate(probs, start=1):
        running += member
        mean = running / k
        curve.append({"size": k, "accuracy": accuracy(mean, labels), "nll": nll(mean, labels)})
    return curve


def ood_auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """AUROC of telling OOD (positive) from in-distribution inputs by a score (higher = more OOD)."""
    from sklearn.metrics import roc_auc_score  # 0.7 s to import: `ens-tui predict` never needs it

    y = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    return float(roc_auc_score(y, np.concatenate([in_scores, out_scores])))


def histogram(values: dict[str, np.ndarray], bins: int = 20) -> dict[str, list[float]]:
    """Counts of several samples over shared bin edges (for side-by-side entropy histograms)."""
    top = max((float(v.max()) for v in values.values() if len(v)), default=1.0) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    out: dict[str, list[float]] = {"bins": edges.tolist()}
    for name, v in values.items():
        out[name] = np.histogram(v, bins=edges)[0].astype(float).tolist()
    return out


def disagreement(probs: np.ndarray) -> float:
    """How often two members pick different classes, averaged over the M(M−1)/2 pairs (0 for one member)."""
    if len(probs) < 2:
        return 0.0
    predictions = probs.argmax(axis=2)
    pairs = np.triu_indices(len(probs), k=1)
    return float((predictions[:, None, :] != predictions[None, :, :]).mean(axis=2)[pairs].mean())


def diversity(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How differently M ≥ 2 members answer: pairwise disagreement, mean KL(member ‖ ensemble), error correlation.

    Disagreement and error correlation are means over the M(M−1)/2 member pairs; a pair where one member is
    always right (or always wrong) has no correlation and is left out (NaN when every pair is).
    """
    wrong = (probs.argmax(axis=2) != labels).astype(np.float64)
    pairs = np.triu_indices(len(probs), k=1)
    mean = ensemble_mean(probs)
    kl = (probs * (np.log(np.clip(probs, EPS, 1.0)) - np.log(np.clip(mean, EPS, 1.0)))).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(wrong)[pairs] if len(probs) > 1 else np.array([])
    corr = corr[np.isfinite(corr)]
    return {"disagreement": disagreement(probs), "kl_to_ensemble": float(np.maximum(kl, 0.0).mean()),
            "error_correlation": float(corr.mean()) if len(corr) else float("nan")}
