"""report.html: the whole report as one page a person can mail or open in a browser.

Self-contained on purpose: the figures are inlined as base64 PNG and the style sheet is in the page, so it
references nothing outside itself (no scripts, fonts or links). Every section the report has is shown with
its figure; sections an older run lacks are simply absent. Torch-free, like engine.figures.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from html import escape
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.figures import caption
from engine.report_model import Report, ShiftPoint
from engine.run_folder import RunFolder

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #e6e6e6; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #bbb; font-weight: 600; }
td.best { font-weight: 700; color: #1a7f37; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; }
.warning { background: #fff4e5; border-left: 4px solid #e3760b; padding: .5rem .8rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
footer { margin-top: 3rem; color: #888; font-size: .85rem; }
"""


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2%}"


class Best(str):
    """A table cell shown as the better of a comparison."""


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """An HTML table; every cell is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = ["<tr>" + "".join(f'<td class="best">{escape(c)}</td>' if isinstance(c, Best) else f"<td>{escape(c)}</td>"
                             for c in row) + "</tr>" for row in rows]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Figures:
    """The drawn figures by name; each is inlined once, where its section is."""

    def __init__(self, folder: RunFolder, paths: list[str]) -> None:
        self._folder = folder
        self._paths = {Path(p).stem: p for p in paths}

    def __call__(self, name: str) -> str:
        path = self._paths.pop(name, None)
        return self._inline(path) if path else ""

    def rest(self) -> str:
        """Figures no section asked for (drawn by a newer ens-tui, say)."""
        return "".join(self._inline(p) for p in list(self._paths.values()))

    def _inline(self, path: str) -> str:
        try:
            data = (self._folder.path / path).read_bytes()
        except OSError:
            return ""
        text = escape(caption(path))
        return (f'<figure><img src="data:image/png;base64,{base64.b64encode(data).decode()}" alt="{text}">'
                f"<figcaption>{text}</figcaption></figure>")


def _summary(report: Report) -> str:
    rows = [(f"ensemble of {report.members_count}", report.ensemble), ("mean member", report.mean_member),
            (f"best member (#{report.best_member.member})", report.best_member)]
    columns = (("accuracy", _pct, max), ("nll", _f, min), ("brier", _f, min), ("ece", _f, min))
    best = {key: pick(getattr(r, key) for _, r in rows if getattr(r, key) is not None) for key, _, pick in columns}
    table = _table(["", "accuracy", "NLL", "Brier", "ECE"], [
        [name, *[Best(fmt(getattr(r, key))) if getattr(r, key) == best[key] else fmt(getattr(r, key))
                 for key, fmt, _ in columns]]
        for name, r in rows
    ])
    u = report.uncertainty
    return (table + "<dl>" f"<dt>total predictive entropy</dt><dd>{_f(u.entropy)} nats</dd>"
            f"<dt>aleatoric (expected member entropy)</dt><dd>{_f(u.aleatoric)} nats</dd>"
            f"<dt>epistemic (mutual information)</dt><dd>{_f(u.mutual_information)} nats</dd></dl>")


def _size(report: Report) -> str:
    """The size curve's numbers under its figure: random subsets of each size where the report has them."""
    first = {p.size: p for p in report.ensemble_size_curve}
    if not report.ensemble_size_subsets:
        return ("<p>Ensembles of the first k members, in member order.</p>" +
                _table(["members", "accuracy", "NLL"], [[str(p.size), _pct(p.accuracy), _f(p.nll)]
                                                        for p in report.ensemble_size_curve])) if first else ""
    rows = []
    for p in report.ensemble_size_subsets:
        k = first.get(p.size)
        rows.append([str(p.size), str(p.subsets), f"{_pct(p.accuracy)} ± {_pct(p.accuracy_sd)}",
                     f"{_pct(p.accuracy_min)} – {_pct(p.accuracy_max)}", f"{_f(p.nll)} ± {_f(p.nll_sd)}",
                     f"{_f(p.nll_min)} – {_f(p.nll_max)}", _pct(k.accuracy if k else None), _f(k.nll if k else None)])
    return ("<p>Ensemble size: the mean over random member subsets of each size (every subset where there are few "
            "enough), so no member's place in the order shows; the first k members, in member order, beside it.</p>" +
            _table(["members", "subsets", "accuracy", "range", "NLL", "range", "accuracy, first k", "NLL, first k"],
                   rows))


