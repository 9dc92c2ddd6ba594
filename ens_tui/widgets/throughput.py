"""Throughput: samples/s per rank and in total with its history, overall progress, elapsed time and ETA."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import ProgressBar, Sparkline, Static

from ens_tui.run_state import RunState
from ens_tui.widgets._format import duration, rate, spark


class Bars:
    """A rate history as spark bars one sample (second) a column, newest at the right, as wide as the space it
    is given when drawn (a panel's width is not known yet when a replay first fills it)."""

    def __init__(self, values: list[float], height: int = 1) -> None:
        self.values, self.height = values, height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(spark(self.values, options.max_width, self.height)), style="cyan", no_wrap=True)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


class RateSparkline(Sparkline):
    """The total rate's history, drawn like the ranks' own bars: scaled from 0, an idle stretch at the floor.

    Textual's sparkline scales from the series' minimum and draws a single sample as full bars, so an idle
    start read as full throughput and a steady rate as none.
    """

    def render(self) -> Bars:
        return Bars(list(self.data or []), max(self.size.height, 1))


class ThroughputPanel(Vertical):
    """Fed by `show(state, elapsed)`; the numbers are reactives so unchanged values cost nothing."""

    _rank_count = 0

    DEFAULT_CSS = """
    ThroughputPanel { height: auto; }
    ThroughputPanel > #tp-summary { height: 1; }
    ThroughputPanel > ProgressBar { height: 1; }
    ThroughputPanel > ProgressBar Bar { width: 1fr; }
    ThroughputPanel > Sparkline { height: 2; margin: 0 0 0 0; }
    ThroughputPanel > #tp-ranks { height: auto; }
    """

    total: reactive[float] = reactive(0.0)
    elapsed: reactive[float] = reactive(0.0)
    eta: reactive[float | None] = reactive(None)
    progress: reactive[float] = reactive(0.0)
    members: reactive[str] = reactive("")
    finished: reactive[bool] = reactive(False)

    def compose(self) -> ComposeResult:
        yield Static(id="tp-summary")
        yield ProgressBar(total=1.0, show_eta=False, id="tp-progress").data_bind(progress=ThroughputPanel.progress)
        yield RateSparkline([], id="tp-spark")
        yield Static(id="tp-ranks")

    def show(self, state: RunState, elapsed: float) -> None:
        """Take the run's latest numbers."""
        self.total = state.total_samples_per_s
        self.elapsed = elapsed
        self.eta = state.eta(elapsed)
        self.progress = state.progress
        self.members = f"{state.members_done()}/{state.total_members}"
        self.finished = state.phase == "finished"
        self.query_one(RateSparkline).data = list(state.total_history)
        # Re-layout only when a rank joins: a fixed-height update is a cheap repaint.
        grew = len(state.ranks) != self._rank_count
        self._rank_count = len(state.ranks)
        self.query_one("#tp-ranks", Static).update(self._rank_lines(state), layout=grew)

    def _rank_lines(self, state: RunState) -> Table:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(ratio=1, no_wrap=True, overflow="crop")
        for r in sorted(state.ranks.values(), key=lambda r: r.rank):
            now = r.samples_per_s if r.status == "training" else None
            table.add_row(
                Text(f"r{r.rank} {r.device}", style="bold"),
                "–" if now is None else f"{rate(now)}/s",
                Bars(list(r.history)),
            )
        return table

    def _update_summary(self) -> None:
        summary = Text.assemble(
            ("total ", "dim"), (f"{rate(self.total)}/s", "bold"),
            ("  elapsed ", "dim"), duration(self.elapsed),
            ("  ETA ", "dim"), "done" if self.finished else duration(self.eta),
            ("  members ", "dim"), self.members,
        )
        self.query_one("#tp-summary", Static).update(summary)

    def watch_total(self) -> None:
        self._update_summary()

    def watch_elapsed(self) -> None:
        self._update_summary()

    def watch_eta(self) -> None:
        self._update_summary()

    def watch_members(self) -> None:
        self._update_summary()

    def watch_progress(self) -> None:
        self._update_summary()

    def watch_finished(self) -> None:
        self._update_summary()
