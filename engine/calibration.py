"""How far the ensemble's confidence is from its accuracy, and temperature scaling to close the gap.

Calibration errors take the ensemble's (N, K) probabilities and the labels; bins are over the top-class
confidence unless said otherwise. Temperature scaling (Guo et al. 2017, applied to an ensemble as in
Ovadia et al. 2019) divides every member's logits by one scalar T before the softmax and averages the
members' probabilities; T is fitted on the validation split, never on the test split it is judged on.
"""

from __future__ import annotations

import numpy as np

from engine import uncertainty as U

BINS = 15
TEMPERATURE_RANGE = (0.01, 100.0)
"""Where a fitted temperature is kept: past 100 the ensemble says nearly the same for every input (labels
that look random to it drive T to infinity), below 0.01 it is a hard argmax."""


def _gap_table(confidence: np.ndarray, hit: np.ndarray, index: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: count, |mean hit − mean confidence| (0 when empty)."""
    count = np.bincount(index, minlength=bins).astype(np.float64)
    conf = np.bincount(index, weights=confidence, minlength=bins)
    acc = np.bincount(index, weights=hit.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(count > 0, np.abs(acc - conf) / np.maximum(count, 1), 0.0)
    return count, gap


def _equal_width(confidence: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def mce(p: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Maximum calibration error: the largest confidence–accuracy gap of any non-empty equal-width bin."""
    confidence = p.max(axis=1)
    _, gap = _gap_table(confidence, p.argmax(axis=1) == labels, _equal_width(confidence, bins), bins)
    return float(gap.max()) if len(labels) else 0.0


def adaptive_ece(p: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """ECE over equal-mass bins: inputs sorted by confidence and cut into `bins` groups of (nearly) equal size.

    Equal-width bins leave most bins empty for a confident model (everything lands in the top bin); equal-mass
    bins spend the resolution where the inputs are (Nixon et al. 2019). Groups are np.array_split's.
    """
    n = len(labels)
    if n == 0:
        return 0.0
    confidence = p.max(axis=1)
    order = np.argsort(confidence, kind="stable")
    index = np.empty(n, dtype=np.int64)
    for b, chunk in enumerate(np.array_split(order, min(bins, n))):
        index[chunk] = b
    count, gap = _gap_table(confidence, p.argmax(axis=1) == labels, index, bins)
    return float((count / n * gap).sum())


def classwise_ece(p: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Mean over classes of the one-vs-rest ECE: class k's probability binned against `label == k`.

    Top-class ECE only looks at the winning probability; this sees every class's (Kull et al. 2019).
    """
    n, k = p.shape
    if n == 0:
        return 0.0
    total = 0.0
    for c in range(k):
        count, gap = _gap_table(p[:, c], labels == c, _equal_width(p[:, c], bins), bins)
        total += float((count / n * gap).sum())
    return total / k


# --------------------------------------------------------------------------- temperature scaling


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def scaled_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Every member's softmax(logits / T), float64, (M, N, K)."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    """The T > 0 that minimises the NLL of the members' mean softmax(logits / T) on (M, N, K) logits.

    LBFGS with a strong-Wolfe line search on log T (so T stays positive and the problem is well scaled), in
    float64, with T clamped to TEMPERATURE_RANGE (at a bound the gradient vanishes and the search stops).
    One scalar for the whole ensemble: what `Ensemble` applies to every member. Returns 1.0 when there is
    nothing to fit (no inputs) or the fit does not land on a finite T.

    On one thread: the problem is small, and on a busy 2-core machine two threads made the fit of
    10 members × 5,000 inputs take 1.2 s instead of 0.3 s (each waits for the other at every op).
    """
    import torch

    if logits.shape[1] == 0:
        return 1.0
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    members = z.shape[0]
    low, high = (float(np.log(t)) for t in TEMPERATURE_RANGE)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        member_log_p = torch.log_softmax(z / log_t.clamp(low, high).exp(), dim=-1)  # (M, N, K)
        picked = member_log_p.gather(-1, y.view(1, -1, 1).expand(members, -1, 1)).squeeze(-1)
        loss = -(torch.logsumexp(picked, dim=0) - np.log(members)).mean()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        optimizer.step(objective)
    finally:
        torch.set_num_threads(threads)
    temperature = float(log_t.detach().clamp(low, high).exp())
    return temperature if np.isfinite(temperature) and temperature > 0 else 1.0


def summary(p: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NLL, ECE and Brier: the `before` / `after` figures of temperature scaling."""
    return {"nll": U.nll(p, labels), "ece": U.ece(p, labels), "brier": U.brier(p, labels)}
