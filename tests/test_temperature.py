"""A run's fitted temperature is what `ens-tui predict`, `Ensemble` and the export answer with, unless switched off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.ensemble import Ensemble
from engine.export import main as export_main
from engine.predict import main as predict_main
from engine.run_folder import RunFolder

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180),
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]
TEMPERATURE = 2.5


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's trained run, copied, its report given a fitted temperature and thresholds at both scales."""
    copy = tmp_path_factory.mktemp("tempered") / "run"
    shutil.copytree(trained_run, copy)
    report = json.loads(RunFolder(copy).report_json.read_text())
    scores = {"nll": 0.5, "ece": 0.05, "brier": 0.3}
    report["thresholds"] = {"entropy": 1.25, "mutual_information": 0.125}
    report["calibration"] = {
        "ece": 0.05, "adaptive_ece": 0.05, "mce": 0.2, "classwise_ece": 0.01, "temperature": TEMPERATURE,
        "before": scores, "after": scores, "thresholds_before": {"entropy": 0.75, "mutual_information": 0.0625},
    }
    RunFolder(copy).report_json.write_text(json.dumps(report))
    return copy


def images() -> np.ndarray:
    return torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)).numpy()


def test_every_members_logits_are_divided_by_the_temperature(run: Path) -> None:
    scaled, trained = Ensemble.load(run), Ensemble.load(run, temperature=False)
    assert (scaled.temperature, trained.temperature) == (TEMPERATURE, 1.0)
    assert scaled.thresholds == {"entropy": 1.25, "mutual_information": 0.125}
    assert trained.thresholds == {"entropy": 0.75, "mutual_information": 0.0625}
    raw = trained.predict(images()).member_probs.astype(np.float64)
    # softmax(log p / T) = softmax(logits / T): a softmax does not see the per-input shift log p − logits.
    want = torch.softmax(torch.log(torch.as_tensor(raw)) / TEMPERATURE, dim=-1).numpy()
    np.testing.assert_allclose(scaled.predict(images()).member_probs, want, rtol=0, atol=1e-5)


def test_predict_scales_by_default_and_not_with_no_temperature(run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "six.npy", images())
    answers = {}
    for flag in ([], ["--no-temperature"]):
        assert predict_main([str(run), str(tmp_path / "six.npy"), "--format", "json", *flag]) == 0
        out, err = capsys.readouterr()
        answers[bool(flag)] = np.array([r["probabilities"] for r in json.loads(out)])
        assert (f"at temperature {TEMPERATURE:g}" in err) is not bool(flag)
    np.testing.assert_allclose(answers[False], Ensemble.load(run).predict(images()).probs, atol=1e-6)
    np.testing.assert_allclose(answers[True], Ensemble.load(run, temperature=False).predict(images()).probs, atol=1e-6)


def test_the_export_bakes_the_temperature_in(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ensemble.ts.pt"
    assert export_main([str(run), "--out", str(path)]) == 0
    assert f"temperature {TEMPERATURE:g} inside" in capsys.readouterr().out
    probs = torch.jit.load(str(path))(torch.from_numpy(images()))[0].numpy()
    np.testing.assert_allclose(probs, Ensemble.load(run).predict(images()).probs, rtol=0, atol=1e-5)
    assert not np.allclose(probs, Ensemble.load(run, temperature=False).predict(images()).probs, atol=1e-3)

    assert export_main([str(run), "--out", str(path), "--no-temperature"]) == 0
    assert "temperature" not in capsys.readouterr().out
    probs = torch.jit.load(str(path))(torch.from_numpy(images()))[0].numpy()
    np.testing.assert_allclose(probs, Ensemble.load(run, temperature=False).predict(images()).probs, atol=1e-5)
