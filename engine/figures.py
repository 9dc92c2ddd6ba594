"""The report's pictures: runs/<id>/figures/*.png, drawn with matplotlib's Agg canvas (no display, no pyplot).

Everything is drawn from the Report, so `python -m engine.figures RUN` redraws a run's figures (and its
report.html) from report.json alone; the predictions payload, where the caller has it, only lends the
uncertain-inputs grid its full-colour images. A figure whose section the report lacks (an older run, shift
off, a one-member ensemble) is not drawn, and an old copy of it is removed. Torch-free, so the rank that
writes the report and the dashboard's export both call it.

Colours mean the same in every figure: the ensemble blue, the mean member orange, in-distribution grey.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from engine.atomic import atomic_write_bytes
from engine.report_model import OodHistogram, ReliabilityBin, Report, ReportError, ShiftPoint
from engine.run_folder import RunFolder

ENSEMBLE = "#1f5aa6"
MEMBER = "#e3760b"
IN_DIST = "#8c8c8c"
OOD = "#c0392b"
SCORE_COLOURS = {"msp": "#6a3d9a", "entropy": "#1f5aa6", "mutual_information": "#c0392b", "energy": "#2e8b57"}
SCORE_NAMES = {"msp": "MSP", "mutual_information": "MI"}
DPI = 150
STYLE = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7.5, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.4, "legend.frameon": False,
    "savefig.dpi": DPI, "image.cmap": "Blues",
}

Payload = dict[str, Any] | None
Drawer = Callable[[Report, Payload], Figure | None]


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _class_name(report: Report, index: int) -> str:
    return report.classes[index] if 0 <= index < len(report.classes) else str(index)


# --------------------------------------------------------------------------- calibration


def _reliability_panel(ax: Axes, bins: list[ReliabilityBin], title: str) -> None:
    full = [b for b in bins if b.count]
    centres = [(b.bin_lower + b.bin_upper) / 2 for b in full]
    widths = [b.bin_upper - b.bin_lower for b in full]
    ax.bar(centres, [b.accuracy for b in full], width=widths, color=ENSEMBLE, alpha=0.85, edgecolor="white",
           linewidth=0.5)
    # The gap from each bin's accuracy to its mean confidence: what ECE averages.
    ax.bar(centres, [b.confidence - b.accuracy for b in full], bottom=[b.accuracy for b in full], width=widths,
           color="none", edgecolor=OOD, hatch="////", linewidth=0.5)
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title, aspect="equal")


def reliability(report: Report, payload: Payload = None) -> Figure | None:
    """Accuracy per confidence bin, before temperature scaling and (where fitted) after."""
    if not any(b.count for b in report.ensemble.reliability):
        return None
    cal = report.calibration
    after = cal is not None and any(b.count for b in cal.reliability_after)
    fig = _figure(6.4 if after else 3.6, 3.9)
    axes = fig.subplots(1, 2 if after else 1, squeeze=False)[0]
    _reliability_panel(axes[0], report.ensemble.reliability,
                       f"before temperature scaling\nECE {report.ensemble.ece:.4f}" if after else
                       f"ensemble, ECE {report.ensemble.ece:.4f}")
    if after and cal is not None:
        _reliability_panel(axes[1], cal.reliability_after, f"after, T = {cal.temperature:.2f}\nECE {cal.after.ece:.4f}")
        axes[1].set_ylabel("")
    fig.legend(handles=[Patch(color=ENSEMBLE, alpha=0.85, label="accuracy"),
                        Patch(facecolor="none", edgecolor=OOD, hatch="////", label="gap to confidence"),
                        Line2D([], [], color="black", linestyle="--", linewidth=0.8, label="perfect calibration")],
               loc="outside lower center", ncols=3)
    return fig


# --------------------------------------------------------------------------- selective prediction


def risk_coverage(report: Report, payload: Payload = None) -> Figure | None:
    """Error rate on the answered inputs as the ensemble and the mean member answer more of them."""
    sel = report.selective
    if sel is None:
        return None
    fig = _figure(6.0, 3.8)
    ax = fig.subplots()
    styles = {"confidence": "-", "entropy": "--"}
    for who, colour, curves in (("ensemble", ENSEMBLE, sel.ensemble), ("mean member", MEMBER, sel.mean_member)):
        for ranking, curve in curves.items():
            ax.plot(curve.coverage, curve.risk, color=colour, linestyle=styles.get(ranking, ":"),
                    label=f"{who} by {ranking} (AURC {curve.aurc:.4f})")
    ax.set(xlim=(0, 1), xlabel="coverage (share of inputs answered)", ylabel="risk (error rate on those)",
           title="selective prediction: risk–coverage")
    ax.set_ylim(bottom=0)
    fig.legend(loc="outside lower center", ncols=2)
    return fig


# --------------------------------------------------------------------------- ensemble size


FIRST_K = {"color": ENSEMBLE, "marker": "o", "markersize": 3.5}
FIRST_K_FAINT = {"color": IN_DIST, "linestyle": ":", "marker": ".", "markersize": 3, "linewidth": 1}
"""The first-k curve where random subsets are drawn too: shown, faint, since it depends on member order."""


def ensemble_size(report: Report, payload: Payload = None) -> Figure | None:
    """Accuracy and NLL as the ensemble grows, against the mean member: the mean over random member subsets of
    each size with their range, and the first k members (member order, faint); older reports have only the latter."""
    subsets = sorted(report.ensemble_size_subsets, key=lambda p: p.size)
    first = sorted(report.ensemble_size_curve, key=lambda p: p.size)
    if not subsets and not first:
        return None
    fig = _figure(6.4, 2.9)
    sizes = [p.size for p in subsets or first]
    for ax, key, label, scale in zip(fig.subplots(1, 2), ("accuracy", "nll"), ("accuracy (%)", "NLL"), (100, 1),
                                     strict=True):
        if subsets:
            ax.fill_between(sizes, [scale * getattr(p, f"{key}_min") for p in subsets],
                            [scale * getattr(p, f"{key}_max") for p in subsets], color=ENSEMBLE, alpha=0.18, linewidth=0)
            ax.plot(sizes, [scale * getattr(p, key) for p in subsets], color=ENSEMBLE, marker="o", markersize=3.5)
        if first:
            ax.plot([p.size for p in first], [scale * getattr(p, key) for p in first],
                    **(FIRST_K_FAINT if subsets else FIRST_K))
        ax.axhline(scale * getattr(report.mean_member, key), color=MEMBER, linestyle="--", linewidth=1)
        ax.set(xlabel="ensemble size (members)", ylabel=label, xticks=sizes)
    fig.suptitle("what each extra member buys", fontsize=9)
    handles = [Line2D([], [], color=ENSEMBLE, marker="o", markersize=3.5, label="mean over random subsets of k"),
               Patch(color=ENSEMBLE, alpha=0.18, label="their range (min–max)"),
               Line2D([], [], **FIRST_K_FAINT, label="first k members (member order)")] if subsets else [
               Line2D([], [], **FIRST_K, label="first k members (member order)")]
    fig.legend(handles=[*handles, Line2D([], [], color=MEMBER, linestyle="--", label="mean member")],
               loc="outside lower center", ncols=4 if subsets else 2)
    return fig


# --------------------------------------------------------------------------- out-of-distribution


def _shares(counts: list[float]) -> np.ndarray:
    values = np.asarray(counts, dtype=float)
    return values / values.sum() if values.sum() > 0 else values


def _hist_panel(ax: Axes, hist: OodHistogram, name: str, xlabel: str, auroc: float) -> None:
    ax.stairs(_shares(hist.in_dist), hist.bins, fill=True, color=IN_DIST, alpha=0.55)
    ax.stairs(_shares(hist.ood), hist.bins, color=OOD, linewidth=1.3)
    ax.set(xlabel=xlabel, ylabel="share of inputs", title=f"{name}: AUROC {auroc:.3f}")


def ood_histograms(report: Report, payload: Payload = None) -> Figure | None:
    """Entropy and mutual information of each OOD set against the in-distribution test inputs."""
    if not report.ood:
        return None
    has_mi = any(o.mi_hist is not None for o in report.ood.values())
    rows = len(report.ood)
    fig = _figure(6.4 if has_mi else 3.4, 0.4 + 2.0 * rows)
    axes = fig.subplots(rows, 2 if has_mi else 1, squeeze=False)
    for row, (name, result) in zip(axes, report.ood.items(), strict=True):
        _hist_panel(row[0], result.entropy_hist, name, "predictive entropy (nats)", result.auroc_entropy)
        if has_mi:
            if result.mi_hist is not None:
                _hist_panel(row[1], result.mi_hist, name, "mutual information (nats)", result.auroc_mi)
            else:
                row[1].set_axis_off()
    fig.legend(handles=[Patch(color=IN_DIST, alpha=0.55, label="in-distribution (test)"),
                        Line2D([], [], color=OOD, label="OOD set")], loc="outside lower center", ncols=2)
    return fig


def ood_roc(report: Report, payload: Payload = None) -> Figure | None:
    """ROC of each score on each OOD set (OOD is the positive class)."""
    sets = {name: o for name, o in report.ood.items() if any(s.roc for s in o.scores.values())}
    if not sets:
        return None
    cols = min(3, len(sets))
    rows = -(-len(sets) // cols)
    fig = _figure(2.3 * cols + 0.3, 3.0 * rows + 0.2)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, result) in zip(axes, sets.items(), strict=False):
        for score, value in result.scores.items():
            if value.roc:
                fpr, tpr = zip(*value.roc, strict=True)
                ax.plot(fpr, tpr, color=SCORE_COLOURS.get(score),
                        label=f"{SCORE_NAMES.get(score, score)} {value.auroc:.3f}")
        ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", title=name, xlabel="false positive rate",
               ylabel="true positive rate")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=2, title="AUROC", title_fontsize=7,
                  handlelength=1.2, columnspacing=1.0)
    for ax in axes[len(sets):]:
        ax.set_axis_off()
    return fig


# --------------------------------------------------------------------------- shift


def _by_severity(points: list[ShiftPoint], key: str) -> dict[int, list[float]]:
    grouped: dict[int, list[float]] = {}
    for p in points:
        grouped.setdefault(p.severity, []).append(getattr(p, key))
    return dict(sorted(grouped.items()))


def shift(report: Report, payload: Payload = None) -> Figure | None:
    """Accuracy and ECE per severity, a box over the corruptions, the ensemble beside the mean member."""
    sh = report.shift
    if sh is None or not sh.ensemble:
        return None
    fig = _figure(6.4, 3.1)
    for ax, key, label in zip(fig.subplots(1, 2), ("accuracy", "ece"), ("accuracy", "ECE"), strict=True):
        for offset, colour, points in ((-0.18, ENSEMBLE, sh.ensemble), (0.18, MEMBER, sh.mean_member)):
            grouped = _by_severity(points, key)
            if not grouped:
                continue
            ax.boxplot(list(grouped.values()), positions=[s + offset for s in grouped], widths=0.3,
                       patch_artist=True, manage_ticks=False, showfliers=True,
                       boxprops={"facecolor": colour, "alpha": 0.75, "edgecolor": colour},
                       medianprops={"color": "white", "linewidth": 1.2}, whiskerprops={"color": colour},
                       capprops={"color": colour},
                       flierprops={"marker": ".", "markersize": 3, "markeredgecolor": colour})
            ax.plot(list(grouped), [float(np.median(v)) for v in grouped.values()], color=colour, linewidth=0.8,
                    alpha=0.6)
        severities = sorted({p.severity for p in sh.ensemble})
        ax.set(xticks=severities, xlabel="severity (0 = clean)" if 0 in severities else "severity", ylabel=label)
    fig.suptitle(f"under shift: {len(sh.corruptions)} corruptions, {sh.size} test inputs each", fontsize=9)
    fig.legend(handles=[Patch(color=ENSEMBLE, alpha=0.75, label="ensemble"),
                        Patch(color=MEMBER, alpha=0.75, label="mean member")],
               loc="outside lower center", ncols=2)
    return fig


# --------------------------------------------------------------------------- inputs and classes


def _image(report: Report, payload: Payload, index: int, thumbnail: list[list[float]] | None) -> np.ndarray | None:
    images = payload.get("images") if payload else None
    if images is not None and 0 <= index < len(images):
        x = np.clip(np.asarray(images[index], dtype=np.float32), 0, 1)
        return x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)
    return np.asarray(thumbnail, dtype=np.float32) if thumbnail else None


def uncertain_inputs(report: Report, payload: Payload = None) -> Figure | None:
    """The test inputs the ensemble was least sure of: label → prediction (red when wrong), entropy, MI."""
    items = [(item, _image(report, payload, item.index, item.image)) for item in report.most_uncertain]
    items = [(item, image) for item, image in items if image is not None]
    if not items:
        return None
    cols = min(6, len(items))
    rows = -(-len(items) // cols)
    fig = _figure(1.1 * cols, 1.35 * rows + 0.2)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (item, image) in zip(axes, items, strict=False):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        wrong = item.label != item.prediction
        ax.set_title(f"{_class_name(report, item.label)} → {_class_name(report, item.prediction)}", fontsize=7,
                     color=OOD if wrong else "black", pad=2)
        ax.set_xlabel(f"H {item.entropy:.2f}  MI {item.mutual_information:.2f}", fontsize=6, labelpad=1)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    for ax in axes[len(items):]:
        ax.set_axis_off()
    fig.suptitle("most uncertain test inputs (label → prediction)", fontsize=8)
    return fig


def confusion(report: Report, payload: Payload = None) -> Figure | None:
    """The confusion matrix, coloured by the share of each true class, counts written in where they fit."""
    if report.per_class is None or not report.per_class.confusion:
        return None
    counts = np.asarray(report.per_class.confusion, dtype=float)
    k = len(counts)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(7.0, 2.2 + 0.3 * k)
    fig = _figure(side + 0.8, side)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:
        for i, j in np.ndindex(k, k):
            if counts[i, j]:
                ax.text(j, i, f"{counts[i, j]:.0f}", ha="center", va="center", fontsize=6 if k > 12 else 7,
                        color="white" if shares[i, j] > 0.5 else "black")
    names = [c.name for c in report.per_class.classes] or [str(i) for i in range(k)]
    ticks = list(range(0, k, max(1, k // 20)))
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90 if max(map(len, names)) > 3 else 0)
    ax.set_yticks(ticks, [names[i] for i in ticks])
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test split)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    return fig


FIGURES: dict[str, tuple[str, Drawer]] = {
    "reliability": ("Reliability diagram of the ensemble, before and after temperature scaling.", reliability),
    "risk_coverage": ("Risk–coverage: the error rate when only the surest share of inputs is answered.",
                      risk_coverage),
    "ensemble_size": ("Accuracy and NLL as the ensemble grows (mean and range over random member subsets of each "
                      "size), against the mean member.", ensemble_size),
    "ood_histograms": ("Predictive entropy and mutual information, in-distribution against each OOD set.",
                       ood_histograms),
    "ood_roc": ("ROC curves of each OOD score (OOD is the positive class).", ood_roc),
    "shift": ("Accuracy and ECE under shift: one box per severity over the corruptions.", shift),
    "uncertain_inputs": ("The test inputs the ensemble was least sure of.", uncertain_inputs),
    "confusion": ("Confusion matrix of the ensemble on the test split.", confusion),
}
"""Figure name (file figures/<name>.png) → (caption, drawer), in the order report.md and report.html show them."""


def caption(path: str) -> str:
    """The caption of a figure given its path (figures/<name>.png); the name itself for one this module lacks."""
    name = Path(path).stem
    return FIGURES[name][0] if name in FIGURES else name.replace("_", " ")


def _png(fig: Figure) -> bytes:
    """PNG of 256 colours: a third of the full-colour size, and a line plot looks no different."""
    drawn = io.BytesIO()
    fig.savefig(drawn, format="png", dpi=DPI)
    with Image.open(drawn) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True, dpi=(DPI, DPI))
    return out.getvalue()


def draw_figures(folder: RunFolder | Path, report: Report, payload: Payload = None) -> list[str]:
    """Write figures/*.png for every section the report has; return their paths relative to the run folder."""
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    folder.figures.mkdir(exist_ok=True)
    drawn: list[str] = []
    with matplotlib.rc_context(STYLE):
        for name, (_, draw) in FIGURES.items():
            path = folder.figures / f"{name}.png"
            fig = draw(report, payload)
            if fig is None:
                path.unlink(missing_ok=True)
                continue
            atomic_write_bytes(path, _png(fig))
            drawn.append(path.relative_to(folder.path).as_posix())
    return drawn


def main(argv: list[str] | None = None) -> int:
    """Redraw a run's figures and report.html from its report.json."""
    from engine.report_html import write_html

    parser = argparse.ArgumentParser(prog="python -m engine.figures", description=main.__doc__)
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    try:
        report = Report.read(folder.report_json)
    except ReportError as err:
        print(f"python -m engine.figures: {err}", file=sys.stderr)
        return 2
    figures = draw_figures(folder, report)
    html = write_html(folder, report, figures)
    print(f"wrote {len(figures)} figures to {folder.figures} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
