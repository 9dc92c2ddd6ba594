"""Every figure of the richer report, checked against an independent implementation or a case worked by hand.

scikit-learn and torchmetrics are the references where they compute the figure; where neither does (AURC,
adaptive ECE, the balanced OOD sampling) a brute-force definition written out here is. All in float64.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp
from scipy.stats import entropy as scipy_kl
from scipy.stats import pearsonr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from engine import calibration as C
from engine import ood as O
from engine import selective as S
from engine import uncertainty as U
from engine.predictions import image_bytes, load_predictions, save_predictions
from engine.report import SIZE_SUBSETS, build_report, main, size_subsets, to_markdown
from engine.report_model import Report

RECORDED_REPORT = Path(__file__).parent / "tui" / "fixtures" / "recorded-run" / "report.json"


def dirichlet(rng: np.random.Generator, *shape: int, alpha: float = 0.5) -> np.ndarray:
    return rng.dirichlet(np.full(shape[-1], alpha), size=shape[:-1])


TORCHMETRICS_ATOL = 1e-6
"""torchmetrics bins float32 confidences, whatever dtype it is given."""


def torchmetrics_ce(p: np.ndarray, labels: np.ndarray, norm: str) -> float:
    metric = MulticlassCalibrationError(num_classes=p.shape[1], n_bins=15, norm=norm)
    return float(metric(torch.as_tensor(p), torch.as_tensor(labels)))


# --------------------------------------------------------------------------- scores and calibration


def test_member_figures_in_one_pass_are_each_members_own() -> None:
    rng = np.random.default_rng(12)
    probs = dirichlet(rng, 3, 400, 6)
    labels = rng.integers(0, 6, 400)
    each = U.member_figures(probs, labels)
    for m, p in enumerate(probs):
        assert each["accuracy"][m] == U.accuracy(p, labels)
        assert each["nll"][m] == pytest.approx(log_loss(labels, p, labels=range(6)), rel=1e-12)
        assert each["ece"][m] == pytest.approx(torchmetrics_ce(p, labels, "l1"), abs=TORCHMETRICS_ATOL)
        assert each["entropy"][m] == pytest.approx(U.entropy(p).mean(), rel=1e-12)


def test_nll_and_brier_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    p = dirichlet(rng, 500, 7)
    labels = rng.integers(0, 7, 500)
    assert U.nll(p, labels) == pytest.approx(log_loss(labels, p, labels=range(7)), rel=1e-12)
    per_class = sum(brier_score_loss(labels == k, p[:, k]) for k in range(7))
    assert U.brier(p, labels) == pytest.approx(per_class, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_mce_agree_with_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = dirichlet(rng, 2000, 10, alpha=0.3)
    labels = np.where(rng.random(2000) < 0.7, p.argmax(axis=1), rng.integers(0, 10, 2000))
    assert U.ece(p, labels) == pytest.approx(torchmetrics_ce(p, labels, "l1"), abs=TORCHMETRICS_ATOL)
    assert C.mce(p, labels) == pytest.approx(torchmetrics_ce(p, labels, "max"), abs=TORCHMETRICS_ATOL)


def test_classwise_ece_is_the_mean_of_torchmetrics_one_vs_rest_errors() -> None:
    rng = np.random.default_rng(3)
    p = dirichlet(rng, 1500, 5)
    labels = rng.integers(0, 5, 1500)
    binary = BinaryCalibrationError(n_bins=15, norm="l1")
    want = np.mean([float(binary(torch.as_tensor(p[:, k]), torch.as_tensor((labels == k).astype(np.int64))))
                    for k in range(5)])
    assert C.classwise_ece(p, labels) == pytest.approx(want, abs=TORCHMETRICS_ATOL)


def test_adaptive_ece_equals_ece_when_every_equal_width_bin_holds_as_many_inputs() -> None:
    # 20 inputs in each of the 15 confidence bins: equal-mass bins are then the equal-width ones.
    rng = np.random.default_rng(4)
    k, per_bin = 20, 20
    rows, labels = [], []
    for b in range(15):
        lo = max(b / 15, 0.06)
        for c in rng.uniform(lo + 1e-3, (b + 1) / 15 - 1e-3, per_bin):
            top = int(rng.integers(0, k))
            row = np.full(k, (1 - c) / (k - 1))
            row[top] = c
            rows.append(row)
            labels.append(top if rng.random() < 0.6 else (top + 1) % k)
    p, y = np.array(rows), np.array(labels)
    assert C.adaptive_ece(p, y) == pytest.approx(torchmetrics_ce(p, y, "l1"), abs=TORCHMETRICS_ATOL)


def test_adaptive_ece_by_hand() -> None:
    # Four inputs, two equal-mass bins: {0.55 wrong, 0.6 right} and {0.9 right, 0.95 right}.
    p = np.array([[0.9, 0.1], [0.55, 0.45], [0.95, 0.05], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    want = 0.5 * abs(0.5 - 0.575) + 0.5 * abs(1.0 - 0.925)
    assert C.adaptive_ece(p, labels, bins=2) == pytest.approx(want)


def sample_labels(rng: np.random.Generator, logits: np.ndarray, temperature: float) -> np.ndarray:
    """Labels drawn from softmax(logits / temperature), (N, K) → (N,): a model calibrated at that temperature."""
    cdf = np.cumsum(np.exp(log_softmax(logits / temperature, axis=-1)), axis=-1)
    return np.minimum((rng.random((len(logits), 1)) > cdf).sum(axis=1), logits.shape[1] - 1)


def nll_at(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    """The ensemble's NLL at temperature t, written with scipy (the reference for the torch LBFGS fit)."""
    picked = log_softmax(logits / t, axis=-1)[:, np.arange(len(labels)), labels]
    return float(-(logsumexp(picked, axis=0) - math.log(len(logits))).mean())


