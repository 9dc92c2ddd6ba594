"""Nothing lost: interrupt and resume, divergence, run folders that never collide, data that is refused early."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import events as ev
from engine.batches import LocalBatches
from engine.config import DataConfig, RunConfig
from engine.member import make_member
from engine.predictions import load_predictions
from engine.preflight import setup_problem
from engine.report import build_report
from engine.reporter import Reporter, Sink
from engine.run_folder import RunFolder
from engine.trainer import OneByOne, Trainer
from engine.vectorized import vectorized
from ens_tui.rundir import create_run_dir
from tests.conftest import REPO, assert_no_process_left, run_launcher, run_pids, tiny_config


@pytest.mark.mpi
def test_interrupted_run_resumes_to_the_same_report_as_a_straight_run(tmp_path: Path) -> None:
    sections = {"data": {"limit": 640}, "train": {"epochs": 3}}
    straight_events, straight = run_launcher(tiny_config(tmp_path / "straight", **sections))
    assert straight.status == "finished"

    config = tiny_config(tmp_path / "resumed", **sections)
    first_epochs: set[int] = set()

    async def stop_after_epoch_one(event: ev.Event, launcher) -> None:
        if isinstance(event, ev.Epoch) and event.epoch == 0:
            first_epochs.add(event.member)
            if first_epochs == {0, 1}:
                await launcher.stop()

    events, interrupted = run_launcher(config, on_event=stop_after_epoch_one)
    assert interrupted.status == "interrupted"
    assert_no_process_left(run_pids(events))
    run_dir = interrupted.run_dir
    folder = RunFolder(run_dir)
    assert json.loads(folder.info.read_text())["status"] == "interrupted"
    done_epochs = [torch.load(p, weights_only=True)["epoch"] for p in sorted(folder.checkpoints.glob("*.pt"))]
    assert min(done_epochs) < 3, "the interrupt came too late to test a resume"

    resumed_events, resumed = run_launcher(config, run_dir=run_dir)
    assert resumed.status == "finished", resumed.reason
    resumed_epochs = sorted((e.member, e.epoch) for e in resumed_events if isinstance(e, ev.Epoch))
    assert all(epoch >= 1 for _, epoch in resumed_epochs), "completed epochs are not trained again"
    ours = load_predictions(folder.predictions)["sets"]["test"]
    reference = load_predictions(RunFolder(straight.run_dir).predictions)["sets"]["test"]
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert json.loads(folder.info.read_text())["resumes"] == 1


def test_resume_refuses_what_is_not_a_resumable_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    finished = RunFolder(tmp_path / "finished")
    finished.path.mkdir()
    finished.config.write_text("")
    finished.info.write_text('{"status": "finished"}')
    before = {p: p.read_bytes() for p in finished.path.iterdir()}
    for target, expected in ((tmp_path, "not a run folder"), (finished.path, "already finished")):
        done = subprocess.run([sys.executable, "-m", "ens_tui", "--resume", str(target)], cwd=REPO, env=cli_env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in finished.path.iterdir()} == before, "a refused resume touches nothing"


class Recorder(Sink):
    """A sink that keeps frames in memory: the engine's own reporter, minus the network."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)


@pytest.mark.parametrize("stepper", [OneByOne, vectorized], ids=["one-by-one", "vectorized"])
def test_a_diverging_member_is_stopped_and_left_out_of_the_ensemble(tmp_path: Path, stepper) -> None:  # noqa: ANN001
    """The one loop, with either stepper: a NaN loss stops its member at the next step report, not at epoch end."""
    config = tiny_config(tmp_path, train={"members": 2, "epochs": 2})
    sink = Recorder()
    reporter = Reporter(sink, 0)
    reporter.wants_step = lambda member: True  # report (and so check) every step
    folder = RunFolder(tmp_path)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    healthy, broken = (make_member(config, (1, 28, 28), 10, i, torch.device("cpu"), folder) for i in (0, 1))
    with torch.no_grad():
        next(broken.model.parameters()).fill_(float("nan"))
    batches = LocalBatches(x, y, 16, config.seed, torch.device("cpu"))
    Trainer(config, batches, reporter, (x, y), folder, stepper).train([healthy, broken])
    assert broken.diverged and not healthy.diverged
    frames = [ev.decode(f) for f in sink.frames]
    broken_steps = [f for f in frames if isinstance(f, ev.Step) and f.member == 1]
    assert len(broken_steps) == 1, "a diverged member stops at the first step that shows it"
    healthy_steps = [f for f in frames if isinstance(f, ev.Step) and f.member == 0]
    assert len(healthy_steps) == 2 * batches.steps and all(f.fused == 1 for f in healthy_steps[1:])
    assert any(isinstance(f, ev.MemberDone) and f.member == 1 and f.diverged for f in frames)
    assert any(isinstance(f, ev.Log) and f.level == "warning" and "diverged" in f.message for f in frames)
    epochs_of_broken = [f.epoch for f in frames if isinstance(f, ev.Epoch) and f.member == 1]
    assert epochs_of_broken == [0], "a diverged member trains no further epochs"
    assert torch.load(folder.checkpoint(1), weights_only=True)["diverged"]
    payload = {
        "members": [0, 1], "diverged": [1], "labels": y.numpy(),
        "sets": {"test": np.stack([np.full((64, 10), 0.1), np.full((64, 10), np.nan)])},
    }
    assert build_report(payload).ensemble.nll == pytest.approx(np.log(10))


def test_two_runs_at_once_never_share_a_folder(tmp_path: Path) -> None:
    config = RunConfig(name="same", output_dir=str(tmp_path))

    async def many() -> list[Path]:
        return await asyncio.gather(*(asyncio.to_thread(create_run_dir, config) for _ in range(20)))

    folders = asyncio.run(many())
    assert len(set(folders)) == 20


def test_an_unusable_output_dir_is_refused_before_any_rank_starts(tmp_path: Path, cli_env: dict[str, str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "-m", "ens_tui", "--run-config", "configs/quick-digits.toml", "--output-dir",
         str(blocker / "runs")], cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "cannot create it" in done.stdout + done.stderr


def test_corrupt_or_truncated_idx_files_are_refused_before_launch(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, dims, size in (("train-images-idx3-ubyte", (3, 28, 28), 3 * 784), ("train-labels-idx1-ubyte", (3,), 3),
                             ("t10k-images-idx3-ubyte", (2, 28, 28), 2 * 784), ("t10k-labels-idx1-ubyte", (2,), 2)):
        header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
        (raw / name).write_bytes(header + bytes(size))
    config = RunConfig(data=DataConfig(dataset="mnist", root=str(tmp_path)))
    assert setup_problem(config) is None
    truncated = raw / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:100])
    assert "truncated or corrupt" in setup_problem(config)
    truncated.write_bytes(b"GIF89a" + bytes(2000))
    assert "not an idx file" in setup_problem(config)
