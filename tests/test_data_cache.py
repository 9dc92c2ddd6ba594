"""The named sets' decoded files kept in the image cache: the same tensors as torchvision's, read back in an instant.

torchvision's MNIST-family idx files and scikit-learn's digits are decoded once into the image cache
(engine.image_cache), keyed by the source files' sizes and mtimes. A hit skips importing torchvision and
scikit-learn (about a second each per rank); a replaced file is decoded again; `cache = false` and
`ens-tui cache clear` behave as they do for your own image folders.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import data as data_module
from engine.config import DataConfig
from engine.data import load_ood, load_splits
from engine.image_cache import clear_cache, read_entry
from engine.inputs import conform
from engine.seeding import derive_seed
from tests.conftest import REPO, cache_entries
from tests.test_own_data import make_kmnist, write_idx

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


# Every test decodes into a cache of its own (the user's ~/.cache stays untouched).
pytestmark = pytest.mark.usefixtures("private_cache")


def assert_same_splits(a: data_module.Splits, b: data_module.Splits) -> None:
    for name in SPLITS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name
    assert (a.mean, a.std, a.classes) == (b.mean, b.std, b.classes)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any decode from here on fails the test: what follows must come from the cache."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data_module, "_decode_torchvision", refuse)
    monkeypatch.setattr("sklearn.datasets.load_digits", refuse)


# --------------------------------------------------------------------------- bit-identical


def test_an_idx_set_read_back_from_the_cache_is_bit_identical_to_decoding_it(tmp_path: Path, private_cache: Path,
                                                                           request: pytest.FixtureRequest) -> None:
    root = make_kmnist(tmp_path / "data")
    config = DataConfig(dataset="kmnist", root=str(root), val_fraction=0.25, ood=["mnist"])
    decoded = load_splits(config.model_copy(update={"cache": False}), seed=3)
    other = DataConfig(dataset="digits", root=str(root), ood=["kmnist"], cache=False)
    digits = load_splits(other, seed=0)
    ood = load_ood("kmnist", digits, other, 0)
    assert cache_entries(private_cache) == [], "cache = false keeps nothing"
    first = load_splits(config, seed=3)
    (entry,) = cache_entries(private_cache)
    request.getfixturevalue("no_decoding")
    again = load_splits(config, seed=3)
    # A named set as another's OOD set reads the same entry.
    assert torch.equal(load_ood("kmnist", digits, other.model_copy(update={"cache": True}), 0), ood)
    assert_same_splits(decoded, first)
    assert_same_splits(decoded, again)
    # The entry holds exactly torchvision's bytes and labels.
    import torchvision.datasets as tvd

    cached = read_entry(entry.name)
    assert cached is not None
    for split, train in (("train", True), ("test", False)):
        theirs = tvd.KMNIST(root=str(root), train=train, download=False)
        assert np.array_equal(cached.images[split], theirs.data.numpy()[:, None])
        assert np.array_equal(cached.labels[split], theirs.targets.numpy())


def test_picking_before_converting_gives_what_converting_before_picking_gave(tmp_path: Path) -> None:
    """load_splits indexes the raw uint8 images and converts after; the old order, written out, agrees bit for bit."""
    root = make_kmnist(tmp_path / "data")
    config = DataConfig(dataset="kmnist", root=str(root), val_fraction=0.25, image_size=[20, 24], channels=3)
    splits = load_splits(config, seed=5)
    import torchvision.datasets as tvd

    x_train, x_test = (tvd.KMNIST(root=str(root), train=t).data.unsqueeze(1).float().div_(255.0) for t in (True, False))
    y_train = tvd.KMNIST(root=str(root), train=True).targets
    x_train, x_test = conform(x_train, 3, 20, 24).contiguous(), conform(x_test, 3, 20, 24).contiguous()
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(derive_seed(5, "val-split")))
    n_val = int(round(len(order) * 0.25))
    x_val, x_train = x_train[order[:n_val]], x_train[order[n_val:]]
    mean, std = float(x_train.mean()), float(x_train.std())
    assert (splits.mean, splits.std) == (mean, std)
    for mine, theirs in ((splits.x_train, x_train), (splits.x_val, x_val), (splits.x_test, x_test)):
        assert torch.equal(mine, ((theirs - mean) / std).contiguous())


def make_cifar10(root: Path) -> Path:
    """CIFAR-10's pickled batches, written offline: 5 × 4 training and 6 test images of 3×32×32."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 6)]:
        batch = {"data": rng.integers(0, 256, (n, 3 * 32 * 32)).astype(np.uint8), "labels": list(range(n))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return root


def test_cifar10_batches_from_the_cache_equal_decoding_them(tmp_path: Path, private_cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             request: pytest.FixtureRequest) -> None:
    import torchvision.datasets as tvd

    # torchvision checks the batches against the real files' md5 sums; these are stand-ins.
    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    root = make_cifar10(tmp_path / "data")
    config = DataConfig(dataset="cifar10", root=str(root), val_fraction=0.25, ood=[])
    decoded = load_splits(config.model_copy(update={"cache": False}), seed=2)
    first = load_splits(config, seed=2)
    (entry,) = cache_entries(private_cache)
    request.getfixturevalue("no_decoding")
    assert_same_splits(decoded, first)
    assert_same_splits(decoded, load_splits(config, seed=2))
    cached = read_entry(entry.name)
    assert cached is not None and cached.images["train"].shape == (20, 3, 32, 32)
    assert np.array_equal(cached.images["test"], tvd.CIFAR10(str(root), train=False).data.transpose(0, 3, 1, 2))


def test_digits_from_the_cache_equal_scikit_learns(private_cache: Path, request: pytest.FixtureRequest) -> None:
    config = DataConfig(dataset="digits", val_fraction=0.1, limit=500)
    decoded = load_splits(config.model_copy(update={"cache": False}), seed=1)
    first = load_splits(config, seed=1)
    assert len(cache_entries(private_cache)) == 1
    request.getfixturevalue("no_decoding")
    assert_same_splits(decoded, first)
    assert_same_splits(decoded, load_splits(config, seed=1))


def test_a_cache_hit_imports_neither_torchvision_nor_scikit_learn(tmp_path: Path, private_cache: Path) -> None:
    """What the cache is for: a rank on a warm cache never pays for importing the libraries that decode."""
    root = make_kmnist(tmp_path / "data")
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from engine.config import DataConfig\nfrom engine.data import load_splits\n"
              f"load_splits(DataConfig(dataset='kmnist', root={str(root)!r}, ood=[]), 0)\n"
              "load_splits(DataConfig(dataset='digits', ood=[]), 0)\n"
              "print(sorted(m for m in ('torchvision', 'sklearn') if m in sys.modules))\n")
    env = {**os.environ, "ENS_TUI_CACHE": str(private_cache)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert json.loads(runs[0].stdout.replace("'", '"')) == ["sklearn", "torchvision"], "the first run decodes"
    assert json.loads(runs[1].stdout.replace("'", '"')) == [], "the second reads the cache"


# --------------------------------------------------------------------------- invalidation, cache = false, clear


def test_a_replaced_source_file_is_decoded_again_and_its_stale_entry_goes(tmp_path: Path, private_cache: Path) -> None:
    root = make_kmnist(tmp_path / "data")
    config = DataConfig(dataset="kmnist", root=str(root), val_fraction=0.0)
    before = load_splits(config, seed=0)
    (stale,) = cache_entries(private_cache)
    images = root / "KMNIST/raw/train-images-idx3-ubyte"
    write_idx(images, np.random.default_rng(1).integers(0, 256, (60, 28, 28)))  # same size, other pixels
    st = images.stat()
    os.utime(images, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse clock may not tick on its own
    after = load_splits(config, seed=0)
    assert not torch.equal(after.x_train, before.x_train), "the new pixels, not the cached ones"
    (fresh,) = cache_entries(private_cache)
    assert fresh != stale, "the stale entry of the same files is replaced, not kept beside"
    import torchvision.datasets as tvd

    assert torch.equal(torch.from_numpy(np.asarray(read_entry(fresh.name).images["train"]))[:, 0],  # type: ignore[union-attr]
                       tvd.KMNIST(root=str(root), train=True).data)


def test_cache_false_decodes_every_time_and_drops_the_sets_cache_entries(tmp_path: Path, private_cache: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_kmnist(tmp_path / "data")
    config = DataConfig(dataset="kmnist", root=str(root), ood=["digits"])
    load_splits(config, seed=0)
    load_ood("digits", load_splits(config, seed=0), config, 0)
    assert len(cache_entries(private_cache)) == 2, "kmnist and digits"
    decodes = []
    real = data_module._decode_torchvision
    monkeypatch.setattr(data_module, "_decode_torchvision", lambda *a: decodes.append(a) or real(*a))
    off = config.model_copy(update={"cache": False})
    splits = load_splits(off, seed=0)
    load_ood("digits", splits, off, 0)
    assert len(decodes) == 1 and cache_entries(private_cache) == []


def test_cache_clear_forgets_the_named_sets_too(tmp_path: Path, private_cache: Path) -> None:
    root = make_kmnist(tmp_path / "data")
    load_splits(DataConfig(dataset="kmnist", root=str(root)), seed=0)
    load_splits(DataConfig(dataset="digits"), seed=0)
    assert len(cache_entries(private_cache)) == 2
    count, size = clear_cache()
    assert count == 2 and size > 60 * 28 * 28 and cache_entries(private_cache) == []


def test_a_cached_array_is_writable_and_writing_it_leaves_the_entry_alone(tmp_path: Path, private_cache: Path) -> None:
    """Entries are memory-mapped copy-on-write: torch takes them without a copy or a warning, the file stays."""
    root = make_kmnist(tmp_path / "data")
    load_splits(DataConfig(dataset="kmnist", root=str(root)), seed=0)
    (entry,) = cache_entries(private_cache)
    first = read_entry(entry.name)
    assert first is not None and first.images["train"].flags.writeable
    original = np.array(first.images["train"][0])
    torch.from_numpy(first.images["train"])[0] = 255 - torch.from_numpy(original)
    again = read_entry(entry.name)
    assert again is not None and np.array_equal(again.images["train"][0], original)
