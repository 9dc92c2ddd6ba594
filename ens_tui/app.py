"""The Textual front end: the setup screen, the live run dashboard, the report, and replays of run folders.

It talks to the training only through the launcher API (start / events / stop), imports neither torch nor
MPI, and imports the launcher itself lazily, so the app opens fast.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App
from textual.binding import Binding

from engine import events as ev
from engine.config import ConfigError, RunConfig, load_config
from engine.report_model import ReportError
from engine.run_folder import RunFolder
from ens_tui.dialogs.confirm_quit import ConfirmQuit
from ens_tui.dialogs.help import HelpScreen
from ens_tui.presets import discover
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunLauncher, RunScreen
from ens_tui.screens.setup import SetupChecker, SetupScreen

if TYPE_CHECKING:
    from ens_tui.rundir import Extension

LauncherFactory = Callable[[RunConfig], RunLauncher]
ExtendFactory = Callable[["Extension"], RunLauncher]


def _default_launcher(mpiexec: str | None) -> LauncherFactory:
    def make(config: RunConfig) -> RunLauncher:
        from ens_tui.launcher import Launcher

        return Launcher(config, mpiexec=mpiexec)

    return make


def _default_extender(mpiexec: str | None) -> ExtendFactory:
    def make(plan: Extension) -> RunLauncher:
        from ens_tui.launcher import Launcher

        return Launcher(plan.config, mpiexec=mpiexec, run_dir=plan.run_dir, extend=True)

    return make


def _default_checker(config: RunConfig) -> str | None:
    from ens_tui.launcher import setup_problem

    return setup_problem(config)


class EnsTuiApp(App[int]):
    """`ens-tui [configs…]` opens the setup screen; `ens-tui show RUN_DIR` opens a finished run."""

    CSS_PATH = "app.tcss"
    TITLE = "ens-tui"
    SUB_TITLE = "deep ensembles on MPI ranks"
    BINDINGS = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Keys", show=False),
    ]

    def __init__(
        self,
        config_paths: list[Path] | tuple[Path, ...] = (),
        *,
        mpiexec: str | None = None,
        show: Path | None = None,
        runs: Path | None = None,
        launcher_factory: LauncherFactory | None = None,
        extend_factory: ExtendFactory | None = None,
        setup_checker: SetupChecker | None = None,
        cwd: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config_paths = [Path(p) for p in config_paths]
        self.show_dir = Path(show) if show is not None else None
        self.runs_dir = Path(runs) if runs is not None else None
        self.launcher_factory = launcher_factory or _default_launcher(mpiexec)
        self.extend_factory = extend_factory or _default_extender(mpiexec)
        self.setup_checker = setup_checker or _default_checker
        self.cwd = cwd
        self.overrides = dict(overrides or {})
        """Command-line overrides (`with_overrides` keywords) applied to every listed setup."""
        self._signalled: int | None = None

    # ------------------------------------------------------------------ screens

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        if self.show_dir is not None:
            self._open_run_folder(self.show_dir)
        elif self.runs_dir is not None:
            from ens_tui.screens.runs import RunsScreen

            self.push_screen(RunsScreen(self.runs_dir))
        else:
            self.push_screen(self._setup_screen())

    def _setup_screen(self) -> SetupScreen:
        presets = discover(self.config_paths, self.cwd, self.overrides)
        return SetupScreen(presets, self.setup_checker, save_dir=(self.cwd or Path.cwd()) / "configs")

    def _open_run_folder(self, run_dir: Path) -> None:
        """Replay: the dashboard's final state, and the report on top when there is one.

        A broken file is shown as a one-line notice naming it; the replay shows whatever else can be read.
        """
        from ens_tui import rundir

        config: RunConfig | None
        try:
            config = load_config(RunFolder(run_dir).config)
        except ConfigError as err:
            config = None
            self.notify(str(err), title="Cannot read the config", severity="warning")
        follower = None
        if rundir.is_running(run_dir):
            from ens_tui.follow import RunFollower

            follower = RunFollower(run_dir)
            events = follower.history()
        else:
            try:
                events = rundir.read_events(run_dir)
            except rundir.RunDirError as err:
                events = rundir.RecordedEvents()
                self.notify(str(err), title="Cannot replay the events", severity="error")
            if events and not isinstance(events[-1], ev.RunDone):
                events.append(rundir.lost_run_done(run_dir, t=events[-1].t))
        if events.skipped:
            lines = f"{events.skipped} unreadable line{'s' * (events.skipped > 1)}"
            self.notify(f"{RunFolder(run_dir).events}: {lines} skipped", title="Replay incomplete", severity="warning")
        self.push_screen(RunScreen(config, events=events, launcher=follower, run_dir=run_dir))
        try:
            report = rundir.read_report(run_dir)
        except ReportError as err:
            self.notify(str(err), title="Cannot show the report", severity="error")
            return
        if report is not None:
            self.push_screen(ReportScreen(report, run_dir, config))

    @on(SetupScreen.Launch)
    def _launch(self, message: SetupScreen.Launch) -> None:
        self.push_screen(RunScreen(message.config, launcher=self.launcher_factory(message.config)))

    @on(RunScreen.ReportAvailable)
    def _report(self, message: RunScreen.ReportAvailable) -> None:
        from ens_tui import rundir

        try:
            report = rundir.read_report(message.run_dir)
        except ReportError as err:
            self.notify(str(err), title="Cannot show the report", severity="error")
            return
        if report is None:
            self.notify(f"no report.json in {message.run_dir}", severity="warning")
            return
        self.push_screen(ReportScreen(report, message.run_dir, message.config))

    @on(ReportScreen.Extend)
    def _extend(self, message: ReportScreen.Extend) -> None:
        """Grow a finished run: its dashboard, now following the new launch, takes the report's place."""
        plan = message.plan
        screen = RunScreen(plan.config, launcher=self.extend_factory(plan), run_dir=plan.run_dir)
        if isinstance(self.screen, ReportScreen):
            self.pop_screen()
        if isinstance(self.screen, RunScreen) and not self.screen.live:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def _on_stop_signal(self, signum: int) -> None:
        """SIGINT, SIGTERM, SIGHUP (a closed terminal, `tmux kill-session`): stop every rank, then exit 128 + signum."""
        if self._signalled is None:
            self._signalled = signum
            self.run_worker(self._stop_and_exit(signum), group="signal", exit_on_error=False)

    async def _stop_and_exit(self, signum: int) -> None:
        from ens_tui.launcher import STOP_SIGNALS

        run = self.live_run()
        if run is not None:
            await run.stop_run(STOP_SIGNALS[signum])
        self.exit(return_code=128 + signum)

    def live_run(self) -> RunScreen | None:
        """The run screen whose ranks are still training, if any."""
        return next((s for s in self.screen_stack if isinstance(s, RunScreen) and s.live), None)

    # ------------------------------------------------------------------ actions

    def action_new_run(self) -> None:
        """Back to the setup screen (a fresh one when the app started on a replay)."""
        if self.live_run() is not None:
            self.notify("a run is still training: stop it first (x)", severity="warning")
            return
        while len(self.screen_stack) > 2 and not isinstance(self.screen, SetupScreen):
            self.pop_screen()
        if not isinstance(self.screen, SetupScreen):
            self.switch_screen(self._setup_screen())

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """Every screenshot (the palette's too) goes into the shown run's folder, else the working directory, and
        the notice says where: Textual's default aims at ~/Downloads, which servers and containers lack."""
        folder = path or getattr(self.screen, "run_dir", None) or self.cwd or Path.cwd()
        try:
            saved = self.save_screenshot(filename, str(folder), time_format)
        except OSError as err:
            self.notify(f"cannot save a screenshot in {folder}: {err.strerror or err}", title="Screenshot",
                        severity="error")
            return None
        self.notify(f"saved {saved}", title="Screenshot")
        return None

    def action_help(self) -> None:
        """Show the keys of the current screen."""
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, f"keys — {type(self.screen).__name__.removesuffix('Screen')}"))

    async def action_quit(self) -> None:
        """Quit; while a run is training, ask first, and stop every rank before leaving."""
        run = self.live_run()
        if run is None:
            self.exit(0)
            return
        if isinstance(self.screen, ConfirmQuit):
            return

        async def answered(stop: bool | None) -> None:
            if stop:
                await run.stop_run()
                self.exit(0)

        await self.push_screen(ConfirmQuit(), answered)


def run_app(config_paths: list[Path], *, mpiexec: str | None, show: Path | None, runs: Path | None = None,
            overrides: dict[str, Any] | None = None) -> int:
    """The CLI's entry to the TUI (which has checked its arguments); returns the process exit status."""
    app = EnsTuiApp(config_paths, mpiexec=mpiexec, show=show, runs=runs, overrides=overrides)
    result: Any = app.run()
    return int(result or app.return_code or 0)
