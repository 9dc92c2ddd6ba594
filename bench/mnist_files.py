"""MNIST as torchvision reads it from disk: find it, or write seeded MNIST-shaped stand-ins as idx files.

The stand-ins let the seed-style baseline still read its data through torchvision on a machine without MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.data import _synthetic


def has_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / f).exists() for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as torchvision's MNIST reads it (big-endian header, uint8 payload)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def synthetic_mnist(root: Path, samples: int, seed: int = 0) -> Path:
    """Seeded MNIST-shaped images written as torchvision MNIST idx files under `root`."""
    x_train, y_train, x_test, y_test = _synthetic(samples, seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    to_u8 = lambda x: (x.squeeze(1) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    write_idx(raw / "train-images-idx3-ubyte", to_u8(x_train))
    write_idx(raw / "train-labels-idx1-ubyte", y_train.to(torch.uint8).numpy())
    write_idx(raw / "t10k-images-idx3-ubyte", to_u8(x_test))
    write_idx(raw / "t10k-labels-idx1-ubyte", y_test.to(torch.uint8).numpy())
    return root
