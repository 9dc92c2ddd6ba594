"""The uncertainty report: from saved predictions to report.json (for programs) and report.md (for people).

Re-score a finished run with `python -m engine.report runs/<run-id>`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from engine import calibration as C
from engine import ood as O
from engine import selective as S
from engine import uncertainty as U
from engine.atomic import atomic_write_bytes
from engine.config import OOD_SCORES, ConfigError, ReportConfig, load_config
from engine.predictions import load_predictions
from engine.report_model import (
    Calibration,
    CalibrationScores,
    ClassScores,
    Diversity,
    EnsembleScores,
    Histogram,
    Inputs,
    MemberScores,
    OodHistogram,
    OodResult,
    Partial,
    PerClass,
    ReliabilityBin,
    Report,
    Scores,
    Selective,
    Shift,
    ShiftPoint,
    SizePoint,
    SizeSpread,
    StoppedEarly,
    Thresholds,
    UncertainTestInput,
    Uncertainty,
)
from engine.run_folder import RunFolder
from engine.size_law import fit_size_law
from engine.usage import OneLineParser

MOST_UNCERTAIN = 12
CLEAN = "clean"
"""The shift section's name for the uncorrupted sample (severity 0)."""
SIZE_SUBSETS = 50
"""Member subsets scored per ensemble size at most: the size curve's cost stays bounded however many members."""
SIZE_SEED = 0
"""Seeds the subsets drawn where there are more than SIZE_SUBSETS, so a re-score draws the same curve."""


class NoEnsemble(ValueError):
    """Every member diverged, so there is nothing to score: the run's failure, said in one line."""


def build_report(pred: dict[str, Any], ood_scores: Sequence[str] = OOD_SCORES) -> Report:
    """Every figure of the report, computed from a predictions payload (engine.predictions).

    Sections need what the payload holds: `calibration` the validation split (`val`, `val_labels`), `shift`
    the corrupted sets (`shift:<corruption>:<severity>`, `shift_labels`), the `energy` OOD score the logits;
    payloads written before ens-tui saved them get None (or no energy) there, and the rest as always.
    """
    labels = pred["labels"].astype(np.int64)
    members: list[int] = list(pred["members"])
    diverged = set(pred.get("diverged", []))
    sets: dict[str, np.ndarray] = pred["sets"]
    keep = [k for k, m in enumerate(members) if m not in diverged]
    if not keep:
        raise NoEnsemble("every member diverged (its training loss went non-finite): there is no ensemble to score; "
                         "lower the learning rate and train again")
    test = sets["test"][keep]
    mean = U.ensemble_mean(test)
    parts = U.decompose(test)

    marks = pred.get("marks", {})
    member_rows = [
        MemberScores(member=m, diverged=True, **marks.get(m, {})) if m in diverged else
        MemberScores(member=m, **U.scores(sets["test"][k], labels), **marks.get(m, {}))
        for k, m in enumerate(members)
    ]
    scored = [r for r in member_rows if not r.diverged]
    thresholds = U.verdict_thresholds(parts, mean.argmax(axis=1) == labels)
    calibration, scaled = _calibration(pred, keep, labels, thresholds)
    if scaled is not None:  # `ens-tui predict` scales by the temperature, so its verdicts are judged scaled
        thresholds = U.verdict_thresholds(U.decompose(scaled), U.ensemble_mean(scaled).argmax(axis=1) == labels)

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
        best_member=_best_member(pred, keep, scored),
        uncertainty=Uncertainty(**{k: float(v.mean()) for k, v in parts.items()}),
        ensemble_size_curve=[SizePoint(**p) for p in U.size_curve(test, labels)],
        ensemble_size_subsets=(subsets := size_subsets(test, labels)),
        size_law=fit_size_law([p.size for p in subsets], [p.nll for p in subsets]),
        stopped_early=StoppedEarly(**pred["stopped_early"]) if pred.get("stopped_early") else None,
        in_dist_entropy_hist=Histogram(**U.histogram({"in_dist": parts["entropy"]})),
        ood=_ood(pred, keep, ood_scores),
        most_uncertain=most_uncertain,
        inputs=Inputs(**pred["inputs"]) if "inputs" in pred else None,
        thresholds=Thresholds(**thresholds),
        selective=_selective(test, labels),
        calibration=calibration,
        shift=_shift(pred, keep),
        diversity=Diversity(**U.diversity(test, labels)) if len(keep) > 1 else None,
        per_class=_per_class(mean, labels, list(pred.get("classes", []))),
    )


