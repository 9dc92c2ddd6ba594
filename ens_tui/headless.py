"""`ens-tui --run-config x.toml`: the launcher with a Rich live display instead of the Textual app.

On a terminal: a progress bar per rank (member, epoch, loss, samples/s) under an overall bar with
ETA. Elsewhere (CI, pipes): one line per epoch and per notable event. Then the report summary.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from engine import events as ev
from engine.config import RunConfig
from engine.report_model import MemberScores, Report, ReportError, Scores
from engine.run_folder import RunFolder
from ens_tui.launcher import STOP_SIGNALS, Launcher, LaunchError
from ens_tui.run_state import Level, RankState, RunState, size_law_lines
from ens_tui.rundir import read_report
from ens_tui.widgets import _format as fmt

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

CAPTION_WIDTH = 78
"""The summary's caption lines that could run long are wrapped here: a log file or CI console is 80 wide."""
LEVEL_STYLE: dict[Level, str] = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


class HeadlessView:
    """Folds every event through a RunState (the dashboard's own fold) and draws Rich bars from it.

    Off a terminal the bars stay hidden and the log lines RunState produces, plus one line per epoch, are
    printed instead.
    """

    def __init__(self, config: RunConfig, console: Console) -> None:
        self.config, self.console = config, console
        self.state = RunState(config=config)
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"), BarColumn(bar_width=None),
            TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, expand=True,
        )
        self._total = config.train.members * config.train.epochs
        self.overall = self.progress.add_task("ensemble", total=self._total, info=f"{config.train.members} members")
        self.ranks: dict[int, TaskID] = {}
        self._shown_members: dict[int, list[int]] = {}
        for rank in range(config.parallel.world_size):
            self._rank_task(rank)

    def _rank_task(self, rank: int) -> TaskID:
        if rank not in self.ranks:
            self.ranks[rank] = self.progress.add_task(f"rank {rank}", total=1, info="starting")
            self._shown_members[rank] = []
        return self.ranks[rank]

    def handle(self, event: ev.Event) -> None:
        """Fold one event in, redraw the bars, and print what it says."""
        entries = self.state.apply(event)
        self._draw()
        if isinstance(event, ev.Epoch):
            val = (f", val acc {fmt.accuracy(event.val_accuracy)}, val NLL {fmt.loss(event.val_nll)}"
                   if event.val_accuracy is not None else "")
            self._line(f"rank {event.rank} · {fmt.member(event.member)} · epoch {fmt.position(event.epoch, event.epochs)}"
                       f" · train loss {fmt.loss(event.train_loss)}{val} · {event.seconds:.1f}s")
        if isinstance(event, ev.RunDone):
            return  # run_headless says how the run ended, with where to look
        for entry in entries:
            style = LEVEL_STYLE[entry.level]
            self.console.print(Text(f"{entry.source}: {entry.text}", style=style), highlight=False, soft_wrap=True)

    def _draw(self) -> None:
        """Every bar from the state: one per rank, the overall one with the live ranks' total throughput."""
        state = self.state
        done = state.members_done()
        ensemble = f" · val NLL {fmt.loss(state.ensemble.val_nll)}" if state.ensemble is not None else ""
        self.progress.update(
            self.overall, completed=state.progress * self._total,
            info=f"{done}/{state.total_members} members · {fmt.rate(state.total_samples_per_s)} samples/s in total"
                 f"{ensemble}",
        )
        for rank in state.ranks.values():
            self._draw_rank(rank)

    def _draw_rank(self, r: RankState) -> None:
        task = self._rank_task(r.rank)
        if r.current != self._shown_members[r.rank]:
            self.progress.reset(task, total=1)  # new members: their own elapsed time and ETA
            self._shown_members[r.rank] = list(r.current)
        members = [self.state.members[i] for i in r.current if i in self.state.members]
        description = f"rank {r.rank} {r.device}" if r.device != "?" else f"rank {r.rank}"
        if r.status in ("done", "failed", "stopped"):
            info = f"{r.status} · {r.members_done} member(s) trained"
        elif not members:
            info = r.status
        elif r.status == "scoring":
            diverged = [m.member for m in members if m.diverged]
            info = f"scoring {fmt.members(r.current)}" + (f" ({fmt.members(diverged)} diverged)" if diverged else "")
        else:
            epoch = f" · epoch {fmt.position(r.epoch, r.epochs)}" if r.epoch is not None else ""
            loss = f" · loss {fmt.loss(r.loss)}" if r.loss is not None else ""
            speed = f" · {fmt.rate(r.samples_per_s)} samples/s" if r.samples_per_s is not None else ""
            info = f"{fmt.members(r.current)}{epoch}{loss}{speed}"
        fraction = sum(m.fraction for m in members) / len(members) if members else 0.0
        self.progress.update(task, description=description, completed=fraction, info=info)

    def _line(self, text: str) -> None:
        if not self.live:
            self.console.print(text, highlight=False, soft_wrap=True)


