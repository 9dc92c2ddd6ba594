"""Datasets decoded once into in-memory tensors; batches are tensor slices, never per-sample transforms.

Every source yields the same `Splits`: normalised float32 images (N, C, H, W), int64 labels, and a
held-out test split that always exists (the source's own, or a seeded split). Sources: the named sets
(digits, synthetic, and torchvision's files for mnist, fashion-mnist, kmnist, cifar10), your own image
folder or .npz file, and any torchvision dataset class (`torchvision:NAME`).
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from engine import image_cache
from engine.config import DATASETS, TORCHVISION, DataConfig, split_source
from engine.inputs import conform, to_unit
from engine.preflight import FILE_DATASETS, IDX_FILES, missing_data_advice
from engine.seeding import derive_seed

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
    "cifar10": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
EMNIST_SPLIT = "balanced"
"""`torchvision:EMNIST` reads this variant (47 classes: digits and letters, upper and lower case merged where
they look alike); its images are transposed upright, as EMNIST's files store them on their side."""
NPZ_KEYS = "x_train and y_train, optionally x_test and y_test (both or neither) and class_names"


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


class Source(NamedTuple):
    """One source read whole: images (uint8 0–255 or float in [0, 1], (N, C, H, W)), int64 labels, class names.

    The test split is None where the source has none (a seeded split is then taken from train).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    classes: list[str]


# --------------------------------------------------------------------------- decoded once, kept in the image cache

IDX_SOURCES = {"train": tuple(f"raw/{f}" for f in IDX_FILES if f.startswith("train")),
               "test": tuple(f"raw/{f}" for f in IDX_FILES if f.startswith("t10k"))}
CIFAR_SOURCES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SOURCE_FILES = {name: IDX_SOURCES if files.idx else CIFAR_SOURCES for name, files in FILE_DATASETS.items()}
"""The files torchvision decodes each file-backed set from, per split, under its folder: MNIST's family's idx
files or CIFAR-10's batches. Their sizes and mtimes key the cached entry."""
DIGITS_FILE = {"all": ("digits.csv.gz",)}
"""scikit-learn's digits, under its `datasets/data` folder."""


def _through_cache(root: Path, role: str, files: Mapping[str, Sequence[str]],
                   decode: Callable[[], image_cache.CachedImages], cache: bool) -> image_cache.CachedImages:
    """A named set's uint8 images from the image cache, else `decode()`d and kept there for the next run.

    The entry is keyed by the source `files` (relative to `root`, per split), so a replaced file is decoded
    again; `cache = false` decodes every time and removes what was kept. A file that changes while it is
    decoded (a download finishing) is not cached this time.
    """
    if not cache:
        image_cache.remove_entries(root, role)
        return decode()
    every = [f for split in files.values() for f in split]
    before = image_cache.file_stats(root, every)
    if before is not None:
        hit = image_cache.read_entry(image_cache.entry_name(root, role, before, None, None))
        if hit is not None and set(hit.images) == set(files):
            return hit
    entry = decode()
    after = image_cache.file_stats(root, every)
    if after is not None and after == (before or after):
        image_cache.write_entry(image_cache.entry_name(root, role, after, None, None), root, entry)
    return entry


# --------------------------------------------------------------------------- the named sets
# Each returns images as (N, C, H, W), uint8 or float32 in [0, 1], and int64 labels for train and test.