def _logits(pred: dict[str, Any], name: str, keep: list[int]) -> np.ndarray:
    """The kept members' logits on a set; log-probabilities where the run saved none (softmax cannot tell)."""
    saved = pred.get("logits", {}).get(name)
    if saved is not None:
        return saved[keep]
    return np.log(np.clip(pred["sets"][name][keep].astype(np.float64), U.EPS, 1.0))


def _best_member(pred: dict[str, Any], keep: list[int], scored: list[MemberScores]) -> MemberScores:
    """Lowest validation NLL where the run has a validation split (choosing on the test split flatters it)."""
    if "val" in pred["sets"] and "val_labels" in pred:
        val_labels = pred["val_labels"].astype(np.int64)
        by_val = [U.nll(pred["sets"]["val"][k], val_labels) for k in keep]
        return scored[int(np.argmin(by_val))]
    return min(scored, key=lambda r: r.nll if r.nll is not None else math.inf)


def _calibration(pred: dict[str, Any], keep: list[int], labels: np.ndarray,
                 thresholds: dict[str, float]) -> tuple[Calibration | None, np.ndarray | None]:
    """Calibration errors on the test split and temperature scaling fitted on the validation split; with the
    members' scaled test probabilities. `thresholds`: the verdict levels of the unscaled ones."""
    if "val" not in pred["sets"] or "val_labels" not in pred:
        return None, None
    temperature = C.fit_temperature(_logits(pred, "val", keep), pred["val_labels"].astype(np.int64))
    raw = U.ensemble_mean(pred["sets"]["test"][keep])
    members = C.scaled_probs(_logits(pred, "test", keep), temperature)
    scaled = U.ensemble_mean(members)
    return Calibration(
        ece=U.ece(raw, labels), adaptive_ece=C.adaptive_ece(raw, labels), mce=C.mce(raw, labels),
        classwise_ece=C.classwise_ece(raw, labels), temperature=temperature,
        before=CalibrationScores(**C.summary(raw, labels)), after=CalibrationScores(**C.summary(scaled, labels)),
        reliability_after=[ReliabilityBin(**b) for b in U.reliability(scaled, labels)],
        thresholds_before=Thresholds(**thresholds),
    ), members


def _ood(pred: dict[str, Any], keep: list[int], names: Sequence[str]) -> dict[str, OodResult]:
    """Each OOD set against an equal number of test inputs (engine.ood), by every configured score."""
    sets, logits = pred["sets"], pred.get("logits", {})
    test = sets["test"][keep]
    test_logits = logits["test"][keep] if "test" in logits else None
    wanted = tuple(dict.fromkeys(("entropy", "mutual_information", *names)))
    in_values = O.score_values(test, test_logits, wanted)
    results: dict[str, OodResult] = {}
    for name, probs in sets.items():
        if not name.startswith("ood:"):
            continue
        out_logits = logits[name][keep] if name in logits and test_logits is not None else None
        out_values = O.score_values(probs[keep], out_logits, wanted)
        i_in, i_out = O.balanced(len(test[0]), len(probs[0]))
        pick_in = {k: v[i_in] for k, v in in_values.items()}
        pick_out = {k: v[i_out] for k, v in out_values.items()}
        found = {s: O.detection(pick_in[s], pick_out[s]) for s in pick_out}
        results[name.removeprefix("ood:")] = OodResult(
            auroc_entropy=found["entropy"].auroc,
            auroc_mi=found["mutual_information"].auroc,
            mean_entropy=float(out_values["entropy"].mean()),
            mean_mutual_information=float(out_values["mutual_information"].mean()),
            entropy_hist=OodHistogram(**U.histogram({"in_dist": pick_in["entropy"], "ood": pick_out["entropy"]})),
            mi_hist=OodHistogram(**U.histogram({"in_dist": pick_in["mutual_information"],
                                                "ood": pick_out["mutual_information"]})),
            in_size=len(i_in), ood_size=len(i_out),
            scores={s: found[s] for s in names if s in found},
        )
    return results