def report_summary(report: Report) -> Table:
    """The report's headline: ensemble vs mean and best member, uncertainty, OOD, what more members are worth,
    and whether the run stopped handing out members early.

    The caption is longer than the table is wide; it never wraps (a terminal folds what is too long for it),
    so a number is never split from its name, in a terminal or a log file.
    """
    table = Table(title="Uncertainty report (test split)", title_justify="left")
    for column in ("", "accuracy", "NLL", "Brier", "ECE"):
        table.add_column(column, justify="right" if column else "left", no_wrap=True)
    best = report.best_member
    rows: tuple[tuple[str, Scores | MemberScores], ...] = (
        ("ensemble", report.ensemble), ("mean member", report.mean_member),
        (f"best member ({fmt.member(best.member)})", best),
    )
    for label, row in rows:
        table.add_row(label, fmt.accuracy(row.accuracy), *(fmt.score(getattr(row, k)) for k in ("nll", "brier", "ece")))
    u = report.uncertainty
    caption = Text(no_wrap=True, overflow="ignore")
    if (stop := report.stopped_early) is not None:
        said = textwrap.wrap(f"stopped early: {stop.members} members — {stop.reason}", CAPTION_WIDTH,
                             subsequent_indent="  ")
        caption.append("\n".join(said) + "\n", style="yellow")
    caption.append(
        f"entropy {fmt.score(u.entropy)} = aleatoric {fmt.score(u.aleatoric)} + mutual information "
        f"{fmt.score(u.mutual_information)}"
        + "".join(f"\nOOD {name}: AUROC {o.auroc_entropy:.3f} by entropy, {o.auroc_mi:.3f} by MI"
                  for name, o in report.ood.items())
    )
    if report.size_law is not None:
        caption.append("\nsize law: " + "\n  ".join(size_law_lines(report.size_law)))
    table.caption = caption
    table.caption_justify = "left"
    return table


async def _run(launcher: Launcher, view: HeadlessView, console: Console, caught: list[int]) -> ev.RunDone | None:
    """Start, stream, and stop every rank on SIGINT, SIGTERM or SIGHUP (recorded in `caught`)."""
    loop = asyncio.get_running_loop()

    def interrupt(signum: int) -> None:
        if caught:
            return
        caught.append(signum)
        if signum == signal.SIGHUP:
            console.quiet = True  # the terminal is gone: writing to it would only fail
        console.print("[yellow]interrupt: stopping every rank…[/]")
        loop.create_task(launcher.stop(STOP_SIGNALS[signum]))

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, interrupt, signum)
    done: ev.RunDone | None = None
    try:
        await launcher.start()
        console.print(f"run folder [bold]{escape(str(launcher.run_dir))}[/] · {launcher.config.parallel.world_size} "
                      f"rank(s) · strategy {launcher.config.parallel.strategy}", soft_wrap=True)
        if caught:  # a signal during the checks before launch
            await launcher.stop(STOP_SIGNALS[caught[0]])
        with Live(Group(view.progress), console=console, refresh_per_second=8, transient=False) if view.live else nullcontext():
            async for event in launcher.events():
                view.handle(event)
                if isinstance(event, ev.RunDone):
                    done = event
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return done


def run_headless(config: RunConfig, *, mpiexec: str | None = None, console: Console | None = None,
                 bind: str = "127.0.0.1", hostfile: str | None = None, resume: Path | None = None,
                 extend: bool = False) -> int:
    """Run one config to the end (or continue the run folder `resume`, or with `extend` grow that finished run
    to `config.train.members`); returns the process exit code."""
    console = console or Console()
    launcher = Launcher(config, mpiexec=mpiexec, bind=bind, hostfile=hostfile, run_dir=resume, extend=extend,
                        progress=lambda line: console.print(escape(line), style="dim", highlight=False, soft_wrap=True))
    view = HeadlessView(config, console)
    caught: list[int] = []
    try:
        done = asyncio.run(_run(launcher, view, console, caught))
    except LaunchError as err:
        print(f"ens-tui: {err}", file=sys.stderr)  # one line, never wrapped: scripts and CI read it
        return 128 + caught[0] if caught else EXIT_USAGE
    if launcher.server is not None and launcher.server.dropped:
        dropped = ", ".join(f"{n} {why}" for why, n in launcher.server.dropped.items())
        console.print(f"[yellow]dropped frames on the progress socket: {dropped}[/]", soft_wrap=True)
    if done is None or done.status == "failed":
        console.print(f"[bold red]run failed[/]: {escape(done.reason if done else 'no result')}", highlight=False,
                      soft_wrap=True)
        console.print(f"run folder: {escape(str(launcher.run_dir))}", soft_wrap=True)
        return EXIT_FAILED
    if done.status == "interrupted":
        console.print(f"[yellow]run interrupted[/] after {done.seconds:.1f}s ({escape(done.reason)}); "
                      f"continue it with: ens-tui --resume {launcher.run_dir}", highlight=False, soft_wrap=True)
        return 128 + caught[0] if caught else EXIT_INTERRUPTED
    folder = RunFolder(launcher.run_dir)
    try:
        report = read_report(folder.path)
    except ReportError as err:
        console.print(f"[bold red]ens-tui:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    if report is not None:
        console.print(report_summary(report))
    page = f" · {folder.report_html.name} ({len(report.figures)} figures)" if report and report.figures else ""
    console.print(f"finished in {done.seconds:.1f}s · report: {folder.report_md}{page}", highlight=False, soft_wrap=True)
    return EXIT_OK
