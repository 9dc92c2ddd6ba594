"""Per-member control while a run trains: stop one member, restart a diverged one at a lower learning rate, and
stragglers that get no new members — real mpiexec ranks, the real launcher, requests through control.jsonl."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.control import ControlReader, RestartMember, StopMember, Stragglers, append
from engine.report_model import Report
from engine.run_folder import RunFolder
from ens_tui.stragglers import StragglerWatch
from tests.conftest import run_launcher, tiny_config

GRANT_S = 0.5
"""How long after a grant a slowed rank may announce the member it was given."""

JUMPY = '''
import torch
from torch import nn


class Jumpy(nn.Module):
    """A linear model that blows up (NaN logits) when one step moves a weight by more than 0.05: an unstable
    model that a lower learning rate tames."""

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)
        self.register_buffer("last", torch.zeros_like(self.fc.weight))
        self.seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(x.flatten(1))
        if self.training:
            jumped = self.seen and bool((self.fc.weight.detach() - self.last).abs().max() > 0.05)
            self.last.copy_(self.fc.weight.detach())
            self.seen = True
            if jumped:
                return logits * float("nan")
        return logits
'''


def test_a_stopped_member_ends_early_and_keeps_what_it_learned(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, train={"members": 2, "epochs": 60})

    async def stop_member_1(event: ev.Event, launcher: Any) -> None:
        if isinstance(event, ev.Step) and event.member == 1 and event.step > 0:
            launcher.control(StopMember(member=1))

    events, launcher = run_launcher(config, stop_member_1)
    done = {e.member: e for e in events if isinstance(e, ev.MemberDone)}
    epochs = {m: sum(1 for e in events if isinstance(e, ev.Epoch) and e.member == m) for m in (0, 1)}
    assert done[1].stopped and not done[1].diverged and 1 <= epochs[1] < 60, epochs
    assert not done[0].stopped and epochs[0] == 60
    report = Report.read(RunFolder(launcher.run_dir).report_json)
    rows = {r.member: r for r in report.members}
    assert rows[1].stopped and rows[1].accuracy is not None, "in the ensemble, marked"
    assert "| 1 (stopped by the user) |" in RunFolder(launcher.run_dir).report_md.read_text()
    assert [e.status for e in events if isinstance(e, ev.RunDone)] == ["finished"]


def test_a_diverged_member_restarts_from_its_initial_weights_at_a_lower_rate(tmp_path: Path) -> None:
    (tmp_path / "jumpy_models.py").write_text(JUMPY)
    config = tiny_config(tmp_path, model={"name": "jumpy_models:Jumpy", "path": [str(tmp_path)]},
                         train={"members": 4, "epochs": 3, "optimizer": "sgd", "lr": 1.0, "momentum": 0.0},
                         parallel={"strategy": "sequential"})
    asked: list[int] = []

    async def restart_first_diverged(event: ev.Event, launcher: Any) -> None:
        if isinstance(event, ev.MemberDone) and event.diverged and not asked:
            asked.append(event.member)
            launcher.control(RestartMember(member=event.member, lr_factor=0.001))

    events, launcher = run_launcher(config, restart_first_diverged)
    (member,) = asked
    starts = [e.member for e in events if isinstance(e, ev.MemberStart)]
    assert starts.count(member) == 2, starts
    finals = [e for e in events if isinstance(e, ev.MemberDone) and e.member == member]
    assert [e.diverged for e in finals] == [True, False], "diverged, then trained at 0.001 × lr"
    assert any(isinstance(e, ev.Log) and f"member {member} restarts from its initial weights at 0.001 × the "
               "learning rate (0.001)" in e.message for e in events)
    report = Report.read(RunFolder(launcher.run_dir).report_json)
    row = next(r for r in report.members if r.member == member)
    assert not row.diverged and row.lr_factor == pytest.approx(0.001) and row.accuracy is not None
    assert member not in report.diverged


def test_a_straggler_gets_no_new_member_while_flagged(tmp_path: Path) -> None:
    """From its first member on, rank 1 is held stopped nine tenths of the time (SIGSTOP/SIGCONT from a process of
    its own, so the test's own threads cannot loosen the grip): a slow device, for real."""
    config = tiny_config(tmp_path, data={"limit": 600}, train={"members": 12, "epochs": 8},
                         parallel={"straggler_after_s": 1.0}, report={"shift": False, "figures": False})
    holder: list[subprocess.Popen[bytes]] = []

    async def slow_rank_1(event: ev.Event, launcher: Any) -> None:
        if isinstance(event, ev.Hello) and event.rank == 1:
            holder.append(subprocess.Popen(  # waits for the rank's first member, then holds it
                ["sh", "-c", f"read go; while kill -STOP {event.pid} 2>/dev/null; do sleep 0.09; "
                             f"kill -CONT {event.pid}; sleep 0.01; done"], stdin=subprocess.PIPE))
        if isinstance(event, ev.MemberStart) and event.rank == 1 and holder and holder[0].stdin:
            holder[0].stdin.write(b"go\n")
            holder[0].stdin.close()
            holder[0].stdin = None

    try:
        events, launcher = run_launcher(config, slow_rank_1)
    finally:
        for proc in holder:
            proc.kill()
            proc.wait()
    flags = [e for e in events if isinstance(e, ev.Straggler)]
    assert flags and flags[0].rank == 1 and flags[0].flagged, flags
    assert flags[0].samples_per_s < 0.5 * flags[0].peers_median
    # While flagged (from the flag until it is cleared, if it is), rank 1 starts no member; one granted just
    # before the flag may start a moment after it (GRANT_S), its rank being slow.
    ends = [e.t for e in flags[1:] if not e.flagged] + [float("inf")]
    flagged = (flags[0].t + GRANT_S, ends[0])
    starts = [e for e in events if isinstance(e, ev.MemberStart)]
    assert not [e for e in starts if e.rank == 1 and flagged[0] < e.t < flagged[1]], (flags, starts)
    assert [e for e in starts if e.rank == 0 and flagged[0] < e.t < flagged[1]], "rank 0 took members meanwhile"
    report = Report.read(RunFolder(launcher.run_dir).report_json)
    assert report.members_count == 12
    assert [e.status for e in events if isinstance(e, ev.RunDone)] == ["finished"]


def test_the_straggler_watch_flags_a_rank_slow_for_long_enough_and_clears_it_once_fast_as_long() -> None:
    watch = StragglerWatch(after_s=30.0)
    for t in range(0, 31, 5):
        watch.step(0, 10_000.0, t)
        watch.step(1, 4_000.0, t)
        flags = watch.check(t)
        assert flags == [] if t < 30 else [f.rank for f in flags] == [1], (t, flags)
    assert watch.flagged == {1}
    for t, rate in ((33, 6_000.0), (36, 4_000.0), (40, 6_000.0), (55, 6_000.0)):  # one fast report is no recovery
        watch.step(0, 10_000.0, t)
        watch.step(1, rate, t)
        assert watch.check(t) == [] and watch.flagged == {1}, t
    watch.step(0, 10_000.0, 70)
    watch.step(1, 6_000.0, 70)
    (cleared,) = watch.check(70)
    assert cleared.rank == 1 and not cleared.flagged and cleared.seconds == 30 and watch.flagged == set()
    watch.step(1, 100.0, 80)
    assert watch.check(86) == [], "a rank with no peer training beside it is not judged"


def test_the_ranks_read_requests_once_and_in_order(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    reader = ControlReader(folder)
    assert reader.poll() == []
    append(folder, StopMember(member=2))
    append(folder, Stragglers(ranks=[1]))
    with open(folder.control, "ab") as fh:
        fh.write(b'{"action": "stop", "member": -1}\nnot json\n{"action": "restart", "member": 3, "lr_fac')
    assert [type(r) for r in reader.poll()] == [StopMember, Stragglers]
    assert (reader.stops, reader.stragglers) == ({2}, {1})
    with open(folder.control, "ab") as fh:
        fh.write(b'tor": 0.1}\n')
    assert reader.poll() == [RestartMember(member=3, lr_factor=0.1)] and reader.restarts == {3: 0.1}
    assert reader.poll() == []
    with pytest.raises(ValueError):
        RestartMember(member=3, lr_factor=1.5)
