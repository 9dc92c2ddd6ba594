"""Checks that refuse a run before any rank starts: devices the machine lacks, data files that are missing.

Torch-free on purpose: the launcher and the setup screen call it, and the UI never imports torch.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config import FILE_KINDS, TORCHVISION, ZOO, RunConfig, split_source
from engine.utilization import nvml_device_count


@dataclass(frozen=True)
class FileDataset:
    """Where torchvision keeps one file-backed dataset under the data root (engine.data loads it from there)."""

    torchvision_class: str
    """The class in torchvision.datasets that reads it."""
    folder: str
    """Its folder under `root`."""
    probe: str
    """A file inside `folder` whose absence means the dataset is not there."""
    idx: bool
    """MNIST-style idx files under `folder/raw/`, checked for truncation before launch."""


FILE_DATASETS = {
    "mnist": FileDataset("MNIST", "MNIST", "raw/train-images-idx3-ubyte", idx=True),
    "fashion-mnist": FileDataset("FashionMNIST", "FashionMNIST", "raw/train-images-idx3-ubyte", idx=True),
    "kmnist": FileDataset("KMNIST", "KMNIST", "raw/train-images-idx3-ubyte", idx=True),
    "cifar10": FileDataset("CIFAR10", "cifar-10-batches-py", "data_batch_1", idx=False),
}
"""Every dataset read from files (the others, digits and synthetic, need none)."""
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_problem(path: Path) -> str | None:
    """Why an idx file (MNIST's format) is missing, corrupt or truncated, or None.

    The header says how many bytes must follow, so a short or padded file is caught before any rank
    starts instead of failing on every rank at once.
    """
    if not path.is_file():
        return f"{path} is missing"
    with open(path, "rb") as fh:
        head = fh.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 4:
            return f"{path} is not an idx file (bad header)"
        dims = struct.unpack(f">{head[3]}I", fh.read(4 * head[3]).ljust(4 * head[3], b"\0"))
    payload = 1
    for d in dims:
        payload *= d
    size = path.stat().st_size
    if size != 4 + 4 * len(dims) + payload:
        return f"{path} is truncated or corrupt ({size} bytes, its header promises {4 + 4 * len(dims) + payload})"
    return None


def device_problem(config: RunConfig) -> str | None:
    """Why this machine cannot give every rank its device, or None."""
    wanted = [d for d in config.parallel.rank_devices() if d.startswith("cuda")]
    if not wanted:
        return None
    count = nvml_device_count()
    if count == 0:
        return f"needs CUDA ({len(wanted)} rank(s) on {wanted[0]}), but no NVIDIA GPU was found on this machine"
    for device in wanted:
        if ":" in device and int(device.split(":")[1]) >= count:
            return f"needs {device}, but this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})"
    return None


def _own_data_problem(config: RunConfig) -> str | None:
    """Why an image folder or .npz file named by the config is not even there, or None (the probe reads them)."""
    data = config.data
    sources = [(data.dataset, data.root, "")] + [(*split_source(s), f"OOD set {s!r}: ") for s in data.ood]
    for kind, where, ood in sources:
        path = Path(where)
        if kind == "imagefolder" and not path.is_dir():
            what = "is a file" if path.exists() else "no such folder"
            layout = "a folder of images" if ood else path / "train/<class>/*.png|jpg|jpeg|bmp"
            return f"{ood}imagefolder: {path}: {what} (expected {layout})"
        if kind == "npz" and not path.is_file():
            what = "is a folder" if path.exists() else "no such file"
            return f"{ood}npz: {path}: {what} (expected an .npz file holding x_train and y_train)"
    return None


def data_problem(config: RunConfig) -> str | None:
    """Why the configured data (and file-backed OOD sets) cannot be read, or None."""
    own = _own_data_problem(config)
    if own or config.data.download:
        return own
    names = [config.data.dataset] + [n for n in config.data.ood if n in FILE_DATASETS]
    for name in names:
        if name not in FILE_DATASETS:
            continue
        files = FILE_DATASETS[name]
        where = Path(config.data.root) / files.folder
        if not (where / files.probe).exists():
            return (
                f"{name}: no data under {where} (looked for {files.probe}). Set `download = true` in [data], "
                f"unpack torchvision's files there, or point `root` (--data-root) at them"
            )
        if files.idx:
            for file in IDX_FILES:
                problem = idx_problem(where / "raw" / file)
                if problem:
                    return f"{name}: {problem}; re-download it (`download = true`) or replace the file"
    return None


def needs_probe(config: RunConfig) -> bool:
    """Whether the config names your own data or model, which only torch can check (`engine.probe`)."""
    sources = [config.data.dataset, *config.data.ood]
    custom = [s for s in sources if s in FILE_KINDS or split_source(s)[0] in FILE_KINDS or s.startswith(TORCHVISION)]
    return bool(custom) or config.model.name not in ZOO


def probe_problem(config: RunConfig, progress: Callable[[str], None] | None = None) -> str | None:
    """Run `engine.probe` on the config in a fresh process; its one-line verdict, or None when the run can start.

    `progress` receives the probe's progress lines (decoding an image folder, say) as they come.
    """
    proc = subprocess.Popen([sys.executable, "-m", "engine.probe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stderr is not None and proc.stdout is not None
    proc.stdin.write(config.to_toml())
    proc.stdin.close()
    tail: list[str] = []
    for line in proc.stderr:
        tail = (tail + [line.rstrip()])[-5:]
        if progress is not None and line.strip():
            progress(line.rstrip())
    out = proc.stdout.read().strip().splitlines()
    code = proc.wait()
    if code == 0:
        return None
    if code == 2 and out:
        return out[-1]
    return f"checking your data and model failed (exit {code}): {' | '.join(tail) or 'no output'}"


def setup_problem(config: RunConfig, probe: bool = False, progress: Callable[[str], None] | None = None) -> str | None:
    """The first reason this setup cannot run here, or None when it can.

    The torch-free checks are instant; `probe=True` also loads your own data and model in a fresh process
    (seconds), as a launch does.
    """
    return (device_problem(config) or data_problem(config)
            or (probe_problem(config, progress) if probe and needs_probe(config) else None))
