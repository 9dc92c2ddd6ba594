"""A user brings their own model: a `mymodels.py` beside the config, or a torchvision builder by name.

Every strategy trains it end to end through `ens-tui --run-config` on real ranks; a model that cannot work
is refused before launch (`--dry-run` runs the same probe) with one line and exit 2; a BatchNorm model
trained fused gives the members it gives trained one by one, running statistics included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.batches import LocalBatches
from engine.checkpoint import load_checkpoint
from engine.config import ModelConfig, RunConfig, load_config
from engine.layout import CHANNELS_LAST_ENV
from engine.member import make_member
from engine.models import ModelError, build_model, check_model
from engine.predictions import load_predictions
from engine.run_folder import RunFolder
from engine.trainer import OneByOne, Trainer
from engine.vectorized import StackedMembers, vectorized
from tests.conftest import REPO, tiny_config

MODELS_PY = '''
"""Small models of the kinds users bring: a Module class, a factory, one with BatchNorm."""
import torch
from torch import nn


class Net(nn.Module):
    """Takes the sizes by name; flattens with `view`, which channels-last activations refuse."""

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int], width: int = 4) -> None:
        super().__init__()
        self.width = width
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = nn.Linear(width * (image_size[0] // 2) * (image_size[1] // 2), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def make_net(num_classes: int, hidden: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class BNNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.out(torch.relu(self.bn1(self.fc(x))))
'''

BROKEN_PY = '''
from torch import nn

WIDTH = 3
shared = nn.Linear(64, 10)


def raising(num_classes: int) -> nn.Module:
    raise ValueError("width must be even")


def not_a_module(num_classes: int) -> str:
    return "resnet"


class SevenWay(nn.Module):
    """Ignores the dataset's classes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 7)

    def forward(self, x):
        return self.fc(x.flatten(1))


class CumulativeBN(nn.Module):
    """momentum=None: BatchNorm reads its batch count as a Python number, which vmap cannot batch."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4, momentum=None)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))
'''


def project(tmp_path: Path, **sections: Any) -> Path:
    """A user's folder: their models beside a config naming one of them; returns the config's path."""
    (tmp_path / "own_models.py").write_text(MODELS_PY)
    (tmp_path / "broken_models.py").write_text(BROKEN_PY)
    (tmp_path / "needs_missing.py").write_text("import not_installed_xyz\n")
    path = tmp_path / "run.toml"
    path.write_text(tiny_config(tmp_path, data={"limit": 160}, **sections).to_toml())
    return path


# --------------------------------------------------------------------------- every strategy trains it

WORKERS = 2
"""Runs (or dry runs) at once: one per core of a small machine."""
RUNS = {
    "sequential": ("own_models:Net", {"width": 6}, {"ranks": [{"count": 1, "device": "cpu"}]}),
    "local": ("own_models:make_net", {"hidden": 12}, {}),
    "broadcast": ("own_models:BNNet", {}, {}),
    # One rank, two members stacked: the BatchNorm trains inside vmap.
    "fused": ("own_models:BNNet", {}, {"ranks": [{"count": 1, "device": "cpu"}], "max_fused": 2}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cli_env_module: dict[str, str]) -> dict[str, tuple[str, Path]]:
    """One tiny headless run per strategy from the user's folder (the repo is the working directory), two at a
    time: much of a run is processes starting and waiting on each other."""

    def run(strategy: str) -> tuple[str, tuple[str, Path]]:
        name, kwargs, parallel = RUNS[strategy]
        tmp = tmp_path_factory.mktemp(strategy)
        # SGD: Adam's first steps would blow the float noise between strategies up to lr-sized steps.
        config = project(tmp, model={"name": name, "kwargs": kwargs}, parallel={"strategy": strategy, **parallel},
                         train={"optimizer": "sgd", "lr": 0.05})
        done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(config)], cwd=REPO,
                              env=cli_env_module, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (run_dir,) = (tmp / "runs").iterdir()
        return strategy, (done.stdout, run_dir)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(pool.map(run, RUNS))


@pytest.fixture(scope="module")
def cli_env_module() -> dict[str, str]:
    """`cli_env` for the module's shared runs, CPU only."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "140"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


@pytest.mark.mpi
@pytest.mark.parametrize("strategy", list(RUNS))
def test_every_strategy_trains_your_model_to_a_report(runs: dict, strategy: str) -> None:
    out, run_dir = runs[strategy]
    name, kwargs, _ = RUNS[strategy]
    folder = RunFolder(run_dir)
    assert folder.report_json.is_file(), out
    predictions = load_predictions(folder.predictions)
    assert predictions["members"] == [0, 1]
    assert np.isfinite(predictions["sets"]["test"]).all()
    config = load_config(folder.config)
    assert config.model.name == name and str(run_dir.parents[1]) in config.model.path, "resolved import path kept"
    for member in (0, 1):
        # What `predict` does: the architecture from the run's config, the weights from the checkpoint.
        model = build_model(config.model, (1, 28, 28), 10)
        model.load_state_dict(load_checkpoint(folder.checkpoint(member))["model"])
        if "width" in kwargs:
            assert model.width == kwargs["width"], "[model.kwargs] reach the constructor"
        if isinstance(model, torch.nn.Sequential):
            assert model[1].out_features == kwargs["hidden"]
        if name.endswith("BNNet"):
            assert model.bn.num_batches_tracked.item() == 5, "160 samples in batches of 32"
            assert model.bn.running_mean.abs().sum() > 0, "the checkpoint keeps trained running statistics"