def _seeded_test_split(x: torch.Tensor, y: torch.Tensor, seed: int, tag: str) -> tuple[torch.Tensor, ...]:
    """A fifth of the samples, chosen by (seed, tag), held out as the test split."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(derive_seed(seed, tag)))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _digits(seed: int, cache: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8×8 digits, scaled to 20×20 and centred on 28×28 like MNIST."""
    raw, target = _digit_images(cache)
    images = torch.from_numpy(raw).to(torch.float32) / 16.0
    images = torch.nn.functional.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = torch.nn.functional.pad(images, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    labels = torch.from_numpy(target)
    x_train, y_train, x_test, y_test = _seeded_test_split(images, labels, seed, "digits-split")
    return x_train, y_train, x_test, y_test


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


def _torchvision(dataset: str, root: str, download: bool, cache: bool) -> tuple[torch.Tensor, ...]:
    """torchvision's files of a named set as uint8 (N, C, H, W) images and labels, train then test.

    Read through the image cache: torchvision (a second to import) only decodes what the cache lacks.
    """
    files = FILE_DATASETS[dataset]
    entry = _through_cache(Path(root) / files.folder, dataset, SOURCE_FILES[dataset],
                           lambda: _decode_torchvision(dataset, root, download), cache)
    out: list[torch.Tensor] = []
    for split in ("train", "test"):
        out += [torch.from_numpy(entry.images[split]), torch.from_numpy(entry.labels[split])]
    return tuple(out)


def _decode_torchvision(dataset: str, root: str, download: bool) -> image_cache.CachedImages:
    """torchvision's own dataset class, read once; its decoded `.data` array, as uint8 (N, C, H, W), per split."""
    import torchvision.datasets as tvd

    files = FILE_DATASETS[dataset]
    folder = files.folder
    cls = getattr(tvd, files.torchvision_class)
    entry = image_cache.CachedImages(classes=[])
    for split, train in (("train", True), ("test", False)):
        try:
            ds = cls(root=root, train=train, download=download)
        except RuntimeError as err:
            where = Path(root) / folder
            raise DataError(f"{dataset}: files not found under {where} ({_one_line(err)}; expected {where}/raw/*-ubyte). "
                            f"{missing_data_advice(download, root)}.") from None
        except urllib.error.URLError as err:
            raise DataError(f"{dataset}: downloading into {root} failed ({err.reason}). "
                            f"{missing_data_advice(download, root)}.") from None
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{dataset}: files under {Path(root) / folder} are unreadable or corrupt: {err}") from None
        data = np.asarray(ds.data)
        # MNIST's family keeps (N, H, W), CIFAR (N, H, W, C)
        data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        entry.images[split] = np.ascontiguousarray(data, dtype=np.uint8)
        entry.labels[split] = np.asarray(ds.targets, dtype=np.int64)
        entry.files[split] = list(SOURCE_FILES[dataset][split])
    return entry


def _digit_images(cache: bool) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 (N, 1, 8, 8) and int64 labels: exactly its float images, whose pixels are
    counts of 0–16 (each is how many of 4×4 bits were set in the 32×32 scan).

    Through the image cache, keyed by scikit-learn's own data file: importing scikit-learn takes a second.
    """
    spec = importlib.util.find_spec("sklearn")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" if spec and \
        spec.submodule_search_locations else None

    def decode() -> image_cache.CachedImages:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return image_cache.CachedImages(classes=[], images={"all": np.asarray(bunch.images)[:, None].astype(np.uint8)},
                                        labels={"all": np.asarray(bunch.target, dtype=np.int64)},
                                        files={"all": list(DIGITS_FILE["all"])})

    entry = decode() if folder is None else _through_cache(folder, "digits", DIGITS_FILE, decode, cache)
    return entry.images["all"], entry.labels["all"]


def _raw(name: str, config: DataConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if name == "digits":
        return _digits(seed, config.cache)
    if name == "synthetic":
        return _synthetic(config.synthetic_size, seed)
    return _torchvision(name, config.root, config.download, config.cache)  # type: ignore[return-value]


# --------------------------------------------------------------------------- your own data


def _image_folder(config: DataConfig) -> Source:
    from engine.imagefolder import load_folder

    entry = load_folder(Path(config.root), config.image_size, config.channels, config.cache)
    test = "test" in entry.images
    return Source(
        torch.from_numpy(entry.images["train"]), torch.from_numpy(entry.labels["train"]),
        torch.from_numpy(entry.images["test"]) if test else None,
        torch.from_numpy(entry.labels["test"]) if test else None, entry.classes,
    )


def _npz_images(where: str, key: str, x: np.ndarray) -> torch.Tensor:
    """An npz image array as (N, C, H, W), uint8 or float in [0, 1]; channels-last (N, H, W, C) is accepted too."""
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: `{key}` is {x.dtype}; images must be uint8 (0–255) or float (0–1)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise DataError(f"{where}: `{key}` has shape {x.shape}; expected (N, H, W) or (N, C, H, W) with C = 1 or 3 "
                        "and N ≥ 1")
    if x.dtype != np.uint8:
        low, high = float(x.min()), float(x.max())
        if not (0.0 <= low and high <= 1.0):  # also false for NaN
            raise DataError(f"{where}: `{key}` holds values from {low:g} to {high:g}; float images must lie in "
                            "[0, 1] (divide 0–255 data by 255, or save it as uint8)")
    return torch.from_numpy(np.ascontiguousarray(x))


def _npz_labels(where: str, key: str, y: np.ndarray, n: int) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise DataError(f"{where}: `{key}` is {y.dtype} of shape {y.shape}; labels must be integers of shape (N,)")
    if len(y) != n:
        raise DataError(f"{where}: `{key}` has {len(y)} labels for {n} images in `x_{key[2:]}`")
    if len(y) and int(y.min()) < 0:
        raise DataError(f"{where}: `{key}` has label {int(y.min())}; labels must be 0 … K-1")
    return torch.from_numpy(y.astype(np.int64))


def _npz(path: Path) -> Source:
    """x_train, y_train [, x_test, y_test] [, class_names] from one .npz file, each checked with a one-line error."""
    where = f"npz: {path}"
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{where} is a folder; `root` must be the .npz file (or use dataset = \"imagefolder\")") from None
    except OSError as err:
        raise DataError(f"{where}: cannot read ({err.strerror})") from None
    if not magic.startswith(b"PK\x03\x04"):
        what = "a single .npy array" if magic == b"\x93NUMPY" else "not an .npz archive"
        raise DataError(f"{where}: {what}; save {NPZ_KEYS} with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            for key in ("x_train", "y_train"):
                if key not in keys:
                    raise DataError(f"{where}: no `{key}` array (it holds {', '.join(keys) or 'nothing'}); "
                                    f"expected {NPZ_KEYS}")
            if ("x_test" in keys) != ("y_test" in keys):
                have, missing = ("x_test", "y_test") if "x_test" in keys else ("y_test", "x_test")
                raise DataError(f"{where}: `{have}` without `{missing}`; give both, or neither for a seeded test split")
            arrays: dict[str, np.ndarray] = {}
            for key in ("x_train", "y_train", "x_test", "y_test", "class_names"):
                if key in keys:
                    try:
                        arrays[key] = archive[key]
                    except ValueError:
                        raise DataError(f"{where}: `{key}` holds Python objects; save plain numeric (or, for "
                                        "class_names, string) arrays") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{where}: not a readable .npz archive ({err})") from None
    x_train = _npz_images(where, "x_train", arrays["x_train"])
    y_train = _npz_labels(where, "y_train", arrays["y_train"], len(x_train))
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _npz_images(where, "x_test", arrays["x_test"])
        y_test = _npz_labels(where, "y_test", arrays["y_test"], len(x_test))
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(f"{where}: `x_test` images are {tuple(x_test.shape[1:])} (C, H, W), `x_train` images "
                            f"{tuple(x_train.shape[1:])}; both must have one shape")
    labels = [y_train] + ([y_test] if y_test is not None else [])
    top = max(int(y.max()) for y in labels if len(y))
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{where}: `class_names` is {names.dtype} of shape {names.shape}; expected one string "
                            "per class")
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
        for key, y in zip(("y_train", "y_test"), labels, strict=False):
            if len(y) and int(y.max()) >= len(classes):
                raise DataError(f"{where}: `{key}` has label {int(y.max())}, but `class_names` names "
                                f"{len(classes)} classes (labels 0 … {len(classes) - 1})")
    else:
        classes = [str(i) for i in range(top + 1)]
    return Source(x_train, y_train, x_test, y_test, classes)


# --------------------------------------------------------------------------- any torchvision dataset class


def _accepts(cls: type, name: str) -> bool:
    """Whether `cls(...)` takes keyword `name`, following `**kwargs` up to the base classes (EMNIST → MNIST)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def _one_line(err: BaseException) -> str:
    """torchvision's messages span lines (a failed download lists every mirror); the user gets one."""
    return " ".join(str(err).split())


def _dataset_class(name: str) -> type:
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if isinstance(cls, type) and issubclass(cls, tvd.VisionDataset):
        return cls
    bases = {tvd.VisionDataset, tvd.DatasetFolder, tvd.ImageFolder}  # building blocks, not datasets
    names = {n.lower(): n for n in tvd.__all__ if isinstance(getattr(tvd, n, None), type) and getattr(tvd, n) not in bases}
    close = [names[n] for n in difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.6)]
    hint = f" (did you mean {', '.join(TORCHVISION + c for c in close)}?)" if close else ""
    raise DataError(f"{TORCHVISION}{name}: no such dataset class in torchvision.datasets{hint}; e.g. torchvision:SVHN, "
                    "torchvision:CIFAR100, torchvision:EMNIST")


