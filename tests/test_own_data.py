"""A user brings their own data: a folder of class folders, an .npz file, or a torchvision dataset class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch
from PIL import Image

from engine.config import DataConfig
from engine.data import DataError, load_ood, load_splits
from engine.image_cache import cache_dir
from engine.inputs import prepare
from engine.run_folder import RunFolder
from tests.conftest import REPO, cache_entries

CLASSES = ["circle", "noise", "stripes"]
SIDE = 16


def pattern(name: str, i: int, side: int = SIDE) -> np.ndarray:
    """A grey image a small model can tell apart from the other classes: a disc, plain noise, or stripes."""
    rng = np.random.default_rng(i)
    image = rng.integers(0, 60, (side, side)).astype(np.uint8)
    if name == "circle":
        yy, xx = np.mgrid[:side, :side]
        image[(yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 3) ** 2] = 220
    elif name == "stripes":
        image[:, i % 3::3] = 200
    return image


def make_folder(root: Path, per_class: int = 12, split: str = "train", classes: list[str] = CLASSES) -> Path:
    """root/split/<class>/ with one format per class (png, bmp, jpg), as a user's export might mix them."""
    for name, suffix in zip(classes, (".png", ".bmp", ".jpg"), strict=False):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(pattern(name, i), "L").save(folder / f"{name}{i:02d}{suffix}")
    return root


