"""A user watches `ens-tui --run-config …` without the dashboard: bars and lines drawn from the same RunState."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from engine import events as ev
from ens_tui.headless import HeadlessView, report_summary
from ens_tui.rundir import read_events, read_report
from tests.conftest import tiny_config

RECORDED_RUN = Path(__file__).parent / "tui" / "fixtures" / "recorded-run"


def view(tmp_path: Path, terminal: bool) -> tuple[HeadlessView, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=terminal, color_system=None)
    return HeadlessView(tiny_config(tmp_path), console), out


def bars(v: HeadlessView) -> str:
    """What the live display shows right now."""
    screen = Console(file=io.StringIO(), width=160, color_system=None)
    screen.print(v.progress)
    return screen.file.getvalue()  # type: ignore[attr-defined]


def hello(rank: int) -> ev.Hello:
    return ev.Hello(rank=rank, t=0.0, token="", size=2, host="h", pid=10 + rank, device="cpu", strategy="local")


def step(rank: int, member: int, t: float, rate: float) -> ev.Step:
    return ev.Step(rank=rank, member=member, t=t, epoch=0, step=3, steps=10, loss=0.5, samples_per_s=rate)


def test_the_total_throughput_forgets_a_rank_that_finished(tmp_path: Path) -> None:
    v, _ = view(tmp_path, terminal=True)
    for event in (hello(0), hello(1), ev.MemberStart(rank=0, member=0, device="cpu", t=0.1),
                  ev.MemberStart(rank=1, member=1, device="cpu", t=0.1), step(0, 0, 1.0, 1000.0),
                  step(1, 1, 1.0, 500.0)):
        v.handle(event)
    assert "1,500 samples/s in total" in bars(v)
    v.handle(ev.MemberDone(rank=1, member=1, t=2.0, seconds=2.0))
    v.handle(ev.Goodbye(rank=1, t=2.1))
    v.handle(step(0, 0, 3.0, 900.0))
    shown = bars(v)
    assert "900 samples/s in total" in shown, shown
    assert "1/2 members" in shown
    rank_1 = next(line for line in shown.splitlines() if line.startswith("rank 1"))
    assert "done" in rank_1 and "samples/s" not in rank_1


def test_off_a_terminal_a_replayed_run_prints_one_line_per_epoch_and_event(tmp_path: Path) -> None:
    v, out = view(tmp_path, terminal=False)
    events = read_events(RECORDED_RUN)
    for event in events:
        v.handle(event)
    text = out.getvalue()
    epochs = [e for e in events if isinstance(e, ev.Epoch)]
    assert sum(" · epoch " in line for line in text.splitlines()) == len(epochs)
    assert "rank 0: member 0 done in" in text and "report saved: accuracy" in text
    assert "samples/s" not in text, "the bars stay hidden off a terminal"
    # The state the bars are drawn from is the dashboard's: the same fold as a replay.
    assert v.state.done is not None and v.state.progress == 1.0 and v.state.total_samples_per_s == 0.0


def test_the_report_summary_reads_the_typed_report() -> None:
    report = read_report(RECORDED_RUN)
    assert report is not None
    screen = Console(file=io.StringIO(), width=160, color_system=None)
    screen.print(report_summary(report))
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    assert f"best member (#{report.best_member.member})" in text
    assert f"{report.mean_member.nll:.4f}" in text and "OOD noise: AUROC" in text
