"""A user watches `ens-tui --run-config …` without the dashboard: bars and lines drawn from the same RunState."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from engine import events as ev
from ens_tui.headless import HeadlessView, report_summary
from ens_tui.rundir import read_events, read_report
from tests.conftest import tiny_config

RECORDED_RUN = Path(__file__).parent / "tui" / "fixtures" / "recorded-run"
BROADCAST_RUN = Path(__file__).parent / "tui" / "fixtures" / "broadcast-under-load"


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
    assert "1.5k samples/s in total" in bars(v)
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
    assert "rank 0: m0 done in" in text and "report saved: accuracy" in text
    assert "samples/s" not in text, "the bars stay hidden off a terminal"
    # The state the bars are drawn from is the dashboard's: the same fold as a replay.
    assert v.state.done is not None and v.state.progress == 1.0 and v.state.total_samples_per_s == 0.0


def test_the_report_summary_reads_the_typed_report() -> None:
    report = read_report(RECORDED_RUN)
    assert report is not None
    screen = Console(file=io.StringIO(), width=160, color_system=None)
    screen.print(report_summary(report))
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    assert f"best member (m{report.best_member.member})" in text
    assert f"{report.mean_member.nll:.4f}" in text and "OOD noise: AUROC" in text


def test_a_member_in_its_last_epoch_reads_that_epoch_on_its_bar(tmp_path: Path) -> None:
    """An epoch shorter than the step-report interval ends without a step report of its own: the bar still
    names the epoch that ended, counted from 1, as the dashboard does."""
    out = io.StringIO()
    v = HeadlessView(tiny_config(tmp_path, train={"epochs": 8}), Console(file=out, width=160, force_terminal=True))
    for event in (hello(0), ev.MemberStart(rank=0, member=0, device="cpu", t=0.1),
                  ev.Step(rank=0, member=0, t=0.2, epoch=6, step=40, steps=50, loss=0.5, samples_per_s=900.0),
                  ev.Epoch(rank=0, member=0, t=0.3, epoch=6, epochs=8, train_loss=0.5, seconds=0.1),
                  ev.Epoch(rank=0, member=0, t=0.4, epoch=7, epochs=8, train_loss=0.4, seconds=0.1)):
        v.handle(event)
    rank_0 = next(line for line in bars(v).splitlines() if line.startswith("rank 0"))
    assert "100%" in rank_0 and "m0 · epoch 8/8" in rank_0, rank_0


def test_the_headless_lines_name_members_epochs_and_accuracies_as_the_dashboard(tmp_path: Path) -> None:
    v, out = view(tmp_path, terminal=False)
    for event in read_events(RECORDED_RUN):
        v.handle(event)
    report = read_report(RECORDED_RUN)
    assert report is not None
    v.console.print(report_summary(report))
    text = out.getvalue()
    assert "rank 0 · m0 · epoch 1/3 · train loss " in text and "epoch 3/3" in text and "epoch 0/" not in text
    assert re.search(r"val acc \d+\.\d\d%", text) and f"│ {report.ensemble.accuracy:.2%} │" in text.replace("  ", "")
    assert "#" not in text and "member 0" not in text and f"(m{report.best_member.member})" in text


def test_piped_at_80_columns_every_event_is_one_whole_line(tmp_path: Path) -> None:
    """Off a terminal Rich assumes 80 columns: no line may wrap there, so logs stay greppable."""
    out = io.StringIO()
    v = HeadlessView(tiny_config(tmp_path), Console(file=out, width=80, force_terminal=False, color_system=None))
    events = read_events(BROADCAST_RUN)
    path = tmp_path / ("deeply-nested-" * 6) / "checkpoints" / "m0.pt"
    for event in [*events[:-1], ev.Log(rank=0, t=events[-1].t, level="warning", message=f"cannot write {path}"),
                  events[-1]]:
        v.handle(event)
    report = read_report(RECORDED_RUN)
    assert report is not None
    v.console.print(report_summary(report))
    lines = out.getvalue().splitlines()
    epoch_lines = [line for line in lines if " · epoch " in line]
    assert len(epoch_lines) == sum(isinstance(e, ev.Epoch) for e in events)
    assert all(re.fullmatch(r"rank \d · m\d · epoch \d/\d · train loss [\d.]+, val acc [\d.]+%, val NLL [\d.]+ · "
                            r"[\d.]+s", line) for line in epoch_lines), epoch_lines
    assert f"rank 0: cannot write {path}" in lines
    u = report.uncertainty
    assert any(line.startswith("entropy ") and line.endswith(f"mutual information {u.mutual_information:.4f}")
               for line in lines), lines
    assert not any(re.fullmatch(r"\s*[\d.,%s]+\s*", line) for line in lines), "a number wrapped onto its own line"