def _torchvision_class(name: str, root: str, download: bool) -> Source:
    """Train and test sets of a torchvision dataset class that keeps its images decoded in `.data`.

    It is built as `cls(root, train=…, download=…)`, or with `split="train"/"test"` where it has no `train`
    (SVHN); EMNIST reads its `EMNIST_SPLIT` variant.
    """
    cls = _dataset_class(name)
    spec = f"{TORCHVISION}{name}"
    out: list[torch.Tensor] = []
    classes: list[str] | None = None
    for train in (True, False):
        if name == "EMNIST":
            kwargs: dict[str, object] = {"split": EMNIST_SPLIT, "train": train}
        elif _accepts(cls, "train"):
            kwargs = {"train": train}
        elif _accepts(cls, "split"):
            kwargs = {"split": "train" if train else "test"}
        elif name in ("ImageFolder", "DatasetFolder"):
            raise DataError(f"{spec}: for a folder of class folders use dataset = \"imagefolder\" (root = the folder "
                            "holding train/<class>/…)")
        else:
            raise DataError(f"{spec}: takes neither `train` nor `split`, so its train and test sets are unknown; "
                            "save it as an image folder or .npz instead")
        try:
            ds = cls(root=root, download=download, **kwargs)
        except RuntimeError as err:
            raise DataError(f"{spec}: files not found under {root} ({_one_line(err)}). "
                            f"{missing_data_advice(download, root)}.") from None
        except TypeError as err:
            raise DataError(f"{spec}: does not take (root, train or split, download) ({_one_line(err)}); save it as an image "
                            "folder or .npz instead") from None
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{spec}: files under {root} are unreadable or corrupt: {_one_line(err)}") from None
        data = getattr(ds, "data", None)
        targets = getattr(ds, "targets", getattr(ds, "labels", None))
        if data is None or targets is None or isinstance(data, list):
            raise DataError(f"{spec}: keeps no decoded image array (`.data`), so it cannot be read whole; save it "
                            "as an image folder or .npz instead")
        x = np.asarray(data)
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)  # (N, H, W, C), as CIFAR keeps it
        if name == "EMNIST":
            x = x.transpose(0, 1, 3, 2)
        if x.ndim != 4 or x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise DataError(f"{spec}: `.data` is {x.dtype} of shape {x.shape}; expected uint8 or float images")
        out += [torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(np.asarray(targets), dtype=torch.int64)]
        named = getattr(ds, "classes", None)
        classes = classes or ([str(c) for c in named] if isinstance(named, list | tuple) and named else None)
    top = max(int(out[1].max()), int(out[3].max()))
    if classes is None or len(classes) <= top:
        classes = [str(i) for i in range(top + 1)]
    return Source(out[0], out[1], out[2], out[3], classes)