def _calibration(report: Report) -> str:
    cal = report.calibration
    if cal is None:
        return f"<p>ECE (15 equal-width bins): {_f(report.ensemble.ece)}. Temperature scaling is not in this run.</p>"
    metrics = _table(["measure", "value"], [
        ["ECE (15 equal-width bins)", _f(cal.ece)], ["adaptive ECE (15 equal-mass bins)", _f(cal.adaptive_ece)],
        ["MCE (largest bin gap)", _f(cal.mce)], ["classwise ECE", _f(cal.classwise_ece)],
        ["temperature (fitted on the validation split)", _f(cal.temperature, 3)],
    ])
    scaled = _table(["test split", "NLL", "ECE", "Brier"], [
        ["before temperature scaling", _f(cal.before.nll), _f(cal.before.ece), _f(cal.before.brier)],
        ["after", _f(cal.after.nll), _f(cal.after.ece), _f(cal.after.brier)],
    ])
    return metrics + scaled


def _percent(key: str) -> float:
    """An `accuracy_at` key (a percentage: "90") as a number to sort by; anything else sorts last."""
    try:
        return float(key)
    except ValueError:
        return math.inf


def _selective(report: Report) -> str:
    sel = report.selective
    if sel is None:
        return ""
    keys = sorted({k for c in (*sel.ensemble.values(), *sel.mean_member.values()) for k in c.accuracy_at},
                  key=_percent)
    labels = [f"accuracy at {k} % coverage" for k in keys]
    rows = []
    for ranking in sel.ensemble:
        for who, curves in (("ensemble", sel.ensemble), ("mean member", sel.mean_member)):
            curve = curves.get(ranking)
            if curve is not None:
                rows.append([f"{who}, by {ranking}", _f(curve.aurc), _f(curve.eaurc),
                             *[_pct(curve.accuracy_at.get(k)) for k in keys]])
    return _table(["", "AURC", "E-AURC", *labels], rows)


def _ood(report: Report) -> str:
    if not report.ood:
        return ""
    out = _table(["set", "AUROC by entropy", "AUROC by MI", "mean entropy", "mean MI", "in / OOD inputs"], [
        [name, _f(o.auroc_entropy, 3), _f(o.auroc_mi, 3), _f(o.mean_entropy), _f(o.mean_mutual_information),
         f"{o.in_size} / {o.ood_size}" if o.ood_size else "—"]
        for name, o in report.ood.items()
    ])
    rows = [[name, score, _f(s.auroc, 3), _f(s.aupr_in, 3), _f(s.aupr_out, 3), _f(s.fpr95, 3)]
            for name, o in report.ood.items() for score, s in o.scores.items()]
    if rows:
        out += _table(["set", "score", "AUROC", "AUPR-in", "AUPR-out", "FPR@95%TPR"], rows)
    return out


def _mean(points: list[ShiftPoint], key: str) -> float:
    return sum(getattr(p, key) for p in points) / len(points) if points else math.nan


def _shift(report: Report) -> str:
    sh = report.shift
    if sh is None:
        return ""

    def pairs(select: str, value: object) -> list[str]:
        ens = [p for p in sh.ensemble if getattr(p, select) == value]
        mem = [p for p in sh.mean_member if getattr(p, select) == value]
        cells = []
        for key, higher, fmt in (("accuracy", True, _pct), ("nll", False, _f), ("ece", False, _f)):
            e, m = _mean(ens, key), _mean(mem, key)
            wins = e > m if higher else e < m
            cells += [Best(fmt(e)) if wins else fmt(e), fmt(m)]
        return cells

    header = ["accuracy ensemble", "mean member", "NLL ensemble", "mean member", "ECE ensemble", "mean member"]
    by_severity = _table(["severity", *header], [[str(s) if s else "0 (clean)", *pairs("severity", s)]
                                                 for s in sh.severities])
    by_corruption = _table(["corruption", *header], [[c, *pairs("corruption", c)] for c in sh.corruptions])
    applied = ", ".join(str(s) for s in sh.severities if s)
    return (f"<p>{sh.size} test inputs under each of {len(sh.corruptions)} corruptions at severities {applied} "
            "(0: the same inputs uncorrupted); a row by severity averages over the corruptions, a row by "
            "corruption over the severities.</p>" + by_severity + by_corruption)