def test_temperature_fit_finds_the_scipy_minimum_and_lowers_validation_nll() -> None:
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(1, 3000, 10)) * 4
    logits = shared + rng.normal(size=(4, 3000, 10)) * 2  # overconfident members
    labels = sample_labels(rng, shared[0], 3.0)
    t = C.fit_temperature(logits, labels)
    reference = minimize_scalar(lambda lt: nll_at(logits, labels, math.exp(lt)), bounds=(-3, 3), method="bounded",
                                options={"xatol": 1e-10})
    assert t == pytest.approx(math.exp(reference.x), rel=1e-4)
    assert t > 1  # it softens overconfident members
    assert nll_at(logits, labels, t) < nll_at(logits, labels, 1.0)
    assert C.scaled_probs(logits, t) == pytest.approx(np.exp(log_softmax(logits / t, axis=-1)), abs=1e-12)


def test_a_member_calibrated_at_temperature_two_is_found_there() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(1, 20000, 5)) * 3
    labels = sample_labels(rng, logits[0], 2.0)
    assert C.fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


# --------------------------------------------------------------------------- selective prediction


def brute_force_risks(score: np.ndarray, wrong: np.ndarray) -> list[float]:
    """Risk of answering the k surest inputs, k = 1..n, scores without ties."""
    ranked = sorted(range(len(score)), key=lambda i: -score[i])
    return [sum(wrong[i] for i in ranked[:k]) / k for k in range(1, len(score) + 1)]


def test_risk_coverage_by_hand() -> None:
    rc = S.risk_coverage(np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 1, 0, 1]))
    assert rc.coverage == [0.25, 0.5, 0.75, 1.0]
    assert rc.risk == pytest.approx([0, 1 / 2, 1 / 3, 2 / 4])
    assert rc.aurc == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    assert rc.eaurc == pytest.approx(rc.aurc - (0 + 0 + 1 / 3 + 2 / 4) / 4)
    assert rc.accuracy_at == {"90": 0.5, "95": 0.5, "99": 0.5}


def test_tied_scores_share_their_errors_whatever_the_input_order() -> None:
    rc = S.risk_coverage(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 0, 0]))
    assert rc.risk == pytest.approx([0.25] * 4) and rc.aurc == pytest.approx(0.25)
    assert S.risk_coverage(np.array([0.5] * 4), np.array([0, 0, 0, 1])).risk == rc.risk


def test_risk_coverage_agrees_with_the_definition_on_random_scores() -> None:
    rng = np.random.default_rng(7)
    score, wrong = rng.random(1000), rng.random(1000) < 0.3
    risks = brute_force_risks(score, wrong)
    rc = S.risk_coverage(score, wrong)
    assert rc.aurc == pytest.approx(np.mean(risks), rel=1e-12)
    assert len(rc.coverage) == len(rc.risk) == 101 and rc.coverage[-1] == 1.0
    assert rc.risk == pytest.approx([risks[round(c * 1000) - 1] for c in rc.coverage])
    for name, c in S.COVERAGES.items():
        assert rc.accuracy_at[name] == pytest.approx(1 - risks[math.ceil(c * 1000) - 1])
    perfect = S.risk_coverage(-wrong.astype(float) + rng.random(1000) * 0.1, wrong)
    assert perfect.eaurc == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- out-of-distribution


