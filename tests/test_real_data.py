"""The real torchvision loading path, on real MNIST / Fashion-MNIST when ../shared/data is present."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest

from engine.config import DataConfig
from engine.data import DataError, load_ood, load_splits
from tests.conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not (SHARED_DATA / "MNIST").is_dir(), reason="../shared/data not present")


def unpack(dest: Path, *names: str) -> Path:
    """What the data README says: copy the gzipped idx files and gunzip them."""
    for name in names:
        for gz in (SHARED_DATA / name / "raw").glob("*.gz"):
            target = dest / name / "raw" / gz.name.removesuffix(".gz")
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(gz) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


@needs_data
def test_real_mnist_through_torchvision_with_fashion_mnist_as_ood(tmp_path: Path) -> None:
    root = unpack(tmp_path, "MNIST", "FashionMNIST")
    digest = hashlib.md5((root / "MNIST/raw/t10k-images-idx3-ubyte").read_bytes()).hexdigest()
    assert digest == "2646ac647ad5339dbf082846283269ea"
    config = DataConfig(dataset="mnist", root=str(root), val_fraction=0.1, ood=["fashion-mnist"])
    splits = load_splits(config, seed=0)
    assert splits.x_train.shape == (54000, 1, 28, 28) and splits.x_test.shape == (10000, 1, 28, 28)
    assert splits.x_val.shape[0] == 6000 and int(splits.y_train.max()) == 9
    assert abs(splits.mean - 0.1307) < 0.002 and abs(splits.std - 0.3081) < 0.002
    ood = load_ood("fashion-mnist", splits, config, seed=0)
    assert ood.shape == (10000, 1, 28, 28)


@needs_data
def test_truncated_idx_file_gives_a_clear_error(tmp_path: Path) -> None:
    root = unpack(tmp_path, "MNIST")
    path = root / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="mnist"):
        load_splits(DataConfig(dataset="mnist", root=str(root)), seed=0)