def _diversity(report: Report) -> str:
    d = report.diversity
    if d is None:
        return ""
    return ("<dl>" f"<dt>pairwise disagreement</dt><dd>{_pct(d.disagreement)} of inputs, averaged over member pairs</dd>"
            f"<dt>KL(member ‖ ensemble)</dt><dd>{_f(d.kl_to_ensemble)} nats, mean over members</dd>"
            f"<dt>error correlation</dt><dd>{_f(d.error_correlation, 3)}, mean over member pairs</dd></dl>")


def _per_class(report: Report) -> str:
    pc = report.per_class
    if pc is None:
        return ""
    return _table(["class", "test inputs", "accuracy"], [[c.name, str(c.count), _pct(c.accuracy)] for c in pc.classes])


def _members(report: Report) -> str:
    return _table(["member", "accuracy", "NLL", "Brier", "ECE"], [
        [f"{r.member}{' (diverged)' if r.diverged else ''}", _pct(r.accuracy), _f(r.nll), _f(r.brier), _f(r.ece)]
        for r in report.members
    ])


def _uncertain(report: Report) -> str:
    if not report.most_uncertain:
        return ""

    def name(i: int) -> str:
        return report.classes[i] if 0 <= i < len(report.classes) else str(i)

    return _table(["test index", "label", "prediction", "entropy", "mutual information"], [
        [str(r.index), name(r.label), name(r.prediction), _f(r.entropy, 3), _f(r.mutual_information, 3)]
        for r in report.most_uncertain
    ])


def to_html(folder: RunFolder, report: Report, figures: list[str], title: str) -> str:
    """The page's text: sections in report.md's order, each figure next to its numbers."""
    fig = _Figures(folder, figures)
    sections: list[tuple[str, str]] = [
        ("Ensemble vs members", _summary(report) + fig("ensemble_size") + _size(report)),
        ("Calibration", _calibration(report) + fig("reliability")),
        ("Selective prediction", _selective(report) + fig("risk_coverage")),
        ("Out-of-distribution detection", _ood(report) + fig("ood_histograms") + fig("ood_roc")),
        ("Calibration under shift", _shift(report) + fig("shift")),
        ("Diversity of the members", _diversity(report)),
        ("Per class", _per_class(report) + fig("confusion")),
        ("Most uncertain test inputs", fig("uncertain_inputs") + _uncertain(report)),
        ("Members", _members(report)),
        ("More figures", fig.rest()),
    ]
    lead = f"{report.members_count} members on <code>{escape(report.dataset or '?')}</code>, {report.test_size} test inputs."
    warning = (f'<p class="warning">Members {escape(str(report.diverged))} diverged and are left out of the ensemble.</p>'
               if report.diverged else "")
    body = "".join(f"<h2>{escape(h)}</h2>{content}" for h, content in sections if content)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><h1>{escape(title)}</h1>"
            f'<p class="lead">{lead}</p>{warning}{body}<footer>written by ens-tui from report.json</footer>'
            "</body></html>\n")


def write_html(folder: RunFolder | Path, report: Report, figures: list[str] | None = None,
               title: str | None = None) -> Path:
    """Write report.html atomically; `figures` (paths relative to the run folder) defaults to report.figures."""
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    page = to_html(folder, report, report.figures if figures is None else figures,
                   title or f"Uncertainty report — {folder.name}")
    atomic_write_text(folder.report_html, page)
    return folder.report_html