# Every test decodes into a cache of its own (the user's ~/.cache stays untouched).
pytestmark = pytest.mark.usefixtures("private_cache")


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: a magic with the dtype and rank, the dimensions, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_kmnist(root: Path) -> Path:
    """torchvision's KMNIST files, written offline: 60 training and 20 test images of 28×28."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(root / "KMNIST/raw" / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / "KMNIST/raw" / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


# --------------------------------------------------------------------------- image folders


def test_an_image_folder_trains_on_its_folder_names_with_a_seeded_test_split(tmp_path: Path, private_cache: Path) -> None:
    root = make_folder(tmp_path / "shapes")
    splits = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.1), seed=0)
    assert splits.classes == CLASSES and splits.shape == (1, SIDE, SIDE)
    assert len(splits.y_test) == 36 // 5 and len(splits.y_train) + len(splits.y_val) == 36 - 36 // 5
    assert splits.x_train.dtype == torch.float32 and abs(float(splits.x_train.mean())) < 1e-5
    other = load_splits(DataConfig(dataset="imagefolder", root=str(root)), seed=1)
    assert not torch.equal(other.y_test, splits.y_test), "another seed holds out other images"
    assert len(cache_entries(private_cache)) == 1, "decoded once into the cache, whatever the seed"


def test_a_test_folder_is_the_test_split_and_its_classes_keep_the_training_labels(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "shapes")
    make_folder(root, per_class=4, split="test", classes=["stripes"])
    splits = load_splits(DataConfig(dataset="imagefolder", root=str(root), val_fraction=0.0), seed=0)
    assert len(splits.y_train) == 36 and splits.y_test.tolist() == [CLASSES.index("stripes")] * 4


def test_colour_images_of_mixed_sizes_are_resized_exactly_as_predict_converts_them(tmp_path: Path) -> None:
    root = tmp_path / "colour"
    rng = np.random.default_rng(0)
    for name in ("red", "blue"):
        (root / "train" / name).mkdir(parents=True)
        for i, side in enumerate((20, 24, 30)):
            Image.fromarray(rng.integers(0, 256, (side, side, 3)).astype(np.uint8), "RGB").save(
                root / "train" / name / f"{i}.png")
    (root / "test" / "blue").mkdir(parents=True)
    probe = root / "test" / "blue" / "probe.png"
    Image.fromarray(rng.integers(0, 256, (26, 18, 4)).astype(np.uint8), "RGBA").save(probe)
    config = DataConfig(dataset="imagefolder", root=str(root), image_size=[12, 10], val_fraction=0.0)
    splits = load_splits(config, seed=0)
    assert splits.shape == (3, 12, 10) and splits.classes == ["blue", "red"]
    c, h, w = splits.shape
    raw = torch.from_numpy(np.array(Image.open(probe)).transpose(2, 0, 1).copy())  # RGBA, 26×18, as a user has it
    by_predict = prepare(raw[None], c, h, w, splits.mean, splits.std)
    # The cache keeps uint8: at most half a grey level from predict's float conversion.
    assert torch.allclose(splits.x_test[:1], by_predict, atol=0.5 / 255 / splits.std + 1e-6)
    grey = load_splits(config.model_copy(update={"channels": 1}), seed=0)
    assert grey.shape == (1, 12, 10)


def test_the_second_load_reads_the_cache_and_cache_clear_forgets_it(tmp_path: Path, private_cache: Path,
                                                                     cli_env: dict[str, str]) -> None:
    root = make_folder(tmp_path / "shapes")
    config = DataConfig(dataset="imagefolder", root=str(root))
    first = load_splits(config, seed=0)
    (entry,) = cache_entries(private_cache)
    assert {p.name for p in entry.iterdir()} == {"train.npy", "meta.json"}
    assert json.loads((entry / "meta.json").read_text())["classes"] == CLASSES
    # Garble one file but keep its size and mtime, which is what the cache trusts (as make does):
    # the second load never opens the images, so it cannot notice.
    victim = root / "train" / "circle" / "circle00.png"
    stat = victim.stat()
    victim.write_bytes(b"\0" * stat.st_size)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_splits(config, seed=0)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)

    env = {**cli_env, "ENS_TUI_CACHE": str(private_cache)}
    done = subprocess.run([sys.executable, "-m", "ens_tui", "cache", "clear"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "removed 1 cached image folder(s)" in done.stdout
    assert cache_entries(private_cache) == []
    with pytest.raises(DataError, match="circle00.png"):
        load_splits(config, seed=0)  # decoded again, so the garbled file is found


def test_cache_false_decodes_every_time_and_drops_the_folders_entry(tmp_path: Path, private_cache: Path) -> None:
    root = make_folder(tmp_path / "shapes")
    load_splits(DataConfig(dataset="imagefolder", root=str(root)), seed=0)
    assert len(cache_entries(private_cache)) == 1
    again = load_splits(DataConfig(dataset="imagefolder", root=str(root), cache=False), seed=0)
    assert cache_entries(private_cache) == [] and again.classes == CLASSES
    assert cache_dir() == private_cache


# --------------------------------------------------------------------------- npz and torchvision classes


def test_an_npz_file_with_and_without_its_own_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 3), dtype=np.float32)  # channels-last floats, as many tools save them
    y = np.arange(40) % 4
    np.savez(tmp_path / "own.npz", x_train=x, y_train=y, class_names=np.array(["a", "b", "c", "d"]))
    splits = load_splits(DataConfig(dataset="npz", root=str(tmp_path / "own.npz"), val_fraction=0.0), seed=0)
    assert splits.shape == (3, 8, 8) and splits.classes == ["a", "b", "c", "d"] and len(splits.y_test) == 8
    np.savez(tmp_path / "split.npz", x_train=(x * 255).astype(np.uint8).transpose(0, 3, 1, 2), y_train=y,
             x_test=np.zeros((5, 3, 8, 8), np.uint8), y_test=np.arange(5))
    splits = load_splits(DataConfig(dataset="npz", root=str(tmp_path / "split.npz")), seed=0)
    assert len(splits.y_test) == 5 and splits.classes == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(("arrays", "says"), [
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 8, 8), np.uint8)},
     "`x_test` without `y_test`"),
    ({"x_train": np.full((4, 8, 8), 255.0), "y_train": np.zeros(4, int)}, "float images must lie in [0, 1]"),
    ({"x_train": np.zeros((4, 8, 8), np.int32), "y_train": np.zeros(4, int)}, "`x_train` is int32"),
    ({"x_train": np.zeros((4, 2, 8, 8), np.uint8), "y_train": np.zeros(4, int)}, "`x_train` has shape (4, 2, 8, 8)"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.zeros(3, int)}, "`y_train` has 3 labels for 4 images"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.array([0, 1, -1, 0])}, "`y_train` has label -1"),
    ({"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.zeros(4) + 0.5}, "labels must be integers"),
    ({"x_train": np.arange(6 * 64, dtype=np.uint8).reshape(6, 8, 8), "y_train": np.zeros(6, int)}, "only one class"),
    ({"x_train": np.full((6, 8, 8), 9, np.uint8), "y_train": np.array([0, 1] * 3)}, "nothing to learn"),
])
def test_an_npz_file_that_cannot_train_is_refused_naming_the_file_and_key(tmp_path: Path, arrays: dict,
                                                                          says: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=r"bad\.npz") as err:
        load_splits(DataConfig(dataset="npz", root=str(tmp_path / "bad.npz")), seed=0)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_torchvision_dataset_class_by_name_and_other_sources_as_ood_sets(tmp_path: Path) -> None:
    data = make_kmnist(tmp_path / "data")
    config = DataConfig(dataset="torchvision:KMNIST", root=str(data), val_fraction=0.0)
    kmnist = load_splits(config, seed=0)
    assert kmnist.shape == (1, 28, 28) and len(kmnist.y_train) == 60 and len(kmnist.y_test) == 20
    assert kmnist.classes[0] == "o" and len(kmnist.classes) == 10  # torchvision's own class names

    shapes = make_folder(tmp_path / "shapes")
    np.savez(tmp_path / "ood.npz", x_train=np.full((50, 3, 40, 40), 255, np.uint8), y_train=np.zeros(50, int))
    config = DataConfig(dataset="imagefolder", root=str(shapes))
    splits = load_splits(config, seed=0)
    for name, root in (("torchvision:KMNIST", data), (f"npz:{tmp_path / 'ood.npz'}", shapes),
                       (f"imagefolder:{tmp_path / 'shapes'}", shapes)):
        ood = load_ood(name, splits, config.model_copy(update={"root": str(root)}), seed=0)
        assert ood.shape == splits.x_test.shape, name  # conformed to the training images, at most test-sized


# --------------------------------------------------------------------------- bad input, refused before launch


def _bad_cases(tmp: Path) -> dict[str, tuple[dict, str]]:
    """name → ([data] section, what the one line must say)."""
    (tmp / "empty").mkdir()
    make_folder(tmp / "hollow")
    (tmp / "hollow/train/void").mkdir()
    make_folder(tmp / "corrupt")
    (tmp / "corrupt/train/noise/noise03.bmp").write_bytes(b"BM not really a bitmap")
    make_folder(tmp / "sizes")
    Image.fromarray(pattern("circle", 0, 20), "L").save(tmp / "sizes/train/circle/big.png")
    make_folder(tmp / "alien")
    make_folder(tmp / "alien", per_class=2, split="test", classes=["triangle"])
    np.savez(tmp / "no_x.npz", images=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4, int))
    np.savez(tmp / "labels.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 2, 3]),
             class_names=np.array(["cat", "dog"]))
    return {
        "empty folder": ({"dataset": "imagefolder", "root": str(tmp / "empty")}, "empty folder"),
        "class without images": ({"dataset": "imagefolder", "root": str(tmp / "hollow")}, "void: no images"),
        "corrupt image": ({"dataset": "imagefolder", "root": str(tmp / "corrupt")}, "noise03.bmp"),
        "mixed sizes": ({"dataset": "imagefolder", "root": str(tmp / "sizes")}, "image_size = [H, W]"),
        "test class not trained": ({"dataset": "imagefolder", "root": str(tmp / "alien")}, "'triangle'"),
        "npz without x_train": ({"dataset": "npz", "root": str(tmp / "no_x.npz")}, "no `x_train`"),
        "labels out of range": ({"dataset": "npz", "root": str(tmp / "labels.npz")}, "`y_train` has label 3"),
        "no such torchvision class": ({"dataset": "torchvision:SVHM"}, "did you mean torchvision:SVHN"),
        "missing OOD folder": ({"dataset": "digits", "ood": [f"imagefolder:{tmp / 'nowhere'}"]}, "nowhere"),
    }


CASES = ["empty folder", "class without images", "corrupt image", "mixed sizes", "test class not trained",
         "npz without x_train", "labels out of range", "no such torchvision class", "missing OOD folder"]


@pytest.mark.parametrize("case", CASES)
def test_bad_data_is_one_line_and_exit_2_before_any_rank_starts(case: str, tmp_path: Path, private_cache: Path,
                                                                 cli_env: dict[str, str]) -> None:
    data, says = _bad_cases(tmp_path)[case]
    config = tmp_path / "bad.toml"
    config.write_text(tomli_w.dumps({"output_dir": str(tmp_path / "runs"), "data": data}))
    env = {**cli_env, "ENS_TUI_CACHE": str(private_cache)}
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(config), "--dry-run"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_real_launch_refuses_bad_data_in_the_same_one_line(tmp_path: Path, private_cache: Path,
                                                             cli_env: dict[str, str]) -> None:
    """Not only --dry-run: the launch itself says it on stderr, one unwrapped line, and creates no run folder."""
    data, says = _bad_cases(tmp_path)["mixed sizes"]
    config = tmp_path / "bad.toml"
    config.write_text(tomli_w.dumps({"output_dir": str(tmp_path / "runs"), "data": data}))
    env = {**cli_env, "ENS_TUI_CACHE": str(private_cache), "COLUMNS": "60"}
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- end to end


@pytest.mark.mpi
@pytest.mark.timeout(240)
def test_an_image_folder_run_on_real_ranks_reports_its_folder_names(tmp_path: Path, private_cache: Path,
                                                                     cli_env: dict[str, str]) -> None:
    root = make_folder(tmp_path / "shapes")
    config = tmp_path / "own.toml"
    config.write_text(tomli_w.dumps({
        "name": "shapes", "output_dir": str(tmp_path / "runs"),
        "data": {"dataset": "imagefolder", "root": str(root), "ood": ["noise"]},
        "train": {"members": 2, "epochs": 1, "batch_size": 8, "optimizer": "adam", "lr": 0.003},
        "parallel": {"strategy": "local", "ranks": [{"count": 2, "device": "cpu"}]},
    }))
    env = {**cli_env, "ENS_TUI_CACHE": str(private_cache)}
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = map(RunFolder, (tmp_path / "runs").iterdir())
    report = json.loads(folder.report_json.read_text())
    assert report["classes"] == CLASSES and report["members_count"] == 2
    assert len(cache_entries(private_cache)) == 1, "the probe decoded the folder once; the ranks read its cache entry"
