"""`ens-tui --run-config x.toml`: the launcher with a Rich live display instead of the Textual app.

On a terminal: a progress bar per rank (member, epoch, loss, samples/s) under an overall bar with
ETA. Elsewhere (CI, pipes): one line per epoch and per notable event. Then the report summary.
"""

from __future__ import annotations

import asyncio
import signal
import sys
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
from ens_tui.launcher import Launcher, LaunchError
from ens_tui.run_state import Level, RankState, RunState
from ens_tui.rundir import read_report

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
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
        self._shown_member: dict[int, int | None] = {}
        for rank in range(config.parallel.world_size):
            self._rank_task(rank)

    def _rank_task(self, rank: int) -> TaskID:
        if rank not in self.ranks:
            self.ranks[rank] = self.progress.add_task(f"rank {rank}", total=1, info="starting")
            self._shown_member[rank] = None
        return self.ranks[rank]

    def handle(self, event: ev.Event) -> None:
        """Fold one event in, redraw the bars, and print what it says."""
        entries = self.state.apply(event)
        self._draw()
        if isinstance(event, ev.Epoch):
            val = f", val acc {event.val_accuracy:.3f}, val NLL {event.val_nll:.3f}" if event.val_accuracy is not None else ""
            self._line(f"rank {event.rank} · member {event.member} · epoch {event.epoch + 1}/{event.epochs} · "
                       f"train loss {event.train_loss:.4f}{val} · {event.seconds:.1f}s")
        if isinstance(event, ev.RunDone):
            return  # run_headless says how the run ended, with where to look
        for entry in entries:
            style = LEVEL_STYLE[entry.level]
            self.console.print(Text(f"{entry.source}: {entry.text}", style=style), highlight=False, soft_wrap=True)

    def _draw(self) -> None:
        """Every bar from the state: one per rank, the overall one with the live ranks' total throughput."""
        state = self.state
        done = state.members_done()
        self.progress.update(
            self.overall, completed=state.progress * self._total,
            info=f"{done}/{state.total_members} members · {state.total_samples_per_s:,.0f} samples/s in total",
        )
        for rank in state.ranks.values():
            self._draw_rank(rank)

    def _draw_rank(self, r: RankState) -> None:
        task = self._rank_task(r.rank)
        member = self.state.members.get(r.member) if r.member is not None else None
        if r.member != self._shown_member[r.rank]:
            self.progress.reset(task, total=1)  # a new member: its own elapsed time and ETA
            self._shown_member[r.rank] = r.member
        description = f"rank {r.rank} {r.device}" if r.device != "?" else f"rank {r.rank}"
        if r.status in ("done", "failed", "stopped"):
            info = f"{r.status} · {r.members_done} member(s) trained"
        elif member is None:
            info = r.status
        elif member.done:
            info = f"member {member.member} {'diverged' if member.diverged else 'done'}"
        else:
            epoch = f" · epoch {r.epoch + 1}" if r.epoch is not None else ""
            loss = f" · loss {r.loss:.3f}" if r.loss is not None else ""
            info = f"member {member.member}{epoch}{loss} · {r.samples_per_s:,.0f} samples/s"
        fraction = member.fraction if member is not None else 0.0
        self.progress.update(task, description=description, completed=fraction, info=info)

    def _line(self, text: str) -> None:
        if not self.live:
            self.console.print(text, highlight=False, soft_wrap=True)


def report_summary(report: Report) -> Table:
    """The report's headline: ensemble vs mean and best member, uncertainty, OOD."""
    table = Table(title="Uncertainty report (test split)", title_justify="left")
    for column in ("", "accuracy", "NLL", "Brier", "ECE"):
        table.add_column(column, justify="right" if column else "left")
    best = report.best_member
    rows: tuple[tuple[str, Scores | MemberScores], ...] = (
        ("ensemble", report.ensemble), ("mean member", report.mean_member), (f"best member (#{best.member})", best),
    )
    for label, row in rows:
        table.add_row(label, *(_score(getattr(row, k)) for k in ("accuracy", "nll", "brier", "ece")))
    u = report.uncertainty
    table.caption = (
        f"entropy {u.entropy:.4f} = aleatoric {u.aleatoric:.4f} + mutual information {u.mutual_information:.4f}"
        + "".join(f"\nOOD {name}: AUROC {o.auroc_entropy:.3f} by entropy, {o.auroc_mi:.3f} by MI"
                  for name, o in report.ood.items())
    )
    table.caption_justify = "left"
    return table


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


async def _run(launcher: Launcher, view: HeadlessView, console: Console) -> ev.RunDone | None:
    await launcher.start()
    console.print(f"run folder [bold]{launcher.run_dir}[/] · {launcher.config.parallel.world_size} rank(s) · "
                  f"strategy {launcher.config.parallel.strategy}")
    loop = asyncio.get_running_loop()
    stopping = False

    def interrupt() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            console.print("[yellow]interrupt: stopping every rank…[/]")
            loop.create_task(launcher.stop())

    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, interrupt)
    done: ev.RunDone | None = None
    try:
        with Live(Group(view.progress), console=console, refresh_per_second=8, transient=False) if view.live else nullcontext():
            async for event in launcher.events():
                view.handle(event)
                if isinstance(event, ev.RunDone):
                    done = event
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return done


def run_headless(config: RunConfig, *, mpiexec: str | None = None, console: Console | None = None,
                 bind: str = "127.0.0.1", hostfile: str | None = None, resume: Path | None = None) -> int:
    """Run one config to the end (or continue the run folder `resume`); returns the process exit code."""
    console = console or Console()
    launcher = Launcher(config, mpiexec=mpiexec, bind=bind, hostfile=hostfile, run_dir=resume,
                        progress=lambda line: console.print(escape(line), style="dim", highlight=False))
    view = HeadlessView(config, console)
    try:
        done = asyncio.run(_run(launcher, view, console))
    except LaunchError as err:
        print(f"ens-tui: {err}", file=sys.stderr)  # one line, never wrapped: scripts and CI read it
        return EXIT_USAGE
    if launcher.server is not None and launcher.server.dropped:
        dropped = ", ".join(f"{n} {why}" for why, n in launcher.server.dropped.items())
        console.print(f"[yellow]dropped frames on the progress socket: {dropped}[/]")
    if done is None or done.status == "failed":
        console.print(f"[bold red]run failed[/]: {escape(done.reason if done else 'no result')}", highlight=False)
        console.print(f"run folder: {launcher.run_dir}")
        return EXIT_FAILED
    if done.status == "interrupted":
        console.print(f"[yellow]run interrupted[/] after {done.seconds:.1f}s; folder: {launcher.run_dir}")
        return EXIT_INTERRUPTED
    folder = RunFolder(launcher.run_dir)
    try:
        report = read_report(folder.path)
    except ReportError as err:
        console.print(f"[bold red]ens-tui:[/] {escape(str(err))}", highlight=False)
        return EXIT_FAILED
    if report is not None:
        console.print(report_summary(report))
    page = f" · {folder.report_html.name} ({len(report.figures)} figures)" if report and report.figures else ""
    console.print(f"finished in {done.seconds:.1f}s · report: {folder.report_md}{page}", highlight=False, soft_wrap=True)
    return EXIT_OK
