"""The report's math, checked against cases a person can work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import uncertainty as U
from engine.report import build_report, to_markdown


def test_uniform_prediction_has_entropy_log_k() -> None:
    probs = np.full((3, 5, 10), 0.1)
    parts = U.decompose(probs)
    assert parts["entropy"] == pytest.approx(np.full(5, math.log(10)))
    assert parts["aleatoric"] == pytest.approx(np.full(5, math.log(10)))


def test_members_that_agree_have_zero_mutual_information() -> None:
    rng = np.random.default_rng(0)
    one = rng.dirichlet(np.ones(4), size=20)
    parts = U.decompose(np.stack([one, one, one]))
    assert parts["mutual_information"] == pytest.approx(np.zeros(20), abs=1e-9)


def test_confident_members_that_disagree_are_all_epistemic() -> None:
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    parts = U.decompose(np.stack([a, b]))
    assert parts["aleatoric"][0] == pytest.approx(0.0, abs=1e-9)
    assert parts["mutual_information"][0] == pytest.approx(math.log(2))


def test_ensemble_nll_is_at_most_the_mean_member_nll() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10) * 0.5, size=(5, 200))
    labels = rng.integers(0, 10, 200)
    ensemble = U.nll(U.ensemble_mean(probs), labels)
    members = np.mean([U.nll(p, labels) for p in probs])
    assert ensemble <= members + 1e-12


def test_brier_and_ece_by_hand() -> None:
    p = np.array([[0.8, 0.2], [0.6, 0.4]])
    labels = np.array([0, 1])
    assert U.brier(p, labels) == pytest.approx(((0.2**2 + 0.2**2) + (0.6**2 + 0.6**2)) / 2)
    # Confidences 0.8 (right) and 0.6 (wrong) fall in different 15ths: |1-0.8|/2 + |0-0.6|/2.
    assert U.ece(p, labels) == pytest.approx(0.1 + 0.3)
    table = U.reliability(p, labels)
    assert len(table) == 15 and sum(r["count"] for r in table) == 2


def test_ood_auroc_uses_higher_score_as_ood() -> None:
    assert U.ood_auroc(np.array([0.1, 0.2]), np.array([0.8, 0.9])) == 1.0
    assert U.ood_auroc(np.array([0.8, 0.9]), np.array([0.1, 0.2])) == 0.0


def test_size_curve_starts_at_the_first_member() -> None:
    probs = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])
    curve = U.size_curve(probs, np.array([0]))
    assert [c["size"] for c in curve] == [1, 2]
    assert curve[0]["accuracy"] == 1.0 and curve[1]["nll"] == pytest.approx(math.log(2))


def test_report_leaves_diverged_members_out_and_says_so() -> None:
    rng = np.random.default_rng(2)
    good = rng.dirichlet(np.ones(3), size=(2, 30))
    nan = np.full((1, 30, 3), np.nan)
    payload = {
        "members": [0, 1, 2], "diverged": [2], "dataset": "digits", "classes": ["a", "b", "c"],
        "labels": rng.integers(0, 3, 30), "images": rng.random((30, 1, 8, 8)),
        "sets": {"test": np.concatenate([good, nan]), "ood:noise": np.concatenate([good[:, :10], nan[:, :10]])},
    }
    report = build_report(payload)
    assert report.diverged == [2]
    assert report.members[2].diverged and report.members[2].nll is None
    assert math.isfinite(report.ensemble.nll)
    assert report.ensemble.nll == pytest.approx(U.nll(good.mean(0), payload["labels"]))
    assert report.best_member.member in (0, 1)
    assert report.mean_member.nll == pytest.approx((report.members[0].nll + report.members[1].nll) / 2)
    assert len(report.ensemble_size_curve) == 2
    assert 0.0 <= report.ood["noise"].auroc_mi <= 1.0
    image = report.most_uncertain[0].image
    assert image is not None and len(image) == 8
    assert "diverged and are left out" in to_markdown(report)
