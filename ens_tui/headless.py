"""`ens-tui --run-config x.toml`: the launcher with a Rich live display instead of the Textual app.

On a terminal: a progress bar per rank (member, epoch, loss, samples/s) under an overall bar with
ETA. Elsewhere (CI, pipes): one line per epoch and per notable event. Then the report summary.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from engine import events as ev
from engine.config import RunConfig
from ens_tui.launcher import Launcher, LaunchError
from ens_tui.rundir import read_report

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class HeadlessView:
    """Turns events into Rich progress bars (or log lines when not on a terminal)."""

    def __init__(self, config: RunConfig, console: Console) -> None:
        self.config, self.console = config, console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"), BarColumn(bar_width=None),
            TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, expand=True,
        )
        total = config.train.members * config.train.epochs
        self.overall = self.progress.add_task("ensemble", total=total, info=f"{config.train.members} members")
        self.ranks: dict[int, TaskID] = {}
        for rank in range(config.parallel.world_size):
            self._rank_task(rank)
        self.rates: dict[int, float] = {}

    def _rank_task(self, rank: int) -> TaskID:
        if rank not in self.ranks:
            self.ranks[rank] = self.progress.add_task(f"rank {rank}", total=1, info="starting")
        return self.ranks[rank]

    def handle(self, event: ev.Event) -> None:
        rank = event.rank
        if isinstance(event, ev.Hello):
            self.progress.update(self._rank_task(event.rank or 0), description=f"rank {event.rank} {event.device}")
        elif isinstance(event, ev.Step) and rank is not None:
            self.rates[rank] = event.samples_per_s
            total_rate = sum(self.rates.values())
            self.progress.update(
                self._rank_task(rank), total=event.steps, completed=event.step + 1,
                info=f"member {event.member} · epoch {event.epoch + 1} · loss {event.loss:.3f} · "
                     f"{event.samples_per_s:,.0f} samples/s",
            )
            self.progress.update(self.overall, info=f"{total_rate:,.0f} samples/s in total")
        elif isinstance(event, ev.Epoch):
            self.progress.advance(self.overall)
            if rank is not None:
                self.progress.update(self._rank_task(rank), total=1, completed=1)
            val = f", val acc {event.val_accuracy:.3f}, val NLL {event.val_nll:.3f}" if event.val_accuracy is not None else ""
            self._line(f"rank {rank} · member {event.member} · epoch {event.epoch + 1}/{event.epochs} · "
                       f"train loss {event.train_loss:.4f}{val} · {event.seconds:.1f}s")
        elif isinstance(event, ev.MemberDone):
            state = "[red]diverged[/]" if event.diverged else "done"
            self._line(f"rank {rank} · member {event.member} {state} in {event.seconds:.1f}s")
        elif isinstance(event, ev.Log):
            style = {"warning": "yellow", "error": "red"}.get(event.level, "dim")
            self.console.print(f"[{style}]rank {rank}: {escape(event.message)}[/]")
        elif isinstance(event, ev.Error):
            where = f"rank {rank}" if rank is not None else "launcher"
            self.console.print(f"[bold red]{where} failed: {escape(event.message)}[/]")
            if event.traceback:
                self.console.print(event.traceback.rstrip(), style="red", markup=False, highlight=False)

    def _line(self, text: str) -> None:
        if not self.live:
            self.console.print(text, highlight=False, soft_wrap=True)


def report_summary(report: dict[str, Any]) -> Table:
    """The report's headline: ensemble vs mean and best member, uncertainty, OOD."""
    table = Table(title="Uncertainty report (test split)", title_justify="left")
    for column in ("", "accuracy", "NLL", "Brier", "ECE"):
        table.add_column(column, justify="right" if column else "left")
    best = report["best_member"]
    for label, row in (("ensemble", report["ensemble"]), ("mean member", report["mean_member"]),
                       (f"best member (#{best['member']})", best)):
        table.add_row(label, *(f"{row[k]:.4f}" for k in ("accuracy", "nll", "brier", "ece")))
    u = report["uncertainty"]
    table.caption = (
        f"entropy {u['entropy']:.4f} = aleatoric {u['aleatoric']:.4f} + mutual information {u['mutual_information']:.4f}"
        + "".join(f"\nOOD {name}: AUROC {o['auroc_entropy']:.3f} by entropy, {o['auroc_mi']:.3f} by MI"
                  for name, o in report["ood"].items())
    )
    table.caption_justify = "left"
    return table


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
    launcher = Launcher(config, mpiexec=mpiexec, bind=bind, hostfile=hostfile, run_dir=resume)
    view = HeadlessView(config, console)
    try:
        done = asyncio.run(_run(launcher, view, console))
    except LaunchError as err:
        console.print(f"[bold red]ens-tui:[/] {escape(str(err))}", highlight=False)
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
    report = read_report(launcher.run_dir)
    if report is not None:
        console.print(report_summary(report))
    console.print(f"finished in {done.seconds:.1f}s · report: {launcher.run_dir / 'report.md'}", highlight=False)
    return EXIT_OK
