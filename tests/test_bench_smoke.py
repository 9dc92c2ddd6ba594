"""`ens-tui bench` at toy sizes: the baseline reads synthetic idx files through torchvision, one row runs
through the real launcher, the JSON and tables come out. Timings are never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine import bench


def test_synthetic_idx_files_read_back_through_torchvision(tmp_path: Path) -> None:
    from torchvision import datasets

    root = bench.synthetic_mnist(tmp_path, 64)
    train = datasets.MNIST(str(root), train=True, download=False)
    test = datasets.MNIST(str(root), train=False, download=False)
    assert train.data.shape == (64, 28, 28) and train.data.dtype == torch.uint8
    assert len(test) == 16 and int(train.targets.max()) < 10
    assert bench.has_mnist(root)


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
    console.print(bench.seed_table(results))
    console.print(bench.scaling_table(results))
    text = console.export_text()
    assert "2.00×" in text and "skipped: no GPU here" in text and "1.1×" in text
    assert "members" in bench.text_plot(results)


@pytest.mark.mpi
def test_bench_runs_a_row_end_to_end(tmp_path: Path) -> None:
    """Baseline + one sequential row through `ens-tui --run-config`, results written as JSON."""
    code = bench.main(["--samples", "320", "--epochs", "1", "--repeats", "1", "--rows", "sequential", "--scaling", "",
                       "--no-memory", "--no-kernels", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["workload"]["data"] == "synthetic MNIST-shaped"
    assert results["baseline_seconds"] > 0
    ran = [r for r in results["rows"] if "seconds" in r]
    assert [(r["setup"], r["strategy"]) for r in ran] == [("CPU×2", "sequential")]
    assert 0 <= ran[0]["accuracy"] <= 1 and ran[0]["train_seconds"] > 0
