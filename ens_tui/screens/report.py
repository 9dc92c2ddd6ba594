"""The uncertainty report of a finished run: metrics, decomposition, calibration, OOD detection, hard inputs,
prediction, selective prediction, calibration under shift, and the members' diversity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from engine.config import RunConfig
from engine.report_model import Report
from engine.run_folder import RunFolder
from ens_tui import rundir
from ens_tui.widgets.calibration_table import CalibrationTable
from ens_tui.widgets.class_table import ClassTable
from ens_tui.widgets.confusion_table import ConfusionTable
from ens_tui.widgets.diversity_panel import DiversityPanel
from ens_tui.widgets.entropy_histogram import EntropyHistogram
from ens_tui.widgets.metrics_table import MetricsTable
from ens_tui.widgets.ood_scores_table import OodScoresTable
from ens_tui.widgets.predict_pane import PredictPane
from ens_tui.widgets.reliability_plot import ReliabilityPlot
from ens_tui.widgets.risk_coverage_plot import RiskCoveragePlot
from ens_tui.widgets.selective_table import SelectiveTable
from ens_tui.widgets.shift_plot import ShiftPlot
from ens_tui.widgets.shift_table import ShiftTable, headline
from ens_tui.widgets.size_curve_plot import SizeCurvePlot, size_law_text
from ens_tui.widgets.uncertain_input import UncertainInput
from ens_tui.widgets.uncertainty_panel import UncertaintyPanel

TABS = ("summary", "calibration", "ood", "inputs", "predict", "selective", "shift", "diversity")
CARD_WIDTH = 18
WIDE_COLUMNS = 150
"""From this width on, the OOD histograms sit side by side."""
SIDE_BY_SIDE = 110
"""From this width on, the per-class table and the confusion matrix sit side by side."""
NARROW_TABS = 90
"""Below this width the tab labels lose their padding, so all eight fit in 80 columns."""
NOT_IN_RUN = {
    "selective": "selective prediction is not in this run: its report predates it "
                 "(python -m engine.report RUN re-scores it from predictions.pt)",
    "shift": "calibration under shift is not in this run: it needs [report] shift = true "
             "and a run trained by this ens-tui",
    "diversity": "diversity is not in this run: it needs two members or more and a report by this ens-tui "
                 "(python -m engine.report RUN re-scores it)",
    "per_class": "per-class accuracy and the confusion matrix are not in this run "
                 "(python -m engine.report RUN re-scores it)",
}
"""What each new tab says for a report that lacks its section (old reports, shift off, one member)."""


def _can_open_folders() -> bool:
    """A desktop opener exists and would not take over this terminal (no console browsers over SSH)."""
    if sys.platform == "darwin":
        return shutil.which("open") is not None
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return has_display and shutil.which("xdg-open") is not None


def _finished(run_dir: Path) -> bool:
    """Whether `run_dir` is a finished run (a relaunched one says `running` in run.json until it ends again)."""
    try:
        info = rundir.read_run_info(run_dir)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and rundir.run_status(run_dir, info)[0] == "finished"


class ReportScreen(Screen[None]):
    """Eight tabs (1–8, ←/→); the shown tab's content takes the scroll keys; l puts the OOD histograms on a log
    axis; o opens the run folder, e exports, + grows a finished run by more members, n starts another run, esc
    returns to the dashboard."""

    AUTO_FOCUS = None
    """The shown tab's content takes the focus (`_focus_tab`), not the first focusable widget: the tab bar."""

    DEFAULT_CSS = """
    ReportScreen.-narrow-tabs #report-tabs Tab { padding: 0 0 0 1; }
    ReportScreen.-narrow-tabs #report-tabs Tab:first-of-type { padding: 0; }
    ReportScreen .empty { color: $text-muted; padding: 1 0; }
    ReportScreen .plot-pair { height: 1fr; min-height: 12; }
    ReportScreen .plot-pair > Vertical { height: 1fr; }
    ReportScreen .plot-caption { height: 1; color: $text-muted; }
    ReportScreen #classes-grid { grid-size: 1; grid-rows: auto; grid-gutter: 1 2; height: auto; }
    """

    BINDINGS = [
        Binding("1", "tab('summary')", "Summary", show=False),
        Binding("2", "tab('calibration')", "Calibration", show=False),
        Binding("3", "tab('ood')", "OOD", show=False),
        Binding("4", "tab('inputs')", "Inputs", show=False),
        Binding("5", "tab('predict')", "Predict", show=False),
        Binding("6", "tab('selective')", "Selective", show=False),
        Binding("7", "tab('shift')", "Shift", show=False),
        Binding("8", "tab('diversity')", "Diversity", show=False),
        Binding("left", "step_tab(-1)", "Previous tab", show=False),
        Binding("right", "step_tab(1)", "Next tab", show=False),
        Binding("l", "log_y", "Log y"),
        # Short labels: with `+` every key still fits an 80-column footer (the help says more).
        Binding("o", "open_folder", "Folder", tooltip="open the run folder (or copy its path)"),
        Binding("e", "export", "Export"),
        Binding("plus", "extend", "Extend", tooltip="train more members of this finished run (asks the new total)"),
        Binding("n", "app.new_run", "New run"),
        Binding("escape,d", "dashboard", "Back", tooltip="back to the run's dashboard"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit", "Quit"),
    ]

    class Extend(Message):
        """The user asked to grow this run (the plan has passed every check): the app launches it."""

        def __init__(self, plan: rundir.Extension) -> None:
            super().__init__()
            self.plan = plan

    def __init__(self, report: Report, run_dir: Path, config: RunConfig | None = None) -> None:
        super().__init__()
        self.report = report
        self.run_dir = run_dir
        self.config = config
        self.extendable = report.partial is None and _finished(run_dir)
        """A finished run's own report (not a partial one, not a run still going): `+` grows it."""

    def compose(self) -> ComposeResult:
        report = self.report
        yield Header()
        yield Static(self._title(), id="report-title")
        if (stop := report.stopped_early) is not None:
            yield Static(Text.assemble((" stopped early ", "bold reverse yellow"),
                                       f" {stop.members} members — {stop.reason}"), id="stopped-early")
        with TabbedContent(id="report-tabs"):
            with TabPane("1 summary", id="summary"):
                with VerticalScroll():
                    yield MetricsTable(report, id="metrics")
                    yield Static(Text("uncertainty (mean over the test set, nats)", style="bold"), classes="section")
                    yield UncertaintyPanel(report.uncertainty, id="uncertainty")
                    yield SizeCurvePlot(report.ensemble_size_curve, report.ensemble_size_subsets,
                                        law=report.size_law, id="size-curve")
                    if report.size_law is not None:
                        yield Static(size_law_text(report.size_law), id="size-law")
            with TabPane("2 calibration", id="calibration"), VerticalScroll():
                yield from self._calibration()
            with TabPane("3 OOD", id="ood"):
                with VerticalScroll():
                    if any(result.scores for result in report.ood.values()):
                        yield OodScoresTable(report.ood, id="ood-scores")
                    with Grid(id="ood-grid"):
                        top = max((r.entropy_hist.bins[-1] for r in report.ood.values() if r.entropy_hist.bins),
                                  default=None)
                        for name, result in report.ood.items():
                            yield EntropyHistogram(name, result, top)
                        if not report.ood:
                            yield Static("no OOD sets in this run", classes="empty")
            with TabPane("4 inputs", id="inputs"):
                with VerticalScroll():
                    yield Static(Text("the test inputs the ensemble was least sure of: label → prediction, test index, "
                                      "entropy H and mutual information MI (nats)", style="dim"))
                    with Grid(id="inputs-grid"):
                        for item in report.most_uncertain:
                            yield UncertainInput(item, report.classes)
            with TabPane("5 predict", id="predict"):
                if report.partial is not None:
                    yield Static("a partial report cannot predict: `ens-tui predict` needs the run's own report, "
                                 "written once every member is trained", classes="empty")
                elif report.inputs is not None:
                    yield PredictPane(self.run_dir, report.classes, id="predict-pane")
                else:
                    yield Static("this run was written by an older ens-tui (its report has no input spec): "
                                 "train it again to predict with it", classes="empty")
            with TabPane("6 selective", id="selective"), VerticalScroll():
                yield from self._selective()
            with TabPane("7 shift", id="shift"), VerticalScroll():
                yield from self._shift()
            with TabPane("8 diversity", id="diversity"), VerticalScroll():
                yield from self._diversity()
        yield Footer()

    def _calibration(self) -> ComposeResult:
        """The reliability diagram; with temperature scaling, before and after side by side over their numbers."""
        report = self.report
        cal = report.calibration
        if cal is None or not cal.reliability_after:
            yield ReliabilityPlot(report.ensemble.reliability, report.ensemble.ece, id="reliability")
            if cal is not None:
                yield CalibrationTable(cal, id="calibration-table")
            return
        with Horizontal(classes="plot-pair"):
            with Vertical():
                yield Static("before temperature scaling", classes="plot-caption")
                yield ReliabilityPlot(report.ensemble.reliability, cal.before.ece, id="reliability")
            with Vertical():
                yield Static(f"after: logits / T, T = {cal.temperature:.3f}", classes="plot-caption")
                yield ReliabilityPlot(cal.reliability_after, cal.after.ece, id="reliability-after")
        yield CalibrationTable(cal, id="calibration-table")

    def _selective(self) -> ComposeResult:
        """Answer only the inputs it is surest of: how fast the error falls, ensemble vs mean member."""
        if self.report.selective is None:
            yield Static(Text(NOT_IN_RUN["selective"]), classes="empty")
            return
        yield SelectiveTable(self.report.selective, id="selective-table")
        yield RiskCoveragePlot(self.report.selective, id="risk-coverage")

    def _shift(self) -> ComposeResult:
        """Accuracy and ECE as the corruptions grow stronger, then each corruption's numbers."""
        shift = self.report.shift
        if shift is None:
            yield Static(Text(NOT_IN_RUN["shift"]), classes="empty")
            return
        yield Static(headline(shift), id="shift-headline")
        with Horizontal(classes="plot-pair"):
            yield ShiftPlot(shift, "accuracy", id="shift-accuracy")
            yield ShiftPlot(shift, "ece", id="shift-ece")
        yield ShiftTable(shift, id="shift-table")

    def _diversity(self) -> ComposeResult:
        """How differently the members answer, then the ensemble per class and its confusion matrix."""
        report = self.report
        if report.diversity is not None:
            yield DiversityPanel(report.diversity, id="diversity-panel")
        else:
            yield Static(Text(NOT_IN_RUN["diversity"]), classes="empty")
        if report.per_class is not None:
            with Grid(id="classes-grid"):
                yield ClassTable(report.per_class, id="class-table")
                yield ConfusionTable(report.per_class, id="confusion")
        else:
            yield Static(Text(NOT_IN_RUN["per_class"]), classes="empty")

    def on_mount(self) -> None:
        self._fit_grids()
        self._focus_tab(self.query_one(TabbedContent).active_pane)

    def on_resize(self) -> None:
        self._fit_grids()

    def _fit_grids(self) -> None:
        """As many image cards per row as fit; histograms and class tables side by side when wide."""
        width = self.size.width
        for grid in self.query("#inputs-grid").results(Grid):
            grid.styles.grid_size_columns = max(1, (width - 4) // CARD_WIDTH)
        for grid in self.query("#ood-grid").results(Grid):
            grid.styles.grid_size_columns = 2 if width >= WIDE_COLUMNS else 1
        for grid in self.query("#classes-grid").results(Grid):
            grid.styles.grid_size_columns = 2 if width >= SIDE_BY_SIDE else 1
        self.set_class(width < NARROW_TABS, "-narrow-tabs")

    def _title(self) -> Text:
        report = self.report
        partial = report.partial
        if partial is None:
            title = Text.assemble(("report", "bold"), (f"  {report.dataset or '?'} · {report.members_count} members", "dim"))
        else:  # the members trained so far (engine.partial): say so first, where it cannot be missed
            title = Text.assemble(("report", "bold"), "  ", (f" partial: {partial.members} of {partial.of} members ",
                                                             "bold reverse yellow"), (f"  {report.dataset or '?'}", "dim"))
        title.append(f" · accuracy {report.ensemble.accuracy:.2%}", style="bold green")
        title.append(f"  {self.run_dir}", style="dim")
        return title

    # ------------------------------------------------------------------ actions

    def action_tab(self, tab: str) -> None:
        """Switch to one of the eight tabs."""
        self.query_one(TabbedContent).active = tab

    def action_step_tab(self, step: int) -> None:
        """The tab before or after the shown one (the arrows, where the content cannot scroll sideways)."""
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)] if tabs.active in TABS else TABS[0]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_tab(event.pane)
        self.refresh_bindings()

    def _focus_tab(self, pane: TabPane | None) -> None:
        """The shown tab takes the keys: the predict tab's path field, any other tab's scroll container (so the
        arrows and PgDn scroll it at once, without Tab first)."""
        if pane is None:
            return
        for widget in (*pane.query("#predict-path").results(Input), *pane.query(VerticalScroll).results()):
            widget.focus()
            return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`l` is offered on the OOD tab only; the arrows leave the predict tab's file tree and field alone."""
        if action == "log_y":
            return self.query_one(TabbedContent).active == "ood"
        if action == "step_tab":
            return self.query_one(TabbedContent).active != "predict"
        if action == "extend":
            return self.extendable
        return True

    def action_log_y(self) -> None:
        """The OOD histograms' share axis: linear or log (where the thin tails show)."""
        histograms = list(self.query(EntropyHistogram).results())
        log = not any(h.log_y for h in histograms)
        for histogram in histograms:
            histogram.log_y = log

    def action_extend(self) -> None:
        """Ask for the new total of members; the dialog checks it, then the app trains the new members."""
        from ens_tui.dialogs.extend import ExtendRun

        def answered(plan: rundir.Extension | None) -> None:
            if plan is not None:
                self.post_message(self.Extend(plan))

        self.app.push_screen(ExtendRun(self.run_dir, self.report.members_count), answered)

    def action_dashboard(self) -> None:
        """Back to the run's dashboard (the screen underneath)."""
        self.app.pop_screen()

    def action_open_folder(self) -> None:
        """Open the run folder in the desktop's file manager, or copy its path where there is none."""
        path = str(self.run_dir.resolve())
        if _can_open_folders():
            opener = "open" if sys.platform == "darwin" else "xdg-open"
            subprocess.Popen(  # noqa: S603 - fixed opener, our own path
                [opener, path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.notify(path, title="Opened the run folder")
        else:
            self.app.copy_to_clipboard(path)
            self.notify(path, title="Run folder (path copied)")

    def action_export(self) -> None:
        """The whole report as report.svg (every tab, full height), the figures and report.html, next to
        report.md and report.json."""
        self.notify("drawing report.svg (every tab), the figures and report.html …", title="Exporting")
        width, height = self.app.size
        self.export(width, height, self.app.theme)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False, description="export")
    def export(self, width: int, height: int, theme: str) -> None:
        """report.svg at this terminal's width, figures/*.png and report.html (in a thread: it takes seconds)."""
        # Imported here: matplotlib takes about a second to load, and only exporting needs it (and
        # ens_tui.report_svg imports this module).
        from engine.figures import draw_figures
        from engine.report_html import write_html
        from ens_tui.report_svg import export_svg

        folder = RunFolder(self.run_dir)
        svg = export_svg(folder.path, width=width, height=height, theme=theme)
        figures = draw_figures(folder, self.report)
        write_html(folder, self.report, figures)
        names = [f"{svg.name} (all {len(TABS)} tabs)", folder.report_html.name, f"figures/ ({len(figures)} PNG)"]
        names += [p.name for p in (folder.report_md, folder.report_json) if p.exists()]
        self.app.call_from_thread(self.notify, f"{self.run_dir}/: " + ", ".join(names), title="Exported")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed export (a read-only folder, say) is said on screen, in one line."""
        if event.worker.group == "export" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title="Export failed", severity="error")
