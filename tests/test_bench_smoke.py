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
from bench.tables import capacity_lines, phases_table, scale_table, scaling_table, seed_table, text_plot
from bench.timing import PHASES, run_phases, training_window
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
    assert window.busy == pytest.approx((3.0 + 3.5) / (2 * 4.5))  # two ranks, each training part of the window


def test_phases_cut_a_run_where_its_events_say_and_add_up_to_the_whole(tmp_path: Path) -> None:
    recorded = [ev.Hello(rank=0, t=101.0, token="", size=2, host="h", pid=1, device="cpu", strategy="local"),
                ev.Hello(rank=1, t=101.5, token="", size=2, host="h", pid=2, device="cpu", strategy="local"),
                ev.MemberStart(rank=0, t=103.0, member=0, device="cpu"),
                ev.MemberDone(rank=0, t=110.0, member=0, seconds=7.0),
                ev.PredictionsSaved(rank=0, t=111.0, path="p", members=[0]),
                ev.ReportSaved(rank=0, t=113.0, json_path="j", md_path="m", accuracy=0.9, nll=0.3, ece=0.01,
                               mutual_information=0.1)]
    folder = RunFolder(tmp_path)
    folder.events.write_text("".join(json.dumps(ev.to_dict(e)) + "\n" for e in recorded))
    folder.info.write_text(json.dumps({"started": 100.5, "ended": 113.5}))
    phases = run_phases(tmp_path, launched=100.0, exited=114.0)
    assert [phases[p] for p in PHASES] == pytest.approx([1.0, 2.0, 7.0, 3.0, 1.0])
    assert sum(phases[p] for p in PHASES) == pytest.approx(phases["total"]) == pytest.approx(14.0)
    assert phases["fixed"] == pytest.approx(3.0 + 4.0) and phases["scoring"] == pytest.approx(1.0)
    assert phases["cli start"] == pytest.approx(0.5) and phases["launcher exit"] == pytest.approx(0.5)


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
    phases = {p: 1.0 for p in PHASES} | {"fixed": 2.0, "scoring": 0.5, "total": 5.0}
    results["rows"][0].update(phases=phases, load=1.5)
    run = {"members": 32, "epochs": 1, "samples": 10000, "units": 1.6e6, "train_seconds": 12.0, "seconds": 40.0,
           "predicted": 38.0, "phases": phases, "model_samples_per_s": 25000.0, "load": [1.2, 1.0, 1.0]}
    results["capacity"] = {"one_member_samples_per_s": 13000.0, "one_member_runs": [13000.0], "cores": 2,
                           "capacity_samples_per_s": 26000.0, "model_samples_per_s": {"local": 25000.0},
                           "runs": {"local": [run]}, "setup": "CPU×2", "members": 32, "samples": 10000,
                           "best": "local", "ratio": 25000 / 26000, "target": 0.95, "met": True}
    results["scale"] = {"strategy": "local", "setup": "CPU×2", "fixed_s": 6.0, "seconds_per_unit": 8e-5,
                        "estimate_costs": {"eval_ratio": 0.4}, "runs": [run]}
    console = Console(width=200, record=True)
    console.print(seed_table(results))
    console.print(phases_table(results))
    console.print(capacity_lines(results))
    console.print(scale_table(results))
    console.print(scaling_table(results))
    text = console.export_text()
    assert "2.00×" in text and "skipped: no GPU here" in text and "1.1×" in text
    assert "launch→hello" in text and "96.2% of capacity" in text and "target ≥ 95%: met" in text
    assert "wall = 6.0 s + 80.0 µs × units" in text and "0.95" in text
    assert "members" in text_plot(results)


@pytest.mark.mpi
def test_bench_runs_a_row_end_to_end(tmp_path: Path) -> None:
    """Baseline + one sequential row through `ens-tui --run-config`, results written as JSON."""
    code = seed_workload.main(["--samples", "320", "--epochs", "1", "--repeats", "1", "--rows", "sequential", "--scaling", "",
                               "--no-memory", "--no-kernels", "--capacity", "0", "--no-scale", "--data-root",
                               str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["workload"]["data"] == "synthetic MNIST-shaped"
    assert results["baseline_seconds"] > 0
    ran = [r for r in results["rows"] if "seconds" in r]
    assert [(r["setup"], r["strategy"]) for r in ran] == [("CPU×2", "sequential")]
    assert 0 <= ran[0]["accuracy"] <= 1 and ran[0]["train_seconds"] > 0
    phases = ran[0]["phases"]
    assert phases["training"] > 0 and phases["fixed"] > 0 and len(ran[0]["loads"]) == 1
    assert sum(phases[p] for p in PHASES) == pytest.approx(phases["total"])
    assert len(results["baseline_loads"]) == 1 and "estimate_costs" not in results


@pytest.mark.mpi
def test_capacity_and_scale_parts_write_the_estimates_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The many-members part and the scale fit at toy sizes; the fit becomes this machine's cached estimate."""
    from engine import estimate

    monkeypatch.setenv("ENS_TUI_CACHE", str(tmp_path / "cache"))
    code = seed_workload.main(["--samples", "320", "--rows", "none", "--scaling", "", "--no-memory", "--no-kernels",
                               "--capacity", "2", "--capacity-samples", "320", "--capacity-strategies", "local",
                               "--capacity-repeats", "1", "--scale-grid", "1x1x320,2x1x320",
                               "--data-root", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["rows"] == []  # --rows none: no seed table
    cap = results["capacity"]
    assert cap["best"] == "local" and cap["one_member_samples_per_s"] > 0 and 0 < cap["ratio"]
    assert len(cap["one_member_runs"]) == len(cap["at_once_runs"]) == 2 and cap["at_once_samples_per_s"] > 0
    assert cap["runs"]["local"][0]["phases"]["training"] > 0
    scale = results["scale"]
    assert [(r["members"], r["samples"]) for r in scale["runs"]] == [(1, 320), (2, 320)]
    assert scale["seconds_per_unit"] > 0 and scale["fixed_s"] > 0
    costs = estimate.cached_costs()
    assert costs is not None and costs.sample_s == results["estimate_costs"]["sample_s"]
    assert path.name in costs.source
