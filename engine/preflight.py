"""Checks that refuse a run before any rank starts: devices the machine lacks, data files that are missing,
data or ranks that cannot fit in memory.

Torch-free on purpose: the launcher and the setup screen call it, and the UI never imports torch.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

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


def missing_data_advice(download: bool, root: str | Path) -> str:
    """What to do about dataset files that are not under `root`: with `download = true` already set, asking for
    it again would not help, so the advice names what failed instead (the network, or the root folder)."""
    if download:
        return (f"`download = true` is set, so fetching them failed: check the network (or proxy) and that "
                f"{root} is writable, or unpack torchvision's files there, or point `root` (--data-root) at them")
    return "Set `download = true` in [data], unpack torchvision's files there, or point `root` (--data-root) at them"


def data_problem(config: RunConfig) -> str | None:
    """Why the configured data (and file-backed OOD sets) cannot be read, or None.

    With `download = true` a missing dataset is not a problem (torchvision fetches it); a corrupt idx file still
    is, since torchvision sees the file there and does not fetch it again.
    """
    own = _own_data_problem(config)
    if own:
        return own
    download = config.data.download
    names = [config.data.dataset] + [n for n in config.data.ood if n in FILE_DATASETS]
    for name in names:
        if name not in FILE_DATASETS:
            continue
        files = FILE_DATASETS[name]
        where = Path(config.data.root) / files.folder
        if not (where / files.probe).exists():
            if download:
                continue
            return f"{name}: no data under {where} (looked for {files.probe}). {missing_data_advice(False, where)}"
        if files.idx:
            for file in IDX_FILES:
                path = where / "raw" / file
                if download and not path.exists():
                    continue  # fetched with the rest
                problem = idx_problem(path)
                if problem:
                    fix = ("delete it so that `download = true` fetches it again, or replace it" if download
                           else "re-download it (`download = true`) or replace the file")
                    return f"{name}: {problem}; {fix}"
    return None


def needs_probe(config: RunConfig) -> bool:
    """Whether the config names your own data or model, which only torch can check (`engine.probe`)."""
    sources = [config.data.dataset, *config.data.ood]
    custom = [s for s in sources if s in FILE_KINDS or split_source(s)[0] in FILE_KINDS or s.startswith(TORCHVISION)]
    return bool(custom) or config.model.name not in ZOO


RANK_BYTES = 400 * 2**20
"""A rank's memory before any data, at least: Python with torch imported measured 500 MiB RSS (a whole rank
about 680), so an estimate built on this refuses only what clearly cannot fit."""
BUILTIN_DATA: dict[str, tuple[int, tuple[int, int, int]]] = {
    "digits": (1797, (1, 28, 28)),
    "mnist": (70000, (1, 28, 28)),
    "fashion-mnist": (70000, (1, 28, 28)),
    "kmnist": (70000, (1, 28, 28)),
    "cifar10": (60000, (3, 32, 32)),
}
"""Images (train and test) and shape (C, H, W) of each named dataset as engine.data loads it (digits padded to
MNIST's 28×28); synthetic's count is the config's."""
FLOAT32 = 4


def builtin_data_bytes(config: RunConfig) -> int | None:
    """Float32 bytes of the images one rank loads for a named dataset, at least; None for your own data.

    engine.data reads the whole set before `limit` picks from it, and resizes after, so the larger of the two
    is held at once.
    """
    data = config.data
    if data.dataset == "synthetic":
        count, shape = data.synthetic_size + max(data.synthetic_size // 6, 16), (1, 28, 28)
    elif data.dataset in BUILTIN_DATA:
        count, shape = BUILTIN_DATA[data.dataset]
    else:
        return None
    kept = count if data.limit is None else min(count, data.limit + max(data.limit // 4, 16))
    height, width = data.image_size or shape[1:]
    return FLOAT32 * max(count * math.prod(shape), kept * (data.channels or shape[0]) * height * width)


def probed_data_bytes(found: dict[str, Any]) -> int:
    """Float32 bytes of the images the probe loaded (`engine.probe`'s verdict: split sizes and shape)."""
    return FLOAT32 * (found["train"] + found["val"] + found["test"]) * math.prod(found["shape"])


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f}".removesuffix(".0") + f" {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def memory_problem(config: RunConfig, data_bytes: int | None, available: int | None = None) -> str | None:
    """Why the ranks cannot fit in this machine's memory (each its own Python with torch, and its copy of the
    data; broadcast's rank 0 alone holds it), or None; `available` defaults to what the OS reports."""
    available = psutil.virtual_memory().available if available is None else available
    ranks = config.parallel.world_size
    holders = 1 if config.parallel.strategy == "broadcast" else ranks
    data = data_bytes or 0
    need = ranks * RANK_BYTES + holders * data
    if need <= available:
        return None
    parts = f"{ranks} rank(s) × {_size(RANK_BYTES)} for Python and torch"
    if data:
        parts += f" + {holders} × {_size(data)} of {config.data.dataset} images as float32"
    if RANK_BYTES + data > available:
        fix = ("lower data.synthetic_size" if config.data.dataset == "synthetic"
               else "set data.limit or a smaller data.image_size")
    else:
        fit = available // (RANK_BYTES + data) if holders == ranks else (available - data) // RANK_BYTES
        fix = f"use at most {fit} rank(s) here"
    return f"needs at least {_size(need)} of memory ({parts}), but {_size(available)} is available; {fix}"


def _probe(config: RunConfig, progress: Callable[[str], None] | None) -> tuple[str | None, dict[str, Any] | None]:
    """Run `engine.probe` on the config in a fresh process: its one-line verdict, or None and what it loaded.

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
        try:
            return None, json.loads(out[-1])
        except (IndexError, ValueError):
            return None, None
    if code == 2 and out:
        return out[-1], None
    return f"checking your data and model failed (exit {code}): {' | '.join(tail) or 'no output'}", None


def probe_problem(config: RunConfig, progress: Callable[[str], None] | None = None) -> str | None:
    """Run `engine.probe` on the config in a fresh process; its one-line verdict, or None when the run can start."""
    return _probe(config, progress)[0]


def oversubscription(config: RunConfig, hostfile: str | None = None) -> str | None:
    """Why this machine's cores would be shared by more threads than they can run at once, or None.

    Not a refusal: oversubscribed ranks still train, only slower (a launch says so in its log too).
    """
    if hostfile is not None or all(device != "cpu" for device in config.parallel.rank_devices()):
        return None
    p, cores = config.parallel, psutil.cpu_count() or 1
    threads = p.world_size * p.threads_per_rank
    if threads <= cores:
        return None
    return (f"{p.world_size} rank(s) × {p.threads_per_rank} thread(s) on {cores} core(s) oversubscribe the CPU: "
            f"ranks will take turns; {max(cores // p.threads_per_rank, 1)} rank(s) already use every core")


def setup_problem(config: RunConfig, probe: bool = False, progress: Callable[[str], None] | None = None,
                  hostfile: str | None = None) -> str | None:
    """The first reason this setup cannot run here, or None when it can.

    The torch-free checks are instant; `probe=True` also loads your own data and model in a fresh process
    (seconds), as a launch does. With a `hostfile` the ranks spread over machines whose memory this one cannot
    see, so memory is not checked.
    """
    problem = device_problem(config) or data_problem(config)
    if problem:
        return problem
    local = hostfile is None
    if local and (problem := memory_problem(config, builtin_data_bytes(config))):
        return problem
    if not (probe and needs_probe(config)):
        return None
    problem, found = _probe(config, progress)
    if problem or not local or found is None:
        return problem
    return memory_problem(config, probed_data_bytes(found))