def brute_force_fpr95(in_s: np.ndarray, out_s: np.ndarray) -> float:
    for t in sorted(set(in_s) | set(out_s), reverse=True):
        if np.mean(out_s >= t) >= 0.95:
            return float(np.mean(in_s >= t))
    raise AssertionError("unreachable")


def brute_force_auroc(in_s: np.ndarray, out_s: np.ndarray) -> float:
    """P(OOD score > in-distribution score) + half the ties (Mann–Whitney)."""
    diff = out_s[:, None] - in_s[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def brute_force_ap(positive: np.ndarray, negative: np.ndarray) -> float:
    """Average precision: precision at each positive's threshold, averaged over positives."""
    return float(np.mean([np.mean(positive >= t) * len(positive) / ((positive >= t).sum() + (negative >= t).sum())
                          for t in positive]))


@pytest.mark.parametrize("rounding", [None, 1])  # 1 decimal: many ties
def test_detection_figures_agree_with_brute_force(rounding: int | None) -> None:
    rng = np.random.default_rng(8)
    in_s, out_s = rng.normal(0, 1, 400), rng.normal(1, 1, 300)
    if rounding is not None:
        in_s, out_s = in_s.round(rounding), out_s.round(rounding)
    d = O.detection(in_s, out_s)
    assert d.auroc == pytest.approx(brute_force_auroc(in_s, out_s), abs=1e-12)
    assert d.aupr_out == pytest.approx(brute_force_ap(out_s, in_s), abs=1e-12)
    assert d.aupr_in == pytest.approx(brute_force_ap(-in_s, -out_s), abs=1e-12)
    assert d.fpr95 == pytest.approx(brute_force_fpr95(in_s, out_s), abs=1e-12)
    assert len(d.roc) <= 101 and d.roc[0] == (0.0, 0.0) and d.roc[-1] == (1.0, 1.0)


def test_msp_enters_negated_and_energy_is_the_members_mean_free_energy() -> None:
    rng = np.random.default_rng(9)
    sure, unsure = np.full((2, 5, 3), 0.02), np.full((2, 5, 3), 1 / 3)
    sure[..., 0] = 0.96
    scores = {k: O.detection(v, O.score_values(unsure, None, ["msp"])["msp"])
              for k, v in O.score_values(sure, None, ["msp", "energy"]).items()}
    assert list(scores) == ["msp"] and scores["msp"].auroc == 1.0  # no logits: no energy
    logits = rng.normal(size=(3, 50, 4))
    energy = O.score_values(np.exp(log_softmax(logits, axis=-1)), logits, ["energy"])["energy"]
    assert energy == pytest.approx(-logsumexp(logits, axis=-1).mean(axis=0), abs=1e-12)


def test_the_larger_side_is_sampled_down_the_same_way_every_time() -> None:
    i_in, i_out = O.balanced(1000, 300)
    assert len(i_in) == len(i_out) == 300 and len(set(i_in)) == 300 and i_in.max() < 1000
    assert list(i_out) == list(range(300))
    again, _ = O.balanced(1000, 300)
    assert list(again) == list(i_in)
    i_in, i_out = O.balanced(200, 900)
    assert list(i_in) == list(range(200)) and len(set(i_out)) == 200


# --------------------------------------------------------------------------- diversity and per class


def test_diversity_agrees_with_scipy() -> None:
    rng = np.random.default_rng(10)
    probs = dirichlet(rng, 4, 300, 6)
    labels = rng.integers(0, 6, 300)
    d = U.diversity(probs, labels)
    preds = probs.argmax(axis=2)
    wrong = preds != labels
    pairs = list(combinations(range(4), 2))
    assert d["disagreement"] == pytest.approx(np.mean([(preds[i] != preds[j]).mean() for i, j in pairs]))
    mean = probs.mean(axis=0)
    assert d["kl_to_ensemble"] == pytest.approx(
        np.mean([scipy_kl(probs[m, n], mean[n]) for m in range(4) for n in range(300)]), rel=1e-9)
    assert d["error_correlation"] == pytest.approx(
        np.mean([pearsonr(wrong[i], wrong[j]).statistic for i, j in pairs]), rel=1e-9)


def test_a_member_that_is_never_wrong_has_no_error_correlation() -> None:
    labels = np.array([0, 1, 0, 1])
    perfect = np.eye(2)[labels]
    flaky = np.eye(2)[[1, 1, 0, 0]]
    other = np.eye(2)[[1, 0, 0, 0]]
    d = U.diversity(np.stack([perfect, flaky, other]), labels)
    assert d["error_correlation"] == pytest.approx(pearsonr([1, 0, 0, 1], [1, 1, 0, 1]).statistic)
    assert d["disagreement"] == pytest.approx((2 / 4 + 3 / 4 + 1 / 4) / 3)


# --------------------------------------------------------------------------- the report


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(z, axis=-1))


