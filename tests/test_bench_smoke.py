"""The `bench` package at toy sizes: the baseline reads synthetic idx files through torchvision, the training
window comes out of events.jsonl, `ens-tui bench` reaches the harness, one row runs through the real launcher,
the JSON and tables come out. Timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import seed_workload
from bench.kernels import kernel_timings
from bench.mnist_files import has_mnist, synthetic_mnist
from bench.tables import scaling_table, seed_table, text_plot
from bench.timing import training_window
from engine import events as ev
from engine.run_folder import RunFolder


def test_synthetic_idx_files_read_back_through_torchvision(tmp_path: Path) -> None:
    from torchvision import datasets

    root = synthetic_mnist(tmp_path, 64)
    train = datasets.MNIST(str(root), train=True, download=False)
    test = datasets.MNIST(str(root), train=False, download=False)
    assert train.data.shape == (64, 28, 28) and train.data.dtype == torch.uint8
    assert len(test) == 16 and int(train.targets.max()) < 10
    assert has_mnist(root)


def test_training_window_spans_first_member_start_to_last_member_done(tmp_path: Path) -> None:
    recorded = [ev.MemberStart(rank=0, t=10.0, member=0, device="cpu"),
                ev.MemberStart(rank=1, t=11.0, member=1, device="cpu"),
                *(ev.Epoch(rank=r, t=12.0 + r, member=r, epoch=0, epochs=1, train_loss=0.5, seconds=1.0)
                  for r in (0, 1)),
                ev.MemberDone(rank=0, t=13.0, member=0, seconds=3.0),
                ev.MemberDone(rank=1, t=14.5, member=1, seconds=3.5)]
    RunFolder(tmp_path).events.write_text("".join(json.dumps(ev.to_dict(e)) + "\n" for e in recorded))
    window = training_window(tmp_path)
    assert window.seconds == pytest.approx(4.5) and window.member_epochs == 2
    assert window.member_epochs_per_s == pytest.approx(2 / 4.5)


def test_training_window_needs_a_finished_member(tmp_path: Path) -> None:
    RunFolder(tmp_path).events.write_text(json.dumps(ev.to_dict(ev.MemberStart(member=0, device="cpu"))) + "\n")
    with pytest.raises(ValueError, match="training window"):
        training_window(tmp_path)


def test_ens_tui_bench_runs_the_harness_in_its_own_process() -> None:
    done = subprocess.run([sys.executable, "-m", "ens_tui.cli", "bench", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: ens-tui bench" in done.stdout and "--quick" in done.stdout


def test_kernel_and_memory_parts_run() -> None:
    kernels = kernel_timings(1, compile_too=False)
    assert set(kernels) == {"eager NCHW", "eager channels-last"}
    probe = subprocess.run([sys.executable, "-m", "bench.memory", "1"], capture_output=True, text=True, check=True,
                           timeout=120)
    assert int(probe.stdout.split()[-1]) > 0  # peak RSS in bytes


def test_tables_render_skipped_rows_and_scaling() -> None:
    from rich.console import Console

    results = {
        "baseline_seconds": 10.0, "repeats": 1,
        "workload": {"members": 2, "epochs": 1, "samples": 64, "data": "synthetic"},
        "rows": [{"setup": "CPU×2", "strategy": "local", "seconds": 5.0, "accuracy": 0.5},
                 {"setup": "GPU×2", "strategy": "local", "skipped": "needs CUDA (2 rank(s) on cuda), but none"}],
        "scaling": {"members": [1, 2], "samples": 64, "runs": {"fused CPU×1": [
            {"model_samples_per_s": 100.0, "seconds": 3.0, "train_seconds": 1.0},
            {"model_samples_per_s": 180.0, "seconds": 3.5, "train_seconds": 1.1}]}},
    }
    console = Console(width=120, record=True)
    console.print(seed_table(results))
    console.print(scaling_table(results))
    text = console.export_text()
    assert "2.00×" in text and "skipped: no GPU here" in text and "1.1×" in text
    assert "members" in text_plot(results)


@pytest.mark.mpi
def test_bench_runs_a_row_end_to_end(tmp_path: Path) -> None:
    """Baseline + one sequential row through `ens-tui --run-config`, results written as JSON."""
    code = seed_workload.main(["--samples", "320", "--epochs", "1", "--repeats", "1", "--rows", "sequential", "--scaling", "",
                       "--no-memory", "--no-kernels", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["workload"]["data"] == "synthetic MNIST-shaped"
    assert results["baseline_seconds"] > 0
    ran = [r for r in results["rows"] if "seconds" in r]
    assert [(r["setup"], r["strategy"]) for r in ran] == [("CPU×2", "sequential")]
    assert 0 <= ran[0]["accuracy"] <= 1 and ran[0]["train_seconds"] > 0