def size_subsets(test: np.ndarray, labels: np.ndarray, seed: int = SIZE_SEED) -> list[SizeSpread]:
    """Each ensemble size scored over member subsets of that size, so no member's place in the order shows.

    Every subset where there are at most SIZE_SUBSETS (or as many as members: size 1 is then each member once),
    otherwise SIZE_SUBSETS distinct ones drawn from a generator seeded with `seed`.
    """
    m = len(test)
    rng = np.random.default_rng(seed)
    curve = []
    for k in range(1, m + 1):
        if math.comb(m, k) <= max(SIZE_SUBSETS, m):
            subsets = list(combinations(range(m), k))
        else:
            drawn: set[tuple[int, ...]] = set()
            while len(drawn) < SIZE_SUBSETS:
                drawn.add(tuple(sorted(rng.choice(m, size=k, replace=False).tolist())))
            subsets = sorted(drawn)
        means = (U.ensemble_mean(test[list(s)]) for s in subsets)
        acc, nll = np.array([(U.accuracy(p, labels), U.nll(p, labels)) for p in means]).T
        curve.append(SizeSpread(
            size=k, subsets=len(subsets),
            accuracy=float(np.mean(acc)), accuracy_sd=float(np.std(acc)),
            accuracy_min=float(acc.min()), accuracy_max=float(acc.max()),
            nll=float(np.mean(nll)), nll_sd=float(np.std(nll)), nll_min=float(nll.min()), nll_max=float(nll.max()),
        ))
    return curve


def _selective(test: np.ndarray, labels: np.ndarray) -> Selective:
    """Risk–coverage of the ensemble, and of each member by its own confidence, averaged."""
    mean = U.ensemble_mean(test)
    wrong = mean.argmax(axis=1) != labels
    ensemble = {k: S.risk_coverage(v, wrong) for k, v in S.rankings(mean).items()}
    per_member = [{k: S.risk_coverage(v, p.argmax(axis=1) != labels) for k, v in S.rankings(p).items()} for p in test]
    return Selective(ensemble=ensemble, mean_member={k: S.average([m[k] for m in per_member]) for k in ensemble})


def _shift_points(corruption: str, severity: int, probs: np.ndarray, labels: np.ndarray) -> tuple[ShiftPoint, ShiftPoint]:
    """The ensemble's point and the mean member's on one shifted set."""
    mean = U.ensemble_mean(probs)
    parts = U.decompose(probs)
    ensemble = ShiftPoint(corruption=corruption, severity=severity, accuracy=U.accuracy(mean, labels),
                          nll=U.nll(mean, labels), ece=U.ece(mean, labels), entropy=float(parts["entropy"].mean()),
                          mutual_information=float(parts["mutual_information"].mean()))
    each = U.member_figures(probs, labels)
    member = ShiftPoint(corruption=corruption, severity=severity, mutual_information=0.0,
                        **{k: float(v.mean()) for k, v in each.items()})
    return ensemble, member


def _shift(pred: dict[str, Any], keep: list[int]) -> Shift | None:
    """Every `shift:<corruption>:<severity>` set, after the clean sample they were made from (severity 0)."""
    sets = pred["sets"]
    names = [n for n in sets if n.startswith("shift:")]
    if not names or "shift_labels" not in pred:
        return None
    shift_labels = pred["shift_labels"].astype(np.int64)
    index = pred.get("shift_index")
    clean = sets["test"][keep] if index is None else sets["test"][keep][:, np.asarray(index, dtype=np.int64)]
    clean_labels = pred["labels"].astype(np.int64)
    clean_labels = clean_labels if index is None else clean_labels[np.asarray(index, dtype=np.int64)]
    points = [_shift_points(CLEAN, 0, clean, clean_labels)]
    corruptions: list[str] = []
    severities = {0}
    for name in names:
        corruption, severity = name.removeprefix("shift:").rsplit(":", 1)
        corruptions += [corruption] if corruption not in corruptions else []
        severities.add(int(severity))
        points.append(_shift_points(corruption, int(severity), sets[name][keep], shift_labels))
    return Shift(size=len(shift_labels), corruptions=corruptions, severities=sorted(severities),
                 ensemble=[e for e, _ in points], mean_member=[m for _, m in points])