def full_payload(seed: int = 11, members: int = 4, n: int = 600, k: int = 5) -> dict[str, Any]:
    """What a run of today saves: test, val, OOD and shifted sets, with logits, labels and the shift sample."""
    rng = np.random.default_rng(seed)
    shared = lambda size, scale: rng.normal(size=(1, size, k)) * scale + rng.normal(size=(members, size, k))  # noqa: E731
    logits = {"test": shared(n, 3), "val": shared(400, 3), "ood:noise": shared(250, 0.5), "ood:big": shared(900, 1)}
    index = np.sort(rng.choice(n, 100, replace=False))
    for c in ("gaussian_noise", "contrast"):
        for s in (1, 2, 3):
            logits[f"shift:{c}:{s}"] = shared(100, 3 / (s + 1))
    noisy = lambda z: np.where(rng.random(z.shape[1]) < 0.8, z.mean(0).argmax(1), rng.integers(0, k, z.shape[1]))  # noqa: E731
    labels = noisy(logits["test"])
    return {
        "members": list(range(members)), "diverged": [], "dataset": "synthetic", "classes": list("abcde"),
        "labels": labels, "images": rng.random((n, 1, 4, 4)), "sets": {name: softmax(z) for name, z in logits.items()},
        "logits": logits, "val_labels": noisy(logits["val"]), "shift_labels": labels[index], "shift_index": index,
    }


def test_a_full_payload_fills_every_section() -> None:
    pred = full_payload()
    report = build_report(pred)
    test, labels = pred["sets"]["test"], pred["labels"]
    mean = test.mean(axis=0)

    cal = report.calibration
    assert cal is not None and cal.temperature == pytest.approx(C.fit_temperature(pred["logits"]["val"], pred["val_labels"]))
    assert cal.ece == report.ensemble.ece and cal.before.nll == pytest.approx(report.ensemble.nll)
    scaled = C.scaled_probs(pred["logits"]["test"], cal.temperature)
    assert cal.after.nll == pytest.approx(U.nll(scaled.mean(0), labels))
    assert sum(b.count for b in cal.reliability_after) == len(labels)
    # The verdict thresholds are those of the scaled probabilities (what predict gives); the raw ones are kept.
    want = U.verdict_thresholds(U.decompose(scaled), scaled.mean(0).argmax(1) == labels)
    assert report.thresholds is not None and report.thresholds.model_dump() == pytest.approx(want)
    raw = U.verdict_thresholds(U.decompose(test), mean.argmax(1) == labels)
    assert cal.thresholds_before is not None and cal.thresholds_before.model_dump() == pytest.approx(raw)

    sel = report.selective
    assert sel is not None and set(sel.ensemble) == set(sel.mean_member) == {"confidence", "entropy"}
    assert sel.ensemble["confidence"].aurc == pytest.approx(np.mean(brute_force_risks(mean.max(1), mean.argmax(1) != labels)))
    assert sel.ensemble["entropy"].aurc == pytest.approx(
        np.mean(brute_force_risks(-U.entropy(mean), mean.argmax(1) != labels)))
    members_aurc = [S.risk_coverage(p.max(1), p.argmax(1) != labels).aurc for p in test]
    assert sel.mean_member["confidence"].aurc == pytest.approx(np.mean(members_aurc))

    noise, big = report.ood["noise"], report.ood["big"]
    assert (noise.in_size, noise.ood_size, big.in_size, big.ood_size) == (250, 250, 600, 600)
    assert set(noise.scores) == {"msp", "entropy", "mutual_information", "energy"}
    assert noise.auroc_entropy == noise.scores["entropy"].auroc and noise.mi_hist is not None
    i_in, i_out = O.balanced(600, 250)
    msp_in, msp_out = -mean.max(1)[i_in], -pred["sets"]["ood:noise"].mean(0).max(1)[i_out]
    assert noise.scores["msp"].auroc == pytest.approx(roc_auc_score([0] * 250 + [1] * 250, np.r_[msp_in, msp_out]))
    assert noise.scores["msp"].aupr_out == pytest.approx(average_precision_score([0] * 250 + [1] * 250, np.r_[msp_in, msp_out]))

    shift = report.shift
    assert shift is not None and shift.size == 100 and shift.corruptions == ["gaussian_noise", "contrast"]
    assert shift.severities == [0, 1, 2, 3] and len(shift.ensemble) == len(shift.mean_member) == 1 + 2 * 3
    clean = shift.ensemble[0]
    assert (clean.corruption, clean.severity) == ("clean", 0)
    index = pred["shift_index"]
    assert clean.accuracy == U.accuracy(mean[index], labels[index]) and clean.ece == U.ece(mean[index], labels[index])
    point = next(p for p in shift.mean_member if (p.corruption, p.severity) == ("contrast", 2))
    member_probs = pred["sets"]["shift:contrast:2"]
    assert point.nll == pytest.approx(np.mean([U.nll(p, pred["shift_labels"]) for p in member_probs]))
    assert point.mutual_information == 0.0

    assert report.diversity is not None and report.diversity.disagreement == pytest.approx(U.diversity(test, labels)["disagreement"])
    pc = report.per_class
    assert pc is not None and [c.name for c in pc.classes] == list("abcde")
    assert [c.count for c in pc.classes] == np.bincount(labels, minlength=5).tolist()
    assert np.trace(np.array(pc.confusion)) == (mean.argmax(1) == labels).sum()

    md = to_markdown(report)
    for heading in ("## Calibration", "## Selective prediction", "## Out-of-distribution detection",
                    "## Under distribution shift", "## Diversity", "## Per class"):
        assert heading in md
    figured = report.model_copy(update={"figures": ["figures/reliability.png"]})
    assert "![reliability](figures/reliability.png)" in to_markdown(figured)