@pytest.mark.mpi
def test_a_batchnorm_model_is_the_same_model_whether_broadcast_or_fused(runs: dict) -> None:
    """Two ranks one member each, or one rank two members stacked: the same members up to float noise."""
    events = [json.loads(line) for line in RunFolder(runs["fused"][1]).events.read_text().splitlines()]
    assert {e["fused"] for e in events if e["type"] == "step"} == {2}, "both members trained as one model"
    a = load_predictions(RunFolder(runs["broadcast"][1]).predictions)["sets"]["test"]
    b = load_predictions(RunFolder(runs["fused"][1]).predictions)["sets"]["test"]
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.abs(a[0] - a[1]).max() > 1e-3, "two different members"


# --------------------------------------------------------------------------- fused BatchNorm is exact


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Writes a module into tmp_path for an in-process import; sys.path and sys.modules are restored after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    written: list[str] = []

    def write(module: str, code: str) -> list[str]:
        (tmp_path / f"{module}.py").write_text(code)
        written.append(module)
        return [str(tmp_path)]

    yield write
    for module in written:
        sys.modules.pop(module, None)


def test_batchnorm_members_trained_fused_equal_members_trained_one_by_one(tmp_path: Path, float64: object,
                                                                          importable: Any) -> None:
    path = importable("own_models_f64", MODELS_PY)
    cfg = tiny_config(tmp_path, model={"name": "own_models_f64:BNNet", "path": path},
                      train={"members": 3, "epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
                             "momentum": 0.9, "weight_decay": 1e-3})
    shape, cpu = (1, 28, 28), torch.device("cpu")
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn((48, *shape), generator=gen), torch.randint(0, 10, (48,), generator=gen)
    batches = LocalBatches(x, y, 16, cfg.seed, cpu)
    val = (x[:16], y[:16])  # validation puts members in eval mode between epochs; training must leave it
    one = [make_member(cfg, shape, 10, i, cpu) for i in range(3)]
    many = [make_member(cfg, shape, 10, i, cpu) for i in range(3)]
    Trainer(cfg, batches, Quiet(), val, stepper=OneByOne).train(one)
    Trainer(cfg, batches, Quiet(), val, stepper=vectorized).train(many)
    for a, b in zip(one, many, strict=True):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and "bn.running_var" in sa and sa["bn.weight"].dtype == torch.float64
        for key in sa:
            torch.testing.assert_close(sa[key], sb[key], rtol=1e-9, atol=1e-12, msg=key)
        assert int(sb["bn1.num_batches_tracked"]) == 6
    assert not torch.equal(one[0].model.bn.running_mean, one[1].model.bn.running_mean)


class Quiet:
    """Hooks that want nothing reported."""

    def wants_step(self, member: int) -> bool:
        return False

    def on_member_start(self, member: int) -> None: ...

    def on_step(self, *args: object) -> None: ...

    def on_epoch_end(self, *args: object) -> None: ...

    def on_member_done(self, *args: object) -> None: ...


