"""A report with every section filled: the recorded run's real figures plus hand-built selective, calibration,
shift, diversity, per-class and OOD-score sections shaped like a real run's (curves that end where the
accuracy says, ensembles that beat their mean member, shift that hurts more with severity).

The figures and the dashboard's tabs are tested against it until every real run writes these sections.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from engine.report_model import (
    Calibration,
    CalibrationScores,
    ClassScores,
    Diversity,
    OodHistogram,
    OodScore,
    PerClass,
    ReliabilityBin,
    Report,
    RiskCoverage,
    Selective,
    Shift,
    ShiftPoint,
    SizeSpread,
)
from engine.run_folder import RunFolder

RECORDED_RUN = Path(__file__).parent / "tui" / "fixtures" / "recorded-run"
CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "motion_blur", "contrast",
               "brightness", "rotation", "translation", "elastic"]


def recorded_report() -> Report:
    """The recorded 4-member digits run's report: written before the new sections, so they are all None."""
    return Report.read(RunFolder(RECORDED_RUN).report_json)


def _risk_coverage(accuracy: float, sharpness: float) -> RiskCoverage:
    """A curve whose risk at full coverage is the error rate; the sharper the ranking, the lower it starts."""
    coverage = np.linspace(0.01, 1.0, 100)
    risk = (1 - accuracy) * coverage**sharpness
    aurc = float(np.sum((risk[1:] + risk[:-1]) / 2 * np.diff(coverage)))
    return RiskCoverage(
        coverage=coverage.round(4).tolist(), risk=risk.round(5).tolist(), aurc=aurc, eaurc=aurc * 0.6,
        accuracy_at={key: float(1 - (1 - accuracy) * c**sharpness) for key, c in (("90", 0.9), ("95", 0.95),
                                                                                  ("99", 0.99))},
    )


def _roc(auroc: float) -> list[tuple[float, float]]:
    """tpr = fpr ** a has area 1 / (a + 1)."""
    fpr = np.linspace(0, 1, 41)
    return [(float(f), float(f ** (1 / auroc - 1))) for f in fpr]


def _shift_points(accuracy: float, ece: float, worse: float) -> list[ShiftPoint]:
    """The clean sample (severity 0, as engine.report writes it), then every corruption at severities 1–5."""
    rng = np.random.default_rng(7)
    points = [ShiftPoint(corruption="clean", severity=0, accuracy=accuracy, nll=0.25, ece=ece, entropy=0.2,
                         mutual_information=0.02)]
    for c, name in enumerate(CORRUPTIONS):
        hardness = 0.3 + 0.7 * c / len(CORRUPTIONS)
        for s in range(1, 6):
            drop = worse * hardness * s / 5 * (1 + 0.2 * rng.standard_normal())
            points.append(ShiftPoint(
                corruption=name, severity=s, accuracy=max(0.1, accuracy - 0.5 * drop), nll=0.25 + 2 * drop,
                ece=ece + 0.3 * drop, entropy=0.2 + drop, mutual_information=0.02 + 0.2 * drop,
            ))
    return points


def _size_subsets(base: Report) -> list[SizeSpread]:
    """Size 1 the members' own spread, the full size the ensemble, sizes between closing in on it as a real run's."""
    members = [m for m in base.members if not m.diverged and m.accuracy is not None and m.nll is not None]
    k = len(members)
    curve = []
    for size in range(1, k + 1):
        t = (size - 1) / max(k - 1, 1)
        spread = {}
        for key, ens in (("accuracy", base.ensemble.accuracy), ("nll", base.ensemble.nll)):
            values = np.array([getattr(m, key) for m in members], dtype=float)
            values = values + (ens - values.mean()) * t ** 0.5 - (values - values.mean()) * t
            spread |= {key: float(values.mean()), f"{key}_sd": float(values.std()), f"{key}_min": float(values.min()),
                       f"{key}_max": float(values.max())}
        curve.append(SizeSpread(size=size, subsets=math.comb(k, size), **spread))
    return curve


def full_report(base: Report | None = None) -> Report:
    """`base` (the recorded report by default) with every optional section filled in."""
    base = base or recorded_report()
    ens, mean = base.ensemble, base.mean_member
    k = len(base.classes)
    rng = np.random.default_rng(0)
    ood = {}
    for name, result in base.ood.items():
        hist = result.entropy_hist
        mi = OodHistogram(bins=[i * 0.02 for i in range(21)], in_dist=[300, 40, 10, 5, 2, 1, 1] + [0] * 13,
                          ood=[40, 50, 60, 50, 40, 30, 25, 20, 15, 10, 8, 5, 3, 2, 1, 0, 0, 0, 0, 0])
        scores = {score: OodScore(auroc=auroc, aupr_in=auroc - 0.03, aupr_out=auroc - 0.05, fpr95=1.1 - auroc,
                                  roc=_roc(auroc))
                  for score, auroc in (("msp", result.auroc_entropy - 0.02), ("entropy", result.auroc_entropy),
                                       ("mutual_information", result.auroc_mi), ("energy", result.auroc_entropy - 0.04))}
        ood[name] = result.model_copy(update={
            "mi_hist": mi, "in_size": int(sum(hist.in_dist)), "ood_size": int(sum(hist.ood)), "scores": scores,
        })
    confusion = rng.integers(0, 3, size=(k, k))
    np.fill_diagonal(confusion, rng.integers(30, 40, size=k))
    after = [ReliabilityBin(**(b.model_dump() | {"accuracy": min(1.0, (b.confidence + b.accuracy) / 2 + 0.01)}))
             for b in ens.reliability]
    return base.model_copy(update={
        "selective": Selective(
            ensemble={"confidence": _risk_coverage(ens.accuracy, 3.0), "entropy": _risk_coverage(ens.accuracy, 2.6)},
            mean_member={"confidence": _risk_coverage(mean.accuracy, 2.4),
                         "entropy": _risk_coverage(mean.accuracy, 2.1)},
        ),
        "calibration": Calibration(
            ece=ens.ece, adaptive_ece=ens.ece * 0.9, mce=ens.ece * 4, classwise_ece=ens.ece / 3, temperature=0.81,
            before=CalibrationScores(nll=ens.nll, ece=ens.ece, brier=ens.brier),
            after=CalibrationScores(nll=ens.nll * 0.93, ece=ens.ece * 0.55, brier=ens.brier * 0.98),
            reliability_after=after,
        ),
        "shift": Shift(size=359, corruptions=CORRUPTIONS, severities=[0, 1, 2, 3, 4, 5],
                       ensemble=_shift_points(ens.accuracy, ens.ece, 0.6),
                       mean_member=_shift_points(mean.accuracy, mean.ece, 0.8)),
        "diversity": Diversity(disagreement=0.061, kl_to_ensemble=0.043, error_correlation=0.58),
        "per_class": PerClass(
            classes=[ClassScores(name=name, accuracy=float(confusion[i, i] / confusion[i].sum()),
                                 count=int(confusion[i].sum())) for i, name in enumerate(base.classes)],
            confusion=confusion.tolist(),
        ),
        "ood": ood,
        "ensemble_size_subsets": _size_subsets(base),
    })


def write_run(folder: Path, report: Report) -> Path:
    """A copy of the recorded run folder whose report.json is `report` (what `ens-tui show` opens)."""
    shutil.copytree(RECORDED_RUN, folder)
    RunFolder(folder).report_json.write_text(report.to_json(), encoding="utf-8")
    return folder