def test_a_diverged_member_stays_out_of_every_section() -> None:
    pred = full_payload()
    pred["diverged"] = [1]
    for arrays in (pred["sets"], pred["logits"]):
        for array in arrays.values():
            array[1] = np.nan
    report = build_report(pred)
    kept = {**full_payload(), "members": [0, 2, 3]}
    kept["sets"] = {k: v[[0, 2, 3]] for k, v in kept["sets"].items()}
    kept["logits"] = {k: v[[0, 2, 3]] for k, v in kept["logits"].items()}
    clean = build_report(kept)
    for section in ("calibration", "selective", "shift", "diversity", "per_class", "ood", "thresholds",
                    "ensemble_size_subsets"):
        assert getattr(report, section) == getattr(clean, section), section


# --------------------------------------------------------------------------- ensemble size


def test_the_size_curve_over_member_subsets_runs_from_the_mean_member_to_the_ensemble() -> None:
    pred = full_payload(members=5)
    report = build_report(pred)
    curve = report.ensemble_size_subsets
    assert [(p.size, p.subsets) for p in curve] == [(1, 5), (2, 10), (3, 10), (4, 5), (5, 1)]  # every subset
    one, every = curve[0], curve[-1]
    assert (one.accuracy, one.nll) == (report.mean_member.accuracy, report.mean_member.nll)
    assert (every.accuracy, every.nll) == (report.ensemble.accuracy, report.ensemble.nll)
    assert every.accuracy_sd == every.nll_sd == 0 and every.nll_min == every.nll_max == every.nll
    scores = [m.nll for m in report.members]
    assert (one.nll_min, one.nll_max, one.nll_sd) == (min(scores), max(scores), pytest.approx(np.std(scores)))
    test, labels = pred["sets"]["test"], pred["labels"]
    pairs = [(U.accuracy(test[[i, j]].mean(0), labels), U.nll(test[[i, j]].mean(0), labels))
             for i, j in combinations(range(5), 2)]
    assert (curve[1].accuracy, curve[1].nll) == pytest.approx(tuple(np.mean(pairs, axis=0)), rel=1e-12)
    md = to_markdown(report)
    assert "over random member subsets of each size" in md
    assert f"| 1 | 5 | {one.accuracy:.4f} ± {one.accuracy_sd:.4f} |" in md


def test_the_subset_curve_does_not_depend_on_member_order_where_the_first_k_curve_does() -> None:
    pred = full_payload(members=4)
    order = [3, 1, 0, 2]
    shuffled = {**pred, "sets": {k: v[order] for k, v in pred["sets"].items()},
                "logits": {k: v[order] for k, v in pred["logits"].items()}}
    before, after = build_report(pred), build_report(shuffled)
    assert before.ensemble_size_curve[0] != after.ensemble_size_curve[0]
    for a, b in zip(before.ensemble_size_subsets, after.ensemble_size_subsets, strict=True):
        assert a.model_dump() == pytest.approx(b.model_dump(), rel=1e-12)


