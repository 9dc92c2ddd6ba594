"""The live dashboard of one run: ranks, loss curves, throughput, utilization and the log.

Events arrive from the launcher in a labelled worker that only posts messages (ens_tui.messages); the
handlers fold them into a RunState, and a timer redraws the widgets from it a few times a second. A burst
of events therefore costs one repaint, and merged Step/Util messages keep the queue short.
A replay (`ens-tui show`) folds a recorded event list through the same RunState and draws once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, Static
from textual.worker import Worker, WorkerState

from engine import events as ev
from engine.config import RunConfig
from engine.control import Request, RestartMember, StopMember
from engine.run_folder import RunFolder
from ens_tui import messages as msg
from ens_tui.run_state import Level, LogEntry, RunState
from ens_tui.widgets.ensemble_panel import EnsemblePanel
from ens_tui.widgets.ensemble_plot import EnsemblePlot
from ens_tui.widgets.log_pane import LogPane
from ens_tui.widgets.loss_plot import VIEWS, LossPlot
from ens_tui.widgets.rank_table import RankRow, RankTable
from ens_tui.widgets.setup_preview import ranks_summary
from ens_tui.widgets.throughput import ThroughputPanel
from ens_tui.widgets.utilization import UtilizationPanel
from ens_tui.widgets.validation_plot import METRICS, ValidationPlot

REDRAW_SECONDS = 1.0
STOP_WAIT_SECONDS = 15.0
COMPACT_HEIGHT = 34
"""Below this many rows the panels lose their borders so an 80×24 terminal still shows everything."""


class RunLauncher(Protocol):
    """What the run screen needs from ens_tui.launcher.Launcher (a fake one stands in for it in tests)."""

    run_dir: Path

    async def start(self) -> Path: ...

    def events(self) -> Any: ...

    async def stop(self, reason: str = ...) -> None: ...

    def control(self, request: Request) -> None: ...


STATUS_STYLE = {"finished": "bold green", "failed": "bold red", "interrupted": "bold yellow"}
PARTIAL = "engine.partial"
"""The engine command that writes the partial report (runs/<id>/partial/), run in a subprocess: no torch here."""


class PartialReportFailed(RuntimeError):
    """`python -m engine.partial` wrote no report; the message is its last line (why)."""


class RunScreen(Screen[None]):
    """One run, live (`launcher=`) or replayed (`events=`)."""

    BINDINGS = [
        # One of the three `r`s is offered at a time (check_action): the footer and the help say which and why.
        Binding("r", "report", "Report", tooltip="the run's uncertainty report"),
        Binding("r", "partial_report", "Partial report",
                tooltip="the members trained so far, scored and marked partial (before the run's own report)"),
        Binding("r", "no_report", "No report yet", tooltip="no member has finished all its epochs yet"),
        Binding("x", "stop", "Stop run"),
        Binding("m", "member", "Member", show=False,
                tooltip="one member: stop it, or restart a diverged one at a lower learning rate"),
        Binding("n", "new_run", "New run"),
        Binding("l", "focus_log", "Log", show=False),
        Binding("v", "loss_view", "Loss view",
                tooltip="the loss plot linear, log y, smoothed, then the ensemble's validation NLL vs members"),
        Binding("a", "plots", "Val", tooltip="validation accuracy, then NLL, per member per epoch"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit", "Quit"),
    ]

    class ReportAvailable(Message):
        """The run finished and left a report: the app shows it."""

        def __init__(self, run_dir: Path, config: RunConfig | None) -> None:
            super().__init__()
            self.run_dir = run_dir
            self.config = config

    def __init__(
        self,
        config: RunConfig | None,
        *,
        launcher: RunLauncher | None = None,
        events: list[ev.Event] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.state = RunState(config=config)
        self.launcher = launcher
        self.run_dir = run_dir
        self._replay = list(events or [])
        self._dirty = True
        self._last_title: tuple[Text, str] | None = None
        self._partial: subprocess.Popen[str] | None = None
        """The engine process writing the partial report (the last one started)."""
        self._reader: Worker[None] | None = None
        self._reader_done = asyncio.Event()
        """Set when the event reader has ended, however it ended (what `stop_run` waits on)."""
        self._final: ev.RunDone | None = None
        """The launcher's RunDone as the reader saw it (its message may still be queued)."""

    @property
    def attached(self) -> bool:
        """This screen follows a run another process drives (`ens-tui show` on a running run): leaving it, or
        quitting, never stops that run."""
        return bool(getattr(self.launcher, "attached", False))

    @property
    def live(self) -> bool:
        """True while this screen drives a run that has not ended."""
        return self.launcher is not None and not self.attached and self.state.running

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-title")
        yield RankTable(id="ranks")
        with Horizontal(id="run-middle"):
            with ContentSwitcher(initial="loss", id="run-plots"):
                yield LossPlot(id="loss")
                yield ValidationPlot(id="val")
                with Horizontal(id="ens-view"):
                    yield EnsemblePlot(id="ens-plot")
                    yield EnsemblePanel(id="ens-inline")
            with Vertical(id="run-side"):
                throughput = ThroughputPanel(id="throughput")
                throughput.border_title = "throughput"
                yield throughput
                util = UtilizationPanel(id="util")
                util.border_title = "utilization"
                yield util
                ensemble = EnsemblePanel(id="ens-side")
                ensemble.border_title = "ensemble (validation)"
                yield ensemble
        log = LogPane(id="log")
        log.border_title = "log"
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self._compact(self.size.height)
        for event in self._replay:  # a replay, or what an attached run recorded before this screen opened
            self._fold(event)
        if self.launcher is not None:
            self._reader = self.read_events()
            self.set_interval(REDRAW_SECONDS, self._tick)
        self._sync_views()

    def on_resize(self) -> None:
        self._compact(self.size.height)
        self.remove_class("-ensemble-wide")  # measure the side column again at the new size
        self.call_after_refresh(self._place_ensemble)

    def _compact(self, height: int) -> None:
        self.set_class(height < COMPACT_HEIGHT, "-compact")

    # ------------------------------------------------------------------ the event reader

    @work(group="events", exclusive=True, exit_on_error=False, description="read rank events")
    async def read_events(self) -> None:
        """Start the run and turn every event into a message; never touches a widget.

        A failure (the launch refused, the stream lost) ends the worker in ERROR, which
        `on_worker_state_changed` shows.
        """
        assert self.launcher is not None
        try:
            run_dir = await self.launcher.start()
            self.post_message(msg.RunStarted(run_dir))
            async for event in self.launcher.events():
                if isinstance(event, ev.RunDone):
                    self._final = event
                self.post_message(msg.message_for(event))
        finally:
            self._reader_done.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every failure of the event reader becomes a visible error and ends the run as failed."""
        if event.worker.group == "partial" and event.state == WorkerState.ERROR:
            error = event.worker.error
            reason = (str(error) or type(error).__name__) if error is not None else "unknown error"
            self._note("warning", f"partial report: {reason}")
            self.notify(reason, title="No partial report", severity="error", timeout=8)
            return
        if event.worker is not self._reader or event.state != WorkerState.ERROR or not self.state.running:
            return
        error = event.worker.error
        what = "event reader failed" if self.run_dir is not None else "launch failed"
        reason = (str(error) or type(error).__name__) if error is not None else "unknown error"
        self._fold(ev.Error(message=f"{what}: {reason}"))
        self._fold(ev.RunDone(status="failed", reason=reason))
        self._sync_views()
        self.notify(reason, title=what.capitalize(), severity="error", timeout=8)

    # ------------------------------------------------------------------ handlers

    @on(msg.RunStarted)
    def _started(self, message: msg.RunStarted) -> None:
        self.run_dir = message.run_dir
        self._dirty = True

    @on(msg.RunEvent)
    def _event(self, message: msg.RunEvent) -> None:
        if isinstance(message, msg.RunFinished):
            self._finish(message.event)  # type: ignore[arg-type]
        else:
            self._fold(message.event)

    def _finish(self, done: ev.RunDone) -> None:
        """Fold the run's RunDone once, whichever comes first: its message or `stop_run`."""
        if not self.state.running:
            return
        self._fold(done)
        self._sync_views()
        if done.status == "finished" and self.run_dir is not None and RunFolder(self.run_dir).report_json.exists():
            self.post_message(self.ReportAvailable(self.run_dir, self.state.config))
        elif done.status == "failed":
            self.notify(done.reason or "see the log", title="Run failed", severity="error", timeout=8)

    def _fold(self, event: ev.Event) -> None:
        """Apply one event to the state; log lines go out at once, the rest on the next redraw."""
        entries = self.state.apply(event)
        if entries:
            self.query_one(LogPane).add(entries, self.state.started_t)
        if isinstance(event, ev.RunDone) and event.status != "finished" and self.run_dir is not None:
            self._resume_hint()
        self._dirty = True

    def _note(self, level: Level, text: str) -> None:
        """A line of this screen's own in the log (not the run's: a replay does not repeat it), stamped now."""
        state = self.state
        now = time.time()
        elapsed = state.elapsed_at(now) if self.launcher is not None else state.elapsed
        entry = LogEntry((state.started_t or now) + elapsed, level, "ens-tui", text)
        self.query_one(LogPane).add([entry], state.started_t)

    def _resume_hint(self) -> None:
        """An interrupted or failed run: how to go on with it, and the report of what it trained."""
        done = self.state.members_done()
        partial = f"; r shows the partial report of the {done} member{'s' * (done != 1)} trained" if (
            done and self.state.report is None) else ""
        self._note("info", f"continue it from its checkpoints: ens-tui --resume {self.run_dir}{partial}")

    # ------------------------------------------------------------------ drawing

    def _tick(self) -> None:
        if self._dirty or self.state.running:
            self._sync_views()

    def _sync_views(self) -> None:
        state = self.state
        elapsed = state.elapsed_at(time.time()) if self.launcher is not None else state.elapsed
        self.query_one(RankTable).ranks = tuple(RankRow.of(r) for r in state.ranks.values())
        self.query_one(LossPlot).set_members(state.members, final=not state.running)
        self.query_one(ValidationPlot).set_members(state.members)
        self.query_one(ThroughputPanel).show(state, elapsed)
        self.query_one(UtilizationPanel).show(state)
        for panel in self.query(EnsemblePanel).results(EnsemblePanel):
            panel.show(state)
        self.query_one(EnsemblePlot).set_ensemble(state.ensemble)
        self.call_after_refresh(self._place_ensemble)
        title = self._title()
        if (title, self._report_key()) != self._last_title:
            # The footer's keys depend only on what the title shows (running, finished) and which report `r` opens.
            if self._last_title is None or title != self._last_title[0]:
                self.query_one("#run-title", Static).update(title, layout=False)
            self._last_title = (title, self._report_key())
            self.refresh_bindings()
        self._dirty = False

    def _place_ensemble(self) -> None:
        """The ensemble panel under the side column's panels where it fits (ranks and GPUs take rows there);
        else beside the ensemble plot (`v`), which then takes the side column's place."""
        side = self.query_one("#run-side", Vertical)
        panel = self.query_one("#ens-side", EnsemblePanel)
        if side.display and side.size.height:  # the side column hidden (the plot wide), its sizes are stale
            used = sum(w.outer_size.height for w in side.children if w is not panel and w.display)
            gutter = panel.styles.gutter
            fits = side.size.height - used >= panel.lines(side.size.width - gutter.width) + gutter.height
            if panel.display != fits:
                panel.display = fits
                self.query_one("#ens-inline", EnsemblePanel).display = not fits
        wide = not panel.display and self.query_one("#run-plots", ContentSwitcher).current == "ens-view"
        self.set_class(wide, "-ensemble-wide")

    def _title(self) -> Text:
        config = self.state.config
        title = Text()
        if config is not None:
            t = config.train
            title.append(config.name, style="bold")
            title.append(f"  {config.parallel.strategy} · {ranks_summary(config)} · {t.members} members × "
                         f"{t.epochs} epochs · {config.data.dataset}", style="dim")
        phase = self.state.phase
        if self.state.running:
            status = Text(f"  ● {phase}", style="bold green")
        else:
            status = Text(f"  ■ {phase}", style=STATUS_STYLE[phase])
        title.append_text(status)
        if self.attached:
            title.append(" · attached", style="bold cyan")
        if self.run_dir is not None:
            title.append(f"  {self.run_dir}", style="dim")
        return title

    # ------------------------------------------------------------------ actions

    def _report_key(self) -> str:
        """Which `r` action is offered: the run's report, the partial one, or a word that there is none yet."""
        if self.run_dir is not None and self.state.report is not None:
            return "report"
        if self.run_dir is not None and self.state.members_done():
            return "partial_report"
        return "no_report"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("report", "partial_report", "no_report"):
            return action == self._report_key()
        # Only one of x and n applies at a time: the other is left out, so every key fits in an 80-column footer.
        if action in ("stop", "member"):
            return self.live
        if action == "new_run":
            return not self.live
        return True

    def action_report(self) -> None:
        """Show the uncertainty report of this run."""
        if self.run_dir is not None:
            self.post_message(self.ReportAvailable(self.run_dir, self.state.config))

    def action_no_report(self) -> None:
        """Say why there is no report to show yet."""
        if self.run_dir is None:
            why = "the run has no folder yet" if self.state.running else "the run never started"
        else:
            epochs = self.state.config.train.epochs if self.state.config is not None else None
            all_epochs = f"all {epochs} epoch{'s' * (epochs != 1)}" if epochs is not None else "all its epochs"
            why = (f"no member has finished training yet: a partial report needs one that completed {all_epochs}; "
                   "the run's report comes once every member is trained")
        self.notify(why, title="No report yet", severity="warning", timeout=6)

    def action_partial_report(self) -> None:
        """Write and show the report of the members trained so far (an engine process; a few seconds)."""
        if self.run_dir is None:
            return
        if any(w.group == "partial" and w.is_running for w in self.workers):
            self.notify("the partial report is still being written…", title="Partial report", timeout=3)
            return
        done, total = self.state.members_done(), self.state.total_members
        self.notify(f"scoring the {done} of {total} members trained so far…", title="Partial report", timeout=4)
        self.write_partial(self.run_dir)

    @work(thread=True, exclusive=True, group="partial", exit_on_error=False, description="write the partial report")
    def write_partial(self, run_dir: Path) -> None:
        """Run `python -m engine.partial RUN`, passing on its progress; open its report when it is written."""
        command = [sys.executable, "-m", PARTIAL, str(run_dir)]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        self._partial = proc
        said: list[str] = []
        assert proc.stderr is not None
        for line in proc.stderr:  # one line per stage; the last one of a failure says why
            said.append(line.strip().removeprefix(f"{PARTIAL}: "))
            self.app.call_from_thread(self.notify, said[-1], title="Partial report", timeout=3)
        if proc.wait() != 0:
            raise PartialReportFailed(said[-1] if said else f"{PARTIAL} ended with exit code {proc.returncode}")
        self.app.call_from_thread(self._partial_written, RunFolder(run_dir).partial)

    def _partial_written(self, folder: RunFolder) -> None:
        self._note("info", f"partial report written: {folder.report_md}")
        self.post_message(self.ReportAvailable(folder.path, self.state.config))

    def action_stop(self) -> None:
        """Ask, then interrupt the run but stay on the dashboard."""
        from ens_tui.dialogs.confirm_quit import ConfirmQuit

        def answered(stop: bool | None) -> None:
            if stop:
                self.run_worker(self.stop_run(), group="stop", exit_on_error=False, description="stop the run")

        self.app.push_screen(ConfirmQuit("Stop the run?", quitting=False), answered)

    def action_member(self) -> None:
        """Stop one member, or restart a diverged one, through the launcher (engine.control)."""
        from ens_tui.dialogs.member_control import MemberControl

        def answered(request: Request | None) -> None:
            if request is None or self.launcher is None:
                return
            self.launcher.control(request)
            if isinstance(request, StopMember):
                self._note("info", f"asked the ranks to stop member {request.member}")
            elif isinstance(request, RestartMember):
                self._note("info", f"asked to restart member {request.member} at {request.lr_factor:g} × the "
                                   "learning rate")

        self.app.push_screen(MemberControl(self.state), answered)

    def action_new_run(self) -> None:
        """Back to the setup screen."""
        self.app.action_new_run()  # type: ignore[attr-defined]

    def action_focus_log(self) -> None:
        """Focus the log so it can be scrolled with the arrows."""
        self.query_one(LogPane).focus()

    def action_loss_view(self) -> None:
        """Cycle the loss plot through linear, log-y and smoothed views, then the ensemble plot (the validation
        plot gives way to the loss plot)."""
        plots = self.query_one("#run-plots", ContentSwitcher)
        loss = self.query_one(LossPlot)
        if plots.current == "val":
            plots.current = "loss"
        elif plots.current == "ens-view":
            loss.view = VIEWS[0]
            plots.current = "loss"
        elif loss.view == VIEWS[-1]:
            plots.current = "ens-view"
        else:
            loss.next_view()
        self._place_ensemble()

    def action_plots(self) -> None:
        """Show validation accuracy per member, then validation NLL, then the training loss again."""
        plots = self.query_one("#run-plots", ContentSwitcher)
        val = self.query_one(ValidationPlot)
        if plots.current != "val":
            val.metric = METRICS[0]
            plots.current = "val"
        elif val.metric != METRICS[-1]:
            val.metric = METRICS[METRICS.index(val.metric) + 1]
        else:
            plots.current = "loss"
        self._place_ensemble()

    async def stop_run(self, reason: str = "stopped by the user") -> None:
        """Stop every rank and wait until the launcher's last event (RunDone) has been folded in."""
        if self.launcher is None or not self.state.running:
            return
        self.notify("stopping every rank…", timeout=3)
        await self.launcher.stop(reason)
        # Wait on the reader itself, not on its messages: this may run inside this screen's own
        # message handler, where the queued RunFinished cannot be handled until it returns.
        try:
            await asyncio.wait_for(self._reader_done.wait(), STOP_WAIT_SECONDS)
        except TimeoutError:
            self._fold(ev.Error(message=f"the launcher did not confirm the stop within {STOP_WAIT_SECONDS:.0f} s"))
            self._fold(ev.RunDone(status="failed", reason="no word from the launcher after the stop"))
            self.notify("the launcher did not confirm the stop", title="Stop failed", severity="error", timeout=8)
        if self._final is not None:
            self._finish(self._final)
        # Otherwise the reader failed: `on_worker_state_changed` shows why as soon as this returns.
        self._sync_views()

    async def on_unmount(self) -> None:
        if self._partial is not None and self._partial.poll() is None:
            self._partial.terminate()  # a partial report nobody will see
        # Belt and braces: a screen that goes away never leaves ranks behind.
        if self.live and self.launcher is not None:
            await self.launcher.stop()
