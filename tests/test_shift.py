"""The test split under corruption: ten corruptions at five severities, and a run that scores them.

Corruptions are checked on real handwritten digits (scikit-learn's), as the report applies them.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch
import torchvision.transforms.v2.functional as TF
from mpi4py import MPI

from engine.config import CORRUPTIONS, DataConfig, parse_config
from engine.data import load_splits
from engine.predictions import load_predictions
from engine.rank import RankContext
from engine.report import main as rescore
from engine.reporter import Reporter, Sink
from engine.run_folder import RunFolder
from engine.shift import blur, corrupt, warp
from engine.strategies import sequential
from engine.worker import finish
from tests.conftest import REPO

SEVERITIES = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """128 test digits in [0, 1], (N, 1, 28, 28)."""
    splits = load_splits(DataConfig(dataset="digits"), seed=0)
    return (splits.x_test[:128] * splits.std + splits.mean).clamp(0, 1)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_each_corruption_grows_with_severity_and_repeats_for_a_seed(digits: torch.Tensor, corruption: str) -> None:
    change = []
    for severity in SEVERITIES:
        out = corrupt(digits, corruption, severity, seed=7)
        assert out.shape == digits.shape and out.dtype == digits.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, corrupt(digits, corruption, severity, seed=7)), "the same seed, the same images"
        change.append(float((out - digits).abs().mean()))
    assert change[0] > 0.005, "severity 1 already changes the images"
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), f"{corruption}: {change}"


@pytest.mark.parametrize("shape", [(6, 3, 20, 24), (6, 1, 8, 8)], ids=["rgb-20x24", "gray-8x8"])
def test_corruptions_take_any_channels_and_size(shape: tuple[int, ...]) -> None:
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for corruption in CORRUPTIONS:
        for severity in (1, 5):
            out = corrupt(images, corruption, severity, seed=0)
            assert out.shape == images.shape and out.dtype == torch.float64
            assert 0 <= out.min() and out.max() <= 1 and not torch.equal(out, images)


def test_random_corruptions_draw_anew_for_another_seed(digits: torch.Tensor) -> None:
    for corruption in ("gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "rotation", "translation",
                       "elastic"):
        assert not torch.equal(corrupt(digits, corruption, 3, seed=0), corrupt(digits, corruption, 3, seed=1))


@pytest.mark.parametrize(("shape", "sigma"), [((3, 3, 20, 24), 1.3), ((3, 1, 28, 28), 4.0), ((3, 1, 5, 9), 2.0)])
def test_the_matrix_blur_is_torchvisions_gaussian_blur(shape: tuple[int, ...], sigma: float) -> None:
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kernel = [min(2 * math.ceil(3 * sigma) + 1, 2 * side - 1) for side in (shape[3], shape[2])]  # [x, y]
    torch.testing.assert_close(blur(images, sigma), TF.gaussian_blur(images, kernel, [sigma, sigma]), rtol=0,
                               atol=1e-12)


def test_the_batched_elastic_warp_is_torchvisions_image_by_image() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 2, 12, 16, generator=gen, dtype=torch.float64)
    displacement = torch.randn(4, 12, 16, 2, generator=gen, dtype=torch.float64) * 0.1
    one_by_one = torch.cat([TF.elastic(images[i : i + 1], displacement[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(warp(images, displacement), one_by_one, rtol=0, atol=1e-12)


def test_an_unknown_corruption_or_severity_is_named() -> None:
    with pytest.raises(ValueError, match="unknown corruption 'fog'; allowed: gaussian_noise"):
        corrupt(torch.zeros(1, 1, 8, 8), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="severity 6"):
        corrupt(torch.zeros(1, 1, 8, 8), "contrast", 6, seed=0)


# --------------------------------------------------------------------------- a run that scores them


def train(tmp_path: Path, cli_env: dict[str, str], report: dict, strategy: str) -> RunFolder:
    """A tiny real run from a config file, as a user starts one: 2 members, 1 epoch, 300 digits, 2 ranks."""
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps({
        "data": {"dataset": "digits", "ood": ["noise"]},
        "train": {"members": 2, "epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.003},
        "parallel": {"strategy": strategy, "ranks": [{"count": 2, "device": "cpu"}]},
        "report": report,
    }))
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(config), "--limit", "300",
                           "--output-dir", str(tmp_path / "runs")], cwd=REPO, env=cli_env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = map(RunFolder, (tmp_path / "runs").iterdir())
    return folder


@pytest.mark.mpi
def test_a_run_saves_logits_on_validation_and_shifted_test_images(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Broadcast: only rank 0 reads data, yet rank 1's member is scored on the same corrupted images."""
    report = {"shift_size": 64, "corruptions": ["gaussian_noise", "rotation"], "severities": [2, 5]}
    folder = train(tmp_path, cli_env, report, "broadcast")
    pred = load_predictions(folder.predictions)
    n_test, n_val = len(pred["labels"]), len(pred["val_labels"])
    assert (n_test, n_val) == (75, 30), "--limit 300: a quarter for test, a tenth of train for validation"
    shifted = [f"shift:{c}:{s}" for c in report["corruptions"] for s in report["severities"]]
    assert list(pred["logits"]) == ["test", "val", "ood:noise", *shifted]
    sizes = {"test": n_test, "val": n_val, "ood:noise": n_test, **dict.fromkeys(shifted, 64)}
    for name, n in sizes.items():
        assert pred["logits"][name].shape == (2, n, 10) and pred["logits"][name].dtype == np.float32
        np.testing.assert_array_equal(pred["sets"][name], torch.softmax(torch.from_numpy(pred["logits"][name]), -1))
    index = pred["shift_index"]
    assert len(np.unique(index)) == 64 and index.max() < n_test
    np.testing.assert_array_equal(pred["shift_labels"], pred["labels"][index])
    for m in (0, 1):
        assert pred["sets"]["shift:rotation:5"][m].argmax(1).tolist() != pred["sets"]["test"][m][index].argmax(1).tolist()
    assert "sets" not in torch.load(folder.predictions, weights_only=True), "probabilities are kept as logits only"

    before = folder.report_json.read_text()
    assert rescore([str(folder.path)]) == 0
    assert folder.report_json.read_text() == before, "re-scoring the saved predictions gives the same report"


def test_without_shift_a_run_saves_no_shifted_sets(tmp_path: Path) -> None:
    """The rank's own loop and finish, in this process: `[report] shift = false` scores no corrupted images."""
    config = parse_config({"data": {"dataset": "digits", "limit": 300, "ood": ["noise"]},
                           "train": {"members": 2, "epochs": 1, "batch_size": 32},
                           "parallel": {"strategy": "sequential"}, "report": {"shift": False}}, "test")
    ctx = RankContext(MPI.COMM_SELF, config, torch.device("cpu"), Reporter(Sink(stream=io.BytesIO()), 0), tmp_path)
    finish(ctx, sequential.run(ctx))
    pred = load_predictions(RunFolder(tmp_path).predictions)
    assert list(pred["sets"]) == list(pred["logits"]) == ["test", "val", "ood:noise"]
    assert "shift_labels" not in pred and "shift_index" not in pred
