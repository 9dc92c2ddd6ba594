"""Datasets decoded once into in-memory tensors; batches are tensor slices, never per-sample transforms.

Every dataset yields the same `Splits`: normalised float32 images (N, C, H, W), int64 labels, and a
held-out test split that always exists (the dataset's own, or a seeded split for `digits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.config import DataConfig
from engine.preflight import FILE_DATASETS
from engine.seeding import derive_seed

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
    "cifar10": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


class DataError(RuntimeError):
    """A dataset that cannot be loaded; the message says which path and how to get it."""


@dataclass
class Splits:
    """Train / validation / test tensors of one dataset, plus what the report needs to name things."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: float
    std: float
    classes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def inputs(self) -> dict[str, int | float]:
        """How a raw image becomes a model input here (report.json's `inputs`, what predict repeats)."""
        c, h, w = self.shape
        return {"channels": c, "height": h, "width": w, "mean": self.mean, "std": self.std}


# --------------------------------------------------------------------------- raw loaders
# Each returns uint8/float images in [0, 1] as (N, C, H, W) float32 and int64 labels for train and test.


def _digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8×8 digits, scaled to 20×20 and centred on 28×28 like MNIST."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = torch.nn.functional.pad(images, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(derive_seed(seed, "digits-split")))
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def _synthetic(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded MNIST-shaped data with learnable structure: one random template per class plus noise."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "synthetic"))
    templates = torch.rand(10, 1, 28, 28, generator=gen)
    n_test = max(size // 6, 16)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=gen)
        noise = torch.rand(n, 1, 28, 28, generator=gen)
        return (0.6 * templates[labels] + 0.4 * noise).clamp_(0, 1), labels

    x_train, y_train = make(size)
    x_test, y_test = make(n_test)
    return x_train, y_train, x_test, y_test


def _torchvision(dataset: str, root: str, download: bool) -> tuple[torch.Tensor, ...]:
    """torchvision's own dataset class, read once; its decoded `.data` array becomes the tensor."""
    import torchvision.datasets as tvd

    files = FILE_DATASETS[dataset]
    folder = files.folder
    cls = getattr(tvd, files.torchvision_class)
    out: list[torch.Tensor] = []
    for train in (True, False):
        try:
            ds = cls(root=root, train=train, download=download)
        except RuntimeError as err:
            where = Path(root) / folder
            raise DataError(
                f"{dataset}: files not found under {where} ({err}). Set `download = true` in [data], or "
                f"place torchvision's files there (e.g. {where}/raw/*-ubyte), or point `root` at them."
            ) from None
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{dataset}: files under {Path(root) / folder} are unreadable or corrupt: {err}") from None
        data = torch.as_tensor(np.asarray(ds.data))
        if data.ndim == 3:
            data = data.unsqueeze(1)
        else:  # CIFAR keeps (N, H, W, C)
            data = data.permute(0, 3, 1, 2)
        out += [data.float().div_(255.0).contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)]
    return tuple(out)


def _raw(name: str, config: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if name == "digits":
        return _digits(seed)
    if name == "synthetic":
        return _synthetic(config.synthetic_size, seed)
    return _torchvision(name, config.root, config.download)  # type: ignore[return-value]


# --------------------------------------------------------------------------- public API


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load, normalise and split the configured dataset (the validation split is seeded)."""
    x_train, y_train, x_test, y_test = _raw(config.dataset, config, seed)
    if config.limit is not None:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
        x_test, y_test = x_test[: max(config.limit // 4, 16)], y_test[: max(config.limit // 4, 16)]
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(derive_seed(seed, "val-split")))
    n_val = int(round(len(order) * config.val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    x_val, y_val = x_train[val_idx], y_train[val_idx]
    x_train, y_train = x_train[train_idx], y_train[train_idx]
    mean, std = float(x_train.mean()), float(x_train.std())
    norm = lambda x: (x - mean) / std  # noqa: E731
    classes = CLASS_NAMES.get(config.dataset, [str(i) for i in range(10)])
    return Splits(
        config.dataset, norm(x_train).contiguous(), y_train, norm(x_val).contiguous(), y_val,
        norm(x_test).contiguous(), y_test, mean, std, classes,
    )


def load_ood(name: str, splits: Splits, config: DataConfig, seed: int) -> torch.Tensor:
    """An out-of-distribution input set shaped like the test split (normalised the same way)."""
    x01 = splits.x_test * splits.std + splits.mean
    if name == "noise":
        gen = torch.Generator().manual_seed(derive_seed(seed, "ood-noise"))
        shifted = torch.rand(x01.shape, generator=gen)
    elif name == "rotate":
        shifted = torch.rot90(x01, k=1, dims=(2, 3)) if x01.shape[2] == x01.shape[3] else x01.flip(2)
    elif name == "invert":
        shifted = 1.0 - x01
    else:
        _, _, shifted, _ = _raw(name, config, seed)
        if tuple(shifted.shape[1:]) != tuple(x01.shape[1:]):
            raise DataError(
                f"OOD set {name!r} has images of shape {tuple(shifted.shape[1:])}, "
                f"but {splits.name} has {tuple(x01.shape[1:])}"
            )
        shifted = shifted[: len(x01)]
    return ((shifted - splits.mean) / splits.std).contiguous()