def test_many_members_score_a_bounded_seeded_sample_of_subsets() -> None:
    rng = np.random.default_rng(4)
    probs = dirichlet(rng, 12, 80, 4)
    labels = rng.integers(0, 4, 80)
    curve = size_subsets(probs, labels)
    assert [p.subsets for p in curve] == [12, *[SIZE_SUBSETS] * 9, 12, 1]
    assert curve == size_subsets(probs, labels), "the same subsets on every re-score"
    assert curve != size_subsets(probs, labels, seed=1)
    assert curve[0].accuracy == np.mean([U.accuracy(p, labels) for p in probs])
    assert curve[-1].nll == U.nll(probs.mean(0), labels)
    assert all(p.accuracy_min <= p.accuracy <= p.accuracy_max and p.nll_min <= p.nll <= p.nll_max for p in curve)


def test_the_best_member_is_chosen_on_the_validation_split() -> None:
    pred = full_payload(members=2)
    labels, val_labels = pred["labels"], pred["val_labels"]
    good, bad = np.eye(5)[labels] * 0.9 + 0.02, np.full((len(labels), 5), 0.2)
    pred["sets"]["test"] = np.stack([bad, good])  # member 1 is best on test ...
    pred["sets"]["val"] = np.stack([np.eye(5)[val_labels] * 0.9 + 0.02, np.full((len(val_labels), 5), 0.2)])
    assert build_report(pred).best_member.member == 0  # ... but member 0 on validation, which is what counts
    del pred["sets"]["val"], pred["val_labels"]
    assert build_report(pred).best_member.member == 1


def test_an_older_payload_gets_the_sections_it_can_have() -> None:
    pred = full_payload()
    old = {k: v for k, v in pred.items() if k not in ("logits", "val_labels", "shift_labels", "shift_index")}
    old["sets"] = {k: v for k, v in pred["sets"].items() if k == "test" or k.startswith("ood:")}
    report = build_report(old)
    assert report.calibration is None and report.shift is None
    assert set(report.ood["noise"].scores) == {"msp", "entropy", "mutual_information"}  # no logits, no energy
    assert report.selective is not None and report.diversity is not None and report.per_class is not None
    assert report.thresholds is not None
    one = build_report({**old, "members": [0], "sets": {k: v[:1] for k, v in old["sets"].items()}})
    assert one.diversity is None
    assert "## Calibration" not in to_markdown(report)
    recorded = to_markdown(Report.read(RECORDED_REPORT))  # written before any of these sections existed
    assert "## Out-of-distribution detection (AUROC)" in recorded and "## Selective prediction" not in recorded


def test_a_run_is_rescored_with_the_ood_scores_its_config_names(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pred = full_payload()
    save_predictions(tmp_path / "predictions.pt", pred)
    (tmp_path / "config.toml").write_text('[report]\nood_scores = ["msp", "energy"]\n')
    assert main([str(tmp_path)]) == 0
    report = Report.read(tmp_path / "report.json")
    assert set(report.ood["noise"].scores) == {"msp", "energy"} and report.calibration is not None
    assert "## Calibration" in (tmp_path / "report.md").read_text()

    (tmp_path / "config.toml").write_text('[report]\nood_scores = ["odin"]\n')
    assert main([str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "odin" in line and "msp" in line

    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no predictions" in capsys.readouterr().err


def test_8_bit_test_images_are_stored_as_bytes_and_come_back_exactly(tmp_path: Path) -> None:
    levels = torch.randint(0, 256, (50, 1, 28, 28)).float() / 255
    mean, std = 0.1307, 0.3081
    denormalised = (levels - mean) / std * std + mean  # what rank 0 holds after training on normalised data
    stored = image_bytes(denormalised)
    assert stored.dtype == np.uint8, "an 8-bit source costs a byte per pixel, not four"
    smooth = torch.rand(5, 1, 8, 8)
    assert image_bytes(smooth).dtype == np.float32, "images between the 8-bit levels keep every value"
    path = tmp_path / "predictions.pt"
    save_predictions(path, {"images": stored, "logits": {"test": np.zeros((1, 50, 10), np.float32)}})
    np.testing.assert_array_equal(load_predictions(path)["images"], levels.numpy())