def test_a_model_that_flattens_with_view_keeps_the_default_layout(tmp_path: Path, importable: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Channels-last (the CPU default) would make Net's `view` fail: Net stays contiguous, BNNet goes channels-last."""
    monkeypatch.delenv(CHANNELS_LAST_ENV, raising=False)
    path = importable("own_models_layout", MODELS_PY)
    cpu, shape = torch.device("cpu"), (3, 8, 8)
    net, bn = (make_member(tiny_config(tmp_path, model={"name": f"own_models_layout:{name}", "path": path}),
                           shape, 10, 0, cpu).model for name in ("Net", "BNNet"))
    assert net.conv.weight.is_contiguous() and net(torch.zeros(4, *shape)).shape == (4, 10)
    assert bn.conv.weight.is_contiguous(memory_format=torch.channels_last) and not bn.conv.weight.is_contiguous()


DROPOUT_PY = '''
from torch import nn


def dropout_mlp(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, num_classes))
'''


def test_a_dropout_model_trains_fused_with_masks_of_its_own_per_member(tmp_path: Path, importable: Any) -> None:
    path = importable("drop_models", DROPOUT_PY)
    cfg = tiny_config(tmp_path, model={"name": "drop_models:dropout_mlp", "path": path},
                      parallel={"strategy": "fused", "max_fused": 2})
    shape, cpu = (1, 8, 8), torch.device("cpu")
    assert "not reproducible across strategies" in check_model(cfg, shape, 10)
    twins = StackedMembers([make_member(cfg, shape, 10, 0, cpu) for _ in range(2)], cfg.train)
    x = torch.randn(8, *shape)
    with torch.no_grad():
        out = twins.forward(x)
    assert not torch.equal(out[0], out[1]), "same weights, different dropout masks"
    assert torch.isfinite(twins.step(x, torch.zeros(8, dtype=torch.long))).all()


# --------------------------------------------------------------------------- torchvision builders


def test_a_torchvision_resnet18_takes_grey_digits(tmp_path: Path) -> None:
    """The first conv is rebuilt for one channel; 28×28 images pass (adaptive pooling); nothing is downloaded."""
    model = build_model(ModelConfig(name="torchvision:resnet18"), (1, 28, 28), 10)
    assert (model.conv1.in_channels, model.conv1.kernel_size, model.conv1.stride) == (1, (7, 7), (2, 2))
    assert model.conv1.bias is None and model.fc.out_features == 10
    config: RunConfig = tiny_config(tmp_path, model={"name": "torchvision:resnet18"})
    assert check_model(config, (1, 28, 28), 10) == ""


# --------------------------------------------------------------------------- refused before launch

BAD = {
    "module missing": ("no_such_module:Net", {}, "local", "no module named 'no_such_module' in "),
    "import fails inside": ("needs_missing:Net", {}, "local",
                            "importing needs_missing failed: ModuleNotFoundError: No module named 'not_installed_xyz'"),
    "attr missing": ("own_models:Nett", {}, "local", "own_models has no attribute 'Nett'; it defines: Net, "),
    "not a module": ("broken_models:WIDTH", {}, "local", "WIDTH is a value of type int, not a torch.nn.Module subclass"),
    "factory raises": ("broken_models:raising", {}, "local",
                       "raising(num_classes=10) raised ValueError: width must be even (broken_models.py:9)"),
    "returns no module": ("broken_models:not_a_module", {}, "local", "returned a str, not a torch.nn.Module"),
    "wrong output": ("broken_models:SevenWay", {}, "local",
                     "returns (2, 7) for 2 images in eval mode; expected (2, 10) logits"),
    "torchvision typo": ("torchvision:resnet81", {}, "local", "close matches: resnet18"),
    "not vmap-able": ("broken_models:CumulativeBN", {}, "fused", "cannot be trained by the fused strategy"),
}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory, cli_env_module: dict[str, str]) -> dict[str, Any]:
    """Every bad model's `--dry-run`, two at a time (each one's probe imports torch: seconds)."""
    env = {**cli_env_module, "OMP_NUM_THREADS": "1"}
    started = []
    for case, (name, kwargs, strategy, _) in BAD.items():
        tmp = tmp_path_factory.mktemp("bad")
        config = project(tmp, model={"name": name, "kwargs": kwargs}, parallel={"strategy": strategy})
        started.append((case, tmp, [sys.executable, "-m", "ens_tui", "--run-config", str(config), "--dry-run"]))

    def dry_run(case: str, tmp: Path, argv: list[str]) -> tuple[str, tuple[Path, str, str, int]]:
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        return case, (tmp, done.stdout, done.stderr, done.returncode)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(pool.map(lambda args: dry_run(*args), started))


@pytest.mark.parametrize("case", list(BAD))
def test_a_model_that_cannot_work_is_refused_in_one_line(dry_runs: dict, case: str) -> None:
    tmp, out, err, code = dry_runs[case]
    assert code == 2, out + err
    assert err.startswith(f"ens-tui: model {BAD[case][0]}") and err.count("\n") == 1, err
    assert BAD[case][3] in err
    assert "Traceback" not in out + err
    assert not (tmp / "runs").exists(), "nothing is created for a refused model"


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("broken_models:shared", {}, "shared is a Module instance, but every member needs fresh weights; name its "
                                     "class (Linear)"),
        ("own_models:Net", {"depth": 3}, "[model.kwargs] sets 'depth', which it does not take (its arguments: "
                                         "num_classes, in_channels, image_size, width)"),
        ("torchvision:resnet18", {"weights": "DEFAULT"}, "cannot set `weights` (nothing is downloaded)"),
        ("torchvision:fasterrcnn_resnet50_fpn", {}, "is not an image classifier"),
    ],
)
def test_more_models_that_cannot_work(tmp_path: Path, importable: Any, name: str, kwargs: dict,
                                      expected: str) -> None:
    """The same refusals, in-process (the dry runs above show how any of them reaches the user)."""
    module = name.split(":")[0]
    path = importable(module, BROKEN_PY if module == "broken_models" else MODELS_PY)
    with pytest.raises(ModelError, match=re.escape(expected)):
        build_model(ModelConfig(name=name, kwargs=kwargs, path=path), (1, 28, 28), 10)