def _per_class(mean: np.ndarray, labels: np.ndarray, names: list[str]) -> PerClass:
    from sklearn.metrics import confusion_matrix

    k = mean.shape[1]
    names = names if len(names) == k else [str(i) for i in range(k)]
    confusion = confusion_matrix(labels, mean.argmax(axis=1), labels=np.arange(k))
    count = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.diag(confusion) / count
    return PerClass(classes=[ClassScores(name=n, accuracy=float(a), count=int(c))
                             for n, a, c in zip(names, accuracy, count, strict=True)],
                    confusion=confusion.tolist())


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
    if report.partial is not None:
        lines += [f"> **Partial:** {report.partial.members} of {report.partial.of} members, those that had finished "
                  "training when it was written; not the run's own report.", ""]
    if report.diverged:
        lines += [f"> **Warning:** members {report.diverged} diverged and are left out of the ensemble.", ""]
    if (stop := report.stopped_early) is not None:
        lines += [f"> **Stopped early:** {stop.members} members were trained; {stop.reason}.", ""]
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
    lines += _calibration_md(report) + _selective_md(report)
    lines += _size_md(report)
    lines += _ood_md(report) + _shift_md(report) + _diversity_md(report) + _per_class_md(report)
    lines += ["", "## Members", "", "| member | accuracy | NLL | Brier | ECE |", "|---|---|---|---|---|"]
    for r in report.members:
        flag = "".join([" (diverged)" * r.diverged, " (stopped by the user)" * r.stopped,
                        f" (restarted at {r.lr_factor:g} × lr)" if r.lr_factor else ""])
        lines.append(f"| {r.member}{flag} | {_f(r.accuracy)} | {_f(r.nll)} | {_f(r.brier)} | {_f(r.ece)} |")
    lines += ["", "## Reliability (15 bins)", "", "| confidence bin | count | confidence | accuracy |", "|---|---|---|---|"]
    lines += [f"| {b.bin_lower:.2f}–{b.bin_upper:.2f} | {b.count} | {_f(b.confidence, 3)} | "
              f"{_f(b.accuracy, 3)} |" for b in ens.reliability if b.count]
    classes = report.classes or [str(i) for i in range(10)]
    lines += ["", "## Most uncertain test inputs", "", "| test index | label | prediction | entropy |", "|---|---|---|---|"]
    lines += [f"| {r.index} | {classes[r.label]} | {classes[r.prediction]} | {_f(r.entropy, 3)} |"
              for r in report.most_uncertain]
    lines += figures_md(report)
    return "\n".join(lines) + "\n"


def _calibration_md(report: Report) -> list[str]:
    c = report.calibration
    if c is None:
        return []
    return ["## Calibration", "",
            f"ECE {_f(c.ece)} (15 equal-width bins), adaptive ECE {_f(c.adaptive_ece)} (15 equal-mass bins), "
            f"MCE {_f(c.mce)}, classwise ECE {_f(c.classwise_ece)}.", "",
            f"Temperature scaling, fitted on the validation split: T = {_f(c.temperature, 3)}. On the test split:", "",
            "| | NLL | ECE | Brier |", "|---|---|---|---|",
            f"| before | {_f(c.before.nll)} | {_f(c.before.ece)} | {_f(c.before.brier)} |",
            f"| after | {_f(c.after.nll)} | {_f(c.after.ece)} | {_f(c.after.brier)} |", ""]


