"""The uncertainty report: from saved predictions to report.json (for programs) and report.md (for people).

Re-score a finished run with `python -m engine.report runs/<run-id>`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from engine import uncertainty as U
from engine.atomic import atomic_write_bytes
from engine.predictions import load_predictions
from engine.report_model import (
    EnsembleScores,
    Histogram,
    Inputs,
    MemberScores,
    OodHistogram,
    OodResult,
    ReliabilityBin,
    Report,
    Scores,
    SizePoint,
    Thresholds,
    UncertainTestInput,
    Uncertainty,
)
from engine.run_folder import RunFolder

MOST_UNCERTAIN = 12


def build_report(pred: dict[str, Any]) -> Report:
    """Every figure of the report, computed from a predictions payload."""
    labels = pred["labels"].astype(np.int64)
    members: list[int] = list(pred["members"])
    diverged = set(pred.get("diverged", []))
    sets: dict[str, np.ndarray] = pred["sets"]
    keep = [k for k, m in enumerate(members) if m not in diverged]
    if not keep:
        raise ValueError("every member diverged: there is no ensemble to score")
    test = sets["test"][keep]
    mean = U.ensemble_mean(test)
    parts = U.decompose(test)

    member_rows = [
        MemberScores(member=m, diverged=True) if m in diverged else
        MemberScores(member=m, **U.scores(sets["test"][k], labels))
        for k, m in enumerate(members)
    ]
    scored = [r for r in member_rows if not r.diverged]

    ood: dict[str, OodResult] = {}
    for name, probs in sets.items():
        if not name.startswith("ood:"):
            continue
        out = U.decompose(probs[keep])
        ood[name.removeprefix("ood:")] = OodResult(
            auroc_entropy=U.ood_auroc(parts["entropy"], out["entropy"]),
            auroc_mi=U.ood_auroc(parts["mutual_information"], out["mutual_information"]),
            mean_entropy=float(out["entropy"].mean()),
            mean_mutual_information=float(out["mutual_information"].mean()),
            entropy_hist=OodHistogram(**U.histogram({"in_dist": parts["entropy"], "ood": out["entropy"]})),
        )

    order = np.argsort(-parts["entropy"], kind="stable")[:MOST_UNCERTAIN]
    images = pred.get("images")
    most_uncertain = [
        UncertainTestInput(
            index=int(i), label=int(labels[i]), prediction=int(mean[i].argmax()),
            entropy=float(parts["entropy"][i]), mutual_information=float(parts["mutual_information"][i]),
            image=thumbnail(images[i]) if images is not None else None,
        )
        for i in order
    ]
    return Report(
        dataset=pred.get("dataset", ""),
        classes=list(pred.get("classes", [])),
        members_count=len(members),
        diverged=sorted(diverged),
        test_size=int(len(labels)),
        ensemble=EnsembleScores(
            **U.scores(mean, labels), reliability=[ReliabilityBin(**b) for b in U.reliability(mean, labels)]
        ),
        members=member_rows,
        mean_member=Scores(**{k: float(np.mean([getattr(r, k) for r in scored])) for k in Scores.model_fields}),
        best_member=min(scored, key=lambda r: r.nll if r.nll is not None else math.inf),
        uncertainty=Uncertainty(**{k: float(v.mean()) for k, v in parts.items()}),
        ensemble_size_curve=[SizePoint(**p) for p in U.size_curve(test, labels)],
        in_dist_entropy_hist=Histogram(**U.histogram({"in_dist": parts["entropy"]})),
        ood=ood,
        most_uncertain=most_uncertain,
        inputs=Inputs(**pred["inputs"]) if "inputs" in pred else None,
        thresholds=Thresholds(**U.verdict_thresholds(parts, mean.argmax(axis=1) == labels)),
    )


def thumbnail(image: np.ndarray) -> list[list[float]]:
    """The channels' mean stretched to [0, 1], rounded: small enough for JSON, enough for half-blocks."""
    x = np.asarray(image, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 3 else x
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.round(x, 2).tolist()


# --------------------------------------------------------------------------- markdown


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def to_markdown(report: Report, title: str = "Uncertainty report") -> str:
    """report.md: the same figures as report.json, laid out for people."""
    ens, mean, best = report.ensemble, report.mean_member, report.best_member
    lines = [f"# {title}", "", f"{report.members_count} members on `{report.dataset}`, "
             f"{report.test_size} test inputs.", ""]
    if report.diverged:
        lines += [f"> **Warning:** members {report.diverged} diverged and are left out of the ensemble.", ""]
    lines += ["## Ensemble vs members", "", "| | accuracy | NLL | Brier | ECE |", "|---|---|---|---|---|"]
    rows: tuple[tuple[str, Scores | MemberScores], ...] = (
        ("ensemble", ens), ("mean member", mean), (f"best member (#{best.member})", best),
    )
    for label, row in rows:
        lines.append(f"| {label} | {_f(row.accuracy)} | {_f(row.nll)} | {_f(row.brier)} | {_f(row.ece)} |")
    u = report.uncertainty
    lines += ["", "## Uncertainty (mean over the test set, nats)", "",
              f"- total predictive entropy: {_f(u.entropy)}",
              f"- aleatoric (expected member entropy): {_f(u.aleatoric)}",
              f"- epistemic (mutual information): {_f(u.mutual_information)}", ""]
    lines += ["## Ensemble size", "", "| members | accuracy | NLL |", "|---|---|---|"]
    lines += [f"| {p.size} | {_f(p.accuracy)} | {_f(p.nll)} |" for p in report.ensemble_size_curve]
    if report.ood:
        lines += ["", "## Out-of-distribution detection (AUROC)", "", "| set | by entropy | by mutual information |",
                  "|---|---|---|"]
        lines += [f"| {n} | {_f(o.auroc_entropy, 3)} | {_f(o.auroc_mi, 3)} |" for n, o in report.ood.items()]
    lines += ["", "## Members", "", "| member | accuracy | NLL | Brier | ECE |", "|---|---|---|---|---|"]
    for r in report.members:
        flag = " (diverged)" if r.diverged else ""
        lines.append(f"| {r.member}{flag} | {_f(r.accuracy)} | {_f(r.nll)} | {_f(r.brier)} | {_f(r.ece)} |")
    lines += ["", "## Reliability (15 bins)", "", "| confidence bin | count | confidence | accuracy |", "|---|---|---|---|"]
    lines += [f"| {b.bin_lower:.2f}–{b.bin_upper:.2f} | {b.count} | {_f(b.confidence, 3)} | "
              f"{_f(b.accuracy, 3)} |" for b in ens.reliability if b.count]
    classes = report.classes or [str(i) for i in range(10)]
    lines += ["", "## Most uncertain test inputs", "", "| test index | label | prediction | entropy |", "|---|---|---|---|"]
    lines += [f"| {r.index} | {classes[r.label]} | {classes[r.prediction]} | {_f(r.entropy, 3)} |"
              for r in report.most_uncertain]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, report: Report, title: str) -> tuple[Path, Path]:
    """report.json and report.md, each written atomically."""
    folder = RunFolder(run_dir)
    atomic_write_bytes(folder.report_json, report.to_json().encode())
    atomic_write_bytes(folder.report_md, to_markdown(report, title).encode())
    return folder.report_json, folder.report_md


def main(argv: list[str] | None = None) -> int:
    """Re-score a run folder from its predictions.pt."""
    parser = argparse.ArgumentParser(prog="python -m engine.report", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    if not folder.predictions.exists():
        print(f"{folder.predictions}: no predictions; is {args.run_dir} a finished run?", file=sys.stderr)
        return 2
    report = build_report(load_predictions(folder.predictions))
    json_path, md_path = write_report(folder.path, report, f"Uncertainty report — {folder.name}")
    print(f"wrote {json_path} and {md_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