# --------------------------------------------------------------------------- public API


def _load_source(spec: str, root: str, config: DataConfig, seed: int) -> Source:
    """Any source by name: a named set, `imagefolder`/`npz` read from `root`, or `torchvision:NAME`."""
    if spec in DATASETS:
        x_train, y_train, x_test, y_test = _raw(spec, config, seed)
        return Source(x_train, y_train, x_test, y_test, CLASS_NAMES.get(spec, [str(i) for i in range(10)]))
    if spec == "imagefolder":
        return _image_folder(config)
    if spec == "npz":
        return _npz(Path(root))
    return _torchvision_class(spec.removeprefix(TORCHVISION), root, config.download)


def _sample(n: int, count: int, seed: int, tag: str) -> torch.Tensor:
    """`count` of `n` indices chosen by (seed, tag): a fair subset of data that may be sorted by class."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, tag)))[:count]


def _as_configured(x: torch.Tensor, config: DataConfig) -> torch.Tensor:
    """Raw images → float [0, 1], conformed to `channels`/`image_size` where the config sets them."""
    # to_unit's arithmetic, the division in place on the new float copy (one pass over 60k images fewer)
    x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else to_unit(x)
    channels = config.channels or x.shape[1]
    height, width = config.image_size or x.shape[2:]
    return conform(x, channels, height, width).contiguous()


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load, normalise and split the configured dataset (the validation split is seeded)."""
    named = config.dataset in DATASETS
    source = _load_source(config.dataset, config.root, config, seed)
    x_train, y_train, x_test, y_test = source.x_train, source.y_train, source.x_test, source.y_test
    if x_test is None or y_test is None:
        if len(y_train) < 5:
            raise DataError(f"{config.dataset}: {config.root}: only {len(y_train)} training image(s) and no test "
                            "set; a seeded test split needs at least 5")
        x_train, y_train, x_test, y_test = _seeded_test_split(x_train, y_train, seed, f"{config.dataset}-split")
    if config.limit is not None:
        n_test = max(config.limit // 4, 16)
        if named:
            x_train, y_train = x_train[: config.limit], y_train[: config.limit]
            x_test, y_test = x_test[:n_test], y_test[:n_test]
        else:  # your own data may be sorted by class: take a seeded sample, not the first classes
            pick, pick_test = _sample(len(y_train), config.limit, seed, "limit"), _sample(len(y_test), n_test, seed,
                                                                                          "limit-test")
            x_train, y_train, x_test, y_test = x_train[pick], y_train[pick], x_test[pick_test], y_test[pick_test]
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(derive_seed(seed, "val-split")))
    n_val = int(round(len(order) * config.val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    # Pick first, convert after: raw images are mostly uint8, a quarter of float's bytes to move (conforming
    # goes image by image, so the order of the two changes nothing).
    x_val, y_val = _as_configured(x_train[val_idx], config), y_train[val_idx]
    x_train, y_train = _as_configured(x_train[train_idx], config), y_train[train_idx]
    x_test = _as_configured(x_test, config)
    where = config.dataset if named else f"{config.dataset}: {config.root}"
    if len(source.classes) < 2:
        raise DataError(f"{where}: only one class ({', '.join(source.classes) or 'none'}); a classifier needs at "
                        "least 2 to tell apart")
    if len(y_train) == 0:
        raise DataError(f"{where}: no training images left after the validation split (val_fraction "
                        f"{config.val_fraction}); lower val_fraction or add images")
    mean, std = float(x_train.mean()), float(x_train.std())
    if not std > 1e-6:  # pixels in [0, 1]: below this it is float round-off of a constant (and NaN fails too)
        raise DataError(f"{where}: every training pixel has the same value ({mean:g}); there is nothing to learn "
                        "(blank images?)")
    return Splits(
        config.dataset, _normalised(x_train, mean, std), y_train, _normalised(x_val, mean, std), y_val,
        _normalised(x_test, mean, std), y_test, mean, std, list(source.classes),
    )


def _normalised(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """(x - mean) / std into one new tensor (the division in place: the same numbers, half the memory traffic)."""
    return torch.sub(x, mean).div_(std).contiguous()


def load_ood(name: str, splits: Splits, config: DataConfig, seed: int) -> torch.Tensor:
    """An out-of-distribution input set shaped like the test split (normalised the same way).

    Other datasets are conformed to the training data's channels and size; at most as many images as the
    test split are used (the first ones of a named set, a seeded sample of your own).
    """
    x01 = splits.x_test * splits.std + splits.mean
    c, h, w = splits.shape
    if name == "noise":
        gen = torch.Generator().manual_seed(derive_seed(seed, "ood-noise"))
        shifted = torch.rand(x01.shape, generator=gen)
    elif name == "rotate":
        shifted = torch.rot90(x01, k=1, dims=(2, 3)) if x01.shape[2] == x01.shape[3] else x01.flip(2)
    elif name == "invert":
        shifted = 1.0 - x01
    elif name in DATASETS:
        _, _, shifted, _ = _raw(name, config, seed)
        shifted = conform(shifted[: len(x01)], c, h, w)
    else:
        kind, arg = split_source(name)
        if kind == "imagefolder":
            from engine.imagefolder import load_sample

            raw = torch.from_numpy(load_sample(Path(arg), len(x01), seed, (c, h, w), config.cache))
        else:
            npz = kind == "npz"
            source = _load_source(kind if npz else name, arg if npz else config.root, config, seed)
            raw = source.x_test if source.x_test is not None else source.x_train
            raw = raw[_sample(len(raw), len(x01), seed, f"ood-sample:{name}")]
        shifted = conform(raw, c, h, w)
    return ((shifted - splits.mean) / splits.std).contiguous()