def _selective_md(report: Report) -> list[str]:
    s = report.selective
    if s is None:
        return []
    lines = ["## Selective prediction", "", "Answer only the inputs ranked surest; accuracy on those answered.", "",
             "| | ranked by | AURC | E-AURC | acc. @ 90 % | acc. @ 95 % | acc. @ 99 % |", "|---|---|---|---|---|---|---|"]
    for who, curves in (("ensemble", s.ensemble), ("mean member", s.mean_member)):
        for ranking, rc in curves.items():
            at = rc.accuracy_at
            lines.append(f"| {who} | {ranking} | {_f(rc.aurc)} | {_f(rc.eaurc)} | {_f(at.get('90'))} | "
                         f"{_f(at.get('95'))} | {_f(at.get('99'))} |")
    return [*lines, ""]


def _size_md(report: Report) -> list[str]:
    """Random subsets of each size where the report has them; the first k members (member order) beside them."""
    first = {p.size: p for p in report.ensemble_size_curve}
    if not report.ensemble_size_subsets:
        return ["## Ensemble size", "", "Ensembles of the first k members, in member order.", "",
                "| members | accuracy | NLL |", "|---|---|---|",
                *(f"| {p.size} | {_f(p.accuracy)} | {_f(p.nll)} |" for p in report.ensemble_size_curve)]
    lines = ["## Ensemble size", "",
             f"Mean ± standard deviation over random member subsets of each size (every subset where there are at "
             f"most {SIZE_SUBSETS}), then the ensemble of the first k members in member order.", "",
             "| members | subsets | accuracy | NLL | accuracy, first k | NLL, first k |", "|---|---|---|---|---|---|"]
    for p in report.ensemble_size_subsets:
        k = first.get(p.size)
        lines.append(f"| {p.size} | {p.subsets} | {_f(p.accuracy)} ± {_f(p.accuracy_sd)} | {_f(p.nll)} ± "
                     f"{_f(p.nll_sd)} | {_f(k.accuracy if k else None)} | {_f(k.nll if k else None)} |")
    return lines + _size_law_md(report)


def _size_law_md(report: Report) -> list[str]:
    law = report.size_law
    if law is None:
        return []
    projected = ", ".join(f"{p.size} members {_f(p.nll)}" for p in law.projected)
    return ["", f"**The value of more members.** NLL(k) ≈ {_f(law.a)} + {_f(law.b)}/k fitted to sizes 1–{law.sizes} "
            f"(test split): the next member would lower the NLL by about {_f(law.next_gain)}; {law.gain_95} members "
            f"reach 95 % of the gain averaging can give; projected NLL: {projected}."]


def _ood_md(report: Report) -> list[str]:
    if not report.ood:
        return []
    if not any(o.scores for o in report.ood.values()):  # a report written before the scores existed
        return ["", "## Out-of-distribution detection (AUROC)", "", "| set | by entropy | by mutual information |",
                "|---|---|---|", *(f"| {n} | {_f(o.auroc_entropy, 3)} | {_f(o.auroc_mi, 3)} |"
                                   for n, o in report.ood.items())]
    lines = ["", "## Out-of-distribution detection", "",
             "Each set against as many test inputs (the larger side sampled down); OOD is the positive class.", "",
             "| set | inputs (test + OOD) | score | AUROC | AUPR-in | AUPR-out | FPR @ 95 % TPR |",
             "|---|---|---|---|---|---|---|"]
    for name, o in report.ood.items():
        for score, r in o.scores.items():
            lines.append(f"| {name} | {o.in_size} + {o.ood_size} | {score} | {_f(r.auroc, 3)} | {_f(r.aupr_in, 3)} | "
                         f"{_f(r.aupr_out, 3)} | {_f(r.fpr95, 3)} |")
    return lines


def _shift_md(report: Report) -> list[str]:
    s = report.shift
    if s is None:
        return []
    lines = ["", "## Under distribution shift", "",
             f"{s.size} test inputs under {len(s.corruptions)} corruptions; each severity's mean over the corruptions "
             "(0: uncorrupted).", "",
             "| severity | accuracy (ens. / member) | NLL (ens. / member) | ECE (ens. / member) | mutual information |",
             "|---|---|---|---|---|"]
    for severity in s.severities:
        ens = [p for p in s.ensemble if p.severity == severity]
        mem = [p for p in s.mean_member if p.severity == severity]
        avg = lambda points, key: float(np.mean([getattr(p, key) for p in points]))  # noqa: E731
        lines.append(f"| {severity} | {_f(avg(ens, 'accuracy'))} / {_f(avg(mem, 'accuracy'))} | "
                     f"{_f(avg(ens, 'nll'))} / {_f(avg(mem, 'nll'))} | {_f(avg(ens, 'ece'))} / {_f(avg(mem, 'ece'))} | "
                     f"{_f(avg(ens, 'mutual_information'))} |")
    return lines


