"""The uncertainty report of a finished run: metrics, decomposition, calibration, OOD detection, hard inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from engine.config import RunConfig
from engine.report_model import Report
from ens_tui.widgets.entropy_histogram import EntropyHistogram
from ens_tui.widgets.metrics_table import MetricsTable
from ens_tui.widgets.predict_pane import PredictPane
from ens_tui.widgets.reliability_plot import ReliabilityPlot
from ens_tui.widgets.size_curve_plot import SizeCurvePlot
from ens_tui.widgets.uncertain_input import UncertainInput
from ens_tui.widgets.uncertainty_panel import UncertaintyPanel

TABS = ("summary", "calibration", "ood", "inputs", "predict")
CARD_WIDTH = 18
WIDE_COLUMNS = 150
"""From this width on, the OOD histograms sit side by side."""


def _can_open_folders() -> bool:
    """A desktop opener exists and would not take over this terminal (no console browsers over SSH)."""
    if sys.platform == "darwin":
        return shutil.which("open") is not None
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return has_display and shutil.which("xdg-open") is not None


class ReportScreen(Screen[None]):
    """Five tabs (1–5); o opens the run folder, e exports, n starts another run, esc returns to the dashboard."""

    BINDINGS = [
        Binding("1", "tab('summary')", "Summary", show=False),
        Binding("2", "tab('calibration')", "Calibration", show=False),
        Binding("3", "tab('ood')", "OOD", show=False),
        Binding("4", "tab('inputs')", "Inputs", show=False),
        Binding("5", "tab('predict')", "Predict", show=False),
        Binding("o", "open_folder", "Open folder"),
        Binding("e", "export", "Export"),
        Binding("n", "app.new_run", "New run"),
        Binding("escape,d", "dashboard", "Dashboard"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, report: Report, run_dir: Path, config: RunConfig | None = None) -> None:
        super().__init__()
        self.report = report
        self.run_dir = run_dir
        self.config = config

    def compose(self) -> ComposeResult:
        report = self.report
        yield Header()
        yield Static(self._title(), id="report-title")
        with TabbedContent(id="report-tabs"):
            with TabPane("1 summary", id="summary"):
                with VerticalScroll():
                    yield MetricsTable(report, id="metrics")
                    yield Static(Text("uncertainty (mean over the test set, nats)", style="bold"), classes="section")
                    yield UncertaintyPanel(report.uncertainty, id="uncertainty")
                    yield SizeCurvePlot(report.ensemble_size_curve, id="size-curve")
            with TabPane("2 calibration", id="calibration"):
                yield ReliabilityPlot(report.ensemble.reliability, report.ensemble.ece, id="reliability")
            with TabPane("3 OOD", id="ood"):
                with VerticalScroll():
                    with Grid(id="ood-grid"):
                        for name, result in report.ood.items():
                            yield EntropyHistogram(name, result)
                        if not report.ood:
                            yield Static("no OOD sets in this run", classes="empty")
            with TabPane("4 uncertain inputs", id="inputs"):
                with VerticalScroll():
                    yield Static(Text("the test inputs the ensemble was least sure of: label → prediction, test index, "
                                      "entropy H and mutual information MI (nats)", style="dim"))
                    with Grid(id="inputs-grid"):
                        for item in report.most_uncertain:
                            yield UncertainInput(item, report.classes)
            with TabPane("5 predict", id="predict"):
                if report.inputs is not None:
                    yield PredictPane(self.run_dir, report.classes, id="predict-pane")
                else:
                    yield Static("this run was written by an older ens-tui (its report has no input spec): "
                                 "train it again to predict with it", classes="empty")
        yield Footer()

    def on_mount(self) -> None:
        self._fit_grids()

    def on_resize(self) -> None:
        self._fit_grids()

    def _fit_grids(self) -> None:
        """As many image cards per row as fit; OOD histograms side by side on wide terminals."""
        width = self.size.width
        for grid in self.query("#inputs-grid").results(Grid):
            grid.styles.grid_size_columns = max(1, (width - 4) // CARD_WIDTH)
        for grid in self.query("#ood-grid").results(Grid):
            grid.styles.grid_size_columns = 2 if width >= WIDE_COLUMNS else 1

    def _title(self) -> Text:
        report = self.report
        title = Text.assemble(("report", "bold"), (f"  {report.dataset or '?'} · {report.members_count} members", "dim"))
        title.append(f" · accuracy {report.ensemble.accuracy:.2%}", style="bold green")
        title.append(f"  {self.run_dir}", style="dim")
        return title

    # ------------------------------------------------------------------ actions

    def action_tab(self, tab: str) -> None:
        """Switch to one of the five tabs."""
        self.query_one(TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The predict tab is for typing: its path field takes the keys as soon as it shows."""
        if event.pane.id == "predict":
            for field in self.query("#predict-path").results(Input):
                field.focus()

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
        """Save this screen as SVG next to report.md and report.json, and say where all three are."""
        svg = self.app.save_screenshot(filename="report.svg", path=str(self.run_dir))
        names = [Path(svg).name] + [n for n in ("report.md", "report.json") if (self.run_dir / n).exists()]
        self.notify(f"{self.run_dir}/: " + ", ".join(names), title="Exported")
