"""A user exports a trained ensemble and runs it where only torch (or an ONNX runtime) is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.ensemble import Ensemble, EnsembleModule
from engine.export import ExportError, torchscript
from engine.export import main as export_main
from engine.run_folder import RunFolder
from tests.conftest import REPO

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180)]
TORCH_SITE = Path(torch.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(trained_run: Path) -> Path:
    """The session's trained run (tests/conftest.py): 3 members, 1 epoch, 300 digits."""
    return trained_run


@pytest.fixture(scope="module")
def ensemble(run: Path) -> Ensemble:
    return Ensemble.load(run)


def raw_images() -> dict[str, torch.Tensor]:
    """What files hold: grey digits at the run's size, and colour images of another size."""
    gen = torch.Generator().manual_seed(1)
    return {"grey": torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=gen),
            "colour": torch.randint(0, 256, (2, 3, 36, 40), dtype=torch.uint8, generator=gen)}


def assert_same_answers(got: dict[str, list[np.ndarray]], ensemble: Ensemble, images: dict[str, torch.Tensor]) -> None:
    """The export's (probabilities, entropy, MI) equal Ensemble.predict's within 1e-5, compared in float64."""
    for name, batch in images.items():
        want = ensemble.predict(batch)
        for g, w in zip(got[name], (want.probs, want.entropy, want.mutual_information), strict=True):
            np.testing.assert_allclose(np.asarray(g, dtype=np.float64), w.astype(np.float64), rtol=0, atol=1e-5)


def test_torchscript_export_runs_with_torch_alone(run: Path, ensemble: Ensemble, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ens_tui", "export", str(run), "--format", "torchscript"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = run / "ensemble.ts.pt"
    assert done.stdout.startswith(f"wrote {path} (TorchScript, scripted, 3 members; matches Ensemble.predict within")

    images = raw_images()
    torch.save(images, tmp_path / "images.pt")
    # -I -S: no PYTHONPATH, no site-packages .pth files (so not the editable ens-tui), only torch's own folder.
    script = f"""
import sys
sys.path.append({str(TORCH_SITE)!r})
import torch
try:
    import engine
    raise SystemExit("ens-tui's engine is importable here")
except ModuleNotFoundError:
    pass
model = torch.jit.load({str(path)!r})
assert model.class_names == {ensemble.class_names!r}, model.class_names
images = torch.load("images.pt")
torch.save({{k: [t.numpy() for t in model(v)] for k, v in images.items()}}, "answers.pt")
"""
    alone = subprocess.run([sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, env={"PATH": os.environ.get("PATH", "")})
    assert alone.returncode == 0, alone.stderr
    answers = torch.load(tmp_path / "answers.pt", weights_only=False)
    assert_same_answers(answers, ensemble, images)


class GeneratorSum(nn.Module):
    """A user's model TorchScript cannot compile (a generator expression) but can trace."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(layer(x) for layer in [self.inner])


class Untraceable(GeneratorSum):
    """One that neither scripts nor traces: its output is not a tensor."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"logits": sum(layer(x) for layer in [self.inner])}


def with_members(ensemble: Ensemble, wrap: type[nn.Module]) -> Ensemble:
    m = ensemble.module
    module = EnsembleModule([wrap(member) for member in m.members], m.channels, m.height, m.width, m.mean, m.std)
    return Ensemble(module, ensemble.members, ensemble.class_names, ensemble.thresholds, ensemble.device, ensemble.run)


def test_a_model_torchscript_cannot_compile_is_traced(ensemble: Ensemble) -> None:
    custom = with_members(ensemble, GeneratorSum)
    scripted, how = torchscript(custom)
    assert how.startswith("members traced")
    images = raw_images()
    assert_same_answers({k: [t.numpy() for t in scripted(v)] for k, v in images.items()}, custom, images)

    with pytest.raises(ExportError, match="scripting failed .* and so did tracing"):
        torchscript(with_members(ensemble, Untraceable))


def test_onnx_export_answers_as_the_ensemble_does(run: Path, ensemble: Ensemble, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason="the onnx extra is not installed (pip install 'ens-tui[onnx]')")
    import onnxruntime

    path = tmp_path / "ensemble.onnx"
    assert export_main([str(run), "--format", "onnx", "--out", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("use: input `images` uint8 (N, 1, 28, 28)")

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    grey = {"grey": raw_images()["grey"]}
    assert_same_answers({"grey": session.run(None, {"images": grey["grey"].numpy()})}, ensemble, grey)


def test_a_folder_that_is_no_finished_run_is_refused_in_one_line(run: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ens-tui export: {tmp_path}: not a run folder (expected config.toml and run.json inside)"]

    assert export_main([str(run), "--out", str(tmp_path / "no" / "such" / "folder.pt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ens-tui export: --out {tmp_path / 'no' / 'such' / 'folder.pt'}: folder {tmp_path / 'no' / 'such'} "
        "does not exist"]
    assert not RunFolder(run).path.joinpath("folder.pt").exists()

    with pytest.raises(SystemExit) as usage:
        export_main([str(run), "--format", "pickle"])
    assert usage.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("ens-tui export: argument --format: invalid choice: 'pickle'") and "onnx" in line