def _diversity_md(report: Report) -> list[str]:
    d = report.diversity
    if d is None:
        return []
    return ["", "## Diversity", "", f"- members disagree on {_f(d.disagreement)} of the test inputs (mean over pairs)",
            f"- mean KL(member ‖ ensemble): {_f(d.kl_to_ensemble)} nats",
            f"- correlation of two members' errors: {_f(d.error_correlation)}"]


MAX_CONFUSION = 20
"""Classes up to which report.md prints the confusion matrix (report.json always has it)."""


def _per_class_md(report: Report) -> list[str]:
    pc = report.per_class
    if pc is None:
        return []
    lines = ["", "## Per class", "", "| class | test inputs | accuracy |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.count} | {_f(c.accuracy)} |" for c in pc.classes]
    if len(pc.classes) <= MAX_CONFUSION:
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", "",
                  "| | " + " | ".join(c.name for c in pc.classes) + " |", "|---" * (len(pc.classes) + 1) + "|"]
        lines += [f"| {c.name} | " + " | ".join(map(str, row)) + " |" for c, row in zip(pc.classes, pc.confusion, strict=True)]
    return lines


def figures_md(report: Report) -> list[str]:
    """The report's pictures (report.figures, relative to the run folder) as markdown images."""
    if not report.figures:
        return []
    return ["", "## Figures", "", *(f"![{Path(f).stem.replace('-', ' ').replace('_', ' ')}]({f})" for f in report.figures)]


def write_report(run_dir: Path, report: Report, title: str) -> tuple[Path, Path]:
    """report.json and report.md, each written atomically."""
    folder = RunFolder(run_dir)
    atomic_write_bytes(folder.report_json, report.to_json().encode())
    atomic_write_bytes(folder.report_md, to_markdown(report, title).encode())
    return folder.report_json, folder.report_md


def publish(folder: RunFolder, payload: dict[str, Any], settings: ReportConfig, *, title: str | None = None,
            partial: Partial | None = None) -> Report:
    """Score a predictions payload and write everything the report is: report.json, report.md, figures, report.html.

    `partial`: the payload holds only the members trained so far (engine.partial); the report says so.
    """
    report = build_report(payload, settings.ood_scores)
    if partial is not None:
        report = report.model_copy(update={"partial": partial})
    title = title or f"Uncertainty report — {folder.name}"
    if settings.figures:
        from engine.figures import draw_figures
        from engine.report_html import write_html

        report = report.model_copy(update={"figures": draw_figures(folder, report, payload)})
        write_report(folder.path, report, title)
        write_html(folder, report, title=title)
    else:
        write_report(folder.path, report, title)
    return report


def main(argv: list[str] | None = None) -> int:
    """Re-score a run folder from its predictions.pt, with the OOD scores its config names."""
    parser = OneLineParser(prog="python -m engine.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN")
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    if not folder.predictions.exists():
        print(f"{folder.predictions}: no predictions; is {args.run_dir} a finished run?", file=sys.stderr)
        return 2
    settings = ReportConfig()
    if folder.config.is_file():
        try:
            settings = load_config(folder.config).report
        except ConfigError as err:
            print(str(err).splitlines()[0], file=sys.stderr)
            return 2
    try:
        report = publish(folder, load_predictions(folder.predictions), settings)
    except ValueError as err:
        print(f"{folder.path}: {err}", file=sys.stderr)
        return 2
    extra = f", report.html and {len(report.figures)} figures" if report.figures else ""
    print(f"wrote {folder.report_json} and {folder.report_md.name}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
