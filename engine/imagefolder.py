"""Your own images as a dataset: `DIR/train/<class>/*.png|jpg|…` (and optionally `DIR/test/<class>/…`).

Files are decoded once, with PIL in a thread pool, straight into one uint8 (N, C, H, W) array at the run's
size and channels, and kept in the image cache (engine.image_cache) so the next run skips decoding. Resizing and
channel conversion go through engine.inputs, the same code `ens-tui predict` and an exported ensemble apply to
raw images; the result is rounded back to uint8 for the cache (at most half a grey level, 0.002 in [0, 1],
from what predict computes in float, far below what a model can tell apart, at a quarter of float32's size).
Images whose size and channels already match are stored exactly as decoded.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from engine import image_cache
from engine.config import IMAGE_SUFFIXES
from engine.data import DataError
from engine.inputs import conform
from engine.seeding import derive_seed

PATTERN = "*." + "|".join(s[1:] for s in IMAGE_SUFFIXES)
LAYOUT = f"train/<class>/{PATTERN}"
EXPECTED = "expected " + ", ".join(IMAGE_SUFFIXES) + " files"
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""PIL modes without colour: a folder of only these trains on one channel by default."""
SIXTEEN_BIT = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
PROGRESS_AFTER_S = 1.0
PROGRESS_EVERY_S = 0.25
CHUNK = 64
"""Files per task in the thread pool: enough to amortise the hand-off, few enough for steady progress."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Listing:
    """What a scan found: classes (sorted training folder names) and, per split, files with their labels."""

    root: Path
    classes: list[str]
    files: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """split → [(path relative to root, label)], in class then name order."""

    def stats(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime in ns) of every file: what the cache key hashes."""
        return _stats(str(self.root), [rel for split in sorted(self.files) for rel, _ in self.files[split]])


# --------------------------------------------------------------------------- scanning


def _visible(entries: Iterable[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _images_under(folder: Path, root: Path) -> list[str]:
    """Every image file below `folder` (class folders may nest) relative to `root`, sorted; hidden ones skipped.

    Plain strings, not Paths: for a large folder, building a Path per file costs more than listing it.
    """
    found: list[str] = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        prefix = os.path.join(os.path.relpath(here, root), "").removeprefix("." + os.sep)
        found += [prefix + f for f in sorted(files) if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
    return found


def _stats(root: str, files: Iterable[str]) -> list[tuple[str, int, int]]:
    out = []
    for rel in files:
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError as err:  # removed or made unreadable while being listed
            raise DataError(f"imagefolder: {os.path.join(root, rel)}: {err.strerror}") from None
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def _class_folders(split_dir: Path) -> list[Path]:
    with os.scandir(split_dir) as it:
        return [Path(e.path) for e in _visible(it) if e.is_dir()]


def scan(root: Path) -> Listing:
    """Find the classes and files of an image folder; DataError names the first thing that is wrong."""
    if not root.exists():
        raise DataError(f"imagefolder: {root}: no such folder (expected {root / LAYOUT})")
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is a file; `root` must be a folder laid out as {root / LAYOUT}")
    train = root / "train"
    if not train.is_dir():
        loose = [p.name for p in _class_folders(root) if _images_under(p, root)]
        hint = f"; move the class folders ({', '.join(loose[:3])}…) into {train}" if loose else ""
        empty = "empty folder" if not any(root.iterdir()) else "no train/ folder"
        raise DataError(f"imagefolder: {root}: {empty} (expected {root / LAYOUT}){hint}")
    classes = [p.name for p in _class_folders(train)]
    if not classes:
        raise DataError(f"imagefolder: {train}: no class folders (expected {train}/<class>/{PATTERN})")
    listing = Listing(root, classes)
    for split in ("train", "test"):
        folder = root / split
        if split == "test" and not folder.is_dir():
            continue
        files: list[tuple[str, int]] = []
        names = [p.name for p in _class_folders(folder)]
        if not names:
            raise DataError(f"imagefolder: {folder}: no class folders (expected {folder}/<class>/{PATTERN}, "
                            "or no test/ folder for a seeded test split)")
        for name in names:
            if name not in classes:
                raise DataError(f"imagefolder: {folder / name}: class {name!r} is not among the training classes "
                                f"({', '.join(classes)}); test classes must also have a train/ folder")
            images = _images_under(folder / name, root)
            if not images:
                raise DataError(f"imagefolder: {folder / name}: no images ({EXPECTED})")
            label = classes.index(name)
            files += [(rel, label) for rel in images]
        listing.files[split] = files
    return listing


def scan_any(folder: Path) -> list[str]:
    """The images of a folder used as an OOD set (relative to it): its test/ part if any, else train/, else all."""
    if not folder.is_dir():
        raise DataError(f"imagefolder:{folder}: no such folder (an OOD image folder holds images, "
                        "in class folders or not)")
    for part in (folder / "test", folder / "train", folder):
        if part.is_dir():
            images = _images_under(part, folder)
            if images:
                return images
    raise DataError(f"imagefolder:{folder}: no images ({EXPECTED})")


# --------------------------------------------------------------------------- decoding


def _unreadable(path: Path, err: BaseException) -> DataError:
    return DataError(f"imagefolder: {path}: not a readable image ({type(err).__name__}: {err})")


_BROKEN = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def read_header(path: Path) -> tuple[str, int, int]:
    """(PIL mode, height, width) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.mode, img.height, img.width
    except _BROKEN as err:
        raise _unreadable(path, err) from None


def read_image(path: Path) -> np.ndarray:
    """One image file → uint8 (C, H, W) with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).

    The raw form engine.inputs expects: palettes and other colour spaces become RGB(A), 16-bit grey is scaled
    to 8 bits, EXIF orientation is not applied (as torchvision.io does by default).
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in SIXTEEN_BIT:  # 16/32-bit grey → 8 bits by the type's range (as engine.predict reads it)
                wide = np.asarray(img, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") or wide.max() > 255 else 255.0
                array = np.round(np.clip(wide / top, 0.0, 1.0) * 255).astype(np.uint8)
            else:
                if mode not in ("L", "LA", "RGB", "RGBA"):
                    target = "L" if mode in GRAY_MODES else "RGBA" if "A" in mode or "transparency" in img.info \
                        else "RGB"
                    img = img.convert(target)
                array = np.array(img, dtype=np.uint8)  # a copy: PIL's buffer view is read-only
    except _BROKEN as err:
        raise _unreadable(path, err) from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def fit(raw: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """uint8 (C, H, W) → uint8 (channels, height, width) through engine.inputs.conform, rounded back to uint8."""
    usable = raw.shape[0] - (raw.shape[0] in (2, 4))  # alpha is dropped, as to_channels does
    if usable == channels and raw.shape[1:] == (height, width):
        return raw[:channels]
    unit = conform(torch.from_numpy(raw)[None], channels, height, width)
    return unit[0].mul(255.0).round_().to(torch.uint8).numpy()


class Progress:
    """`decoding DIR: 1,200/5,000 images` on stderr, a few times a second, only for work that takes a while."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.start = self.last = time.monotonic()
        self.shown = False

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.start >= PROGRESS_AFTER_S and now - self.last >= PROGRESS_EVERY_S:
            self.last, self.shown = now, True
            print(f"{self.label}: {self.done:,}/{self.total:,} images", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(f"{self.label}: {self.total:,} images in {time.monotonic() - self.start:.1f} s", file=sys.stderr,
                  flush=True)


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _in_pool(items: Sequence[T], work: Callable[[T], R], progress: Progress) -> list[R]:
    """`work` on every item, in a thread pool (PIL and torch release the GIL while decoding and resizing)."""
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    out: list[R] = []
    with ThreadPoolExecutor(_workers(), thread_name_prefix="decode") as pool:
        for results in pool.map(lambda chunk: [work(item) for item in chunk], chunks):
            out += results
            progress.advance(len(results))
    return out


def decode(paths: Sequence[Path], channels: int, height: int, width: int, label: str) -> np.ndarray:
    """Decode files into one uint8 (N, channels, height, width) array; DataError names the first unreadable file."""
    out = np.empty((len(paths), channels, height, width), dtype=np.uint8)
    progress = Progress(f"decoding {label}", len(paths))

    def one(item: tuple[int, Path]) -> None:
        i, path = item
        out[i] = fit(read_image(path), channels, height, width)

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the pool is the parallelism; one image's resize is too small to split
    try:
        _in_pool(list(enumerate(paths)), one, progress)
    finally:
        torch.set_num_threads(previous)
    progress.finish()
    return out


def _choose_format(paths: Sequence[Path], root: Path, image_size: Sequence[int] | None,
                   channels: int | None) -> tuple[int, int, int]:
    """The (channels, height, width) to decode to: as configured, else read from the headers."""
    if image_size is not None and channels is not None:
        return channels, int(image_size[0]), int(image_size[1])
    progress = Progress(f"reading {root}", len(paths))
    headers = _in_pool(paths, read_header, progress)
    progress.finish()
    if channels is None:
        channels = 1 if all(mode in GRAY_MODES for mode, _, _ in headers) else 3
    if image_size is None:
        first = headers[0][1:]
        other = next((i for i, (_, h, w) in enumerate(headers) if (h, w) != first), None)
        if other is not None:
            (h1, w1), (h2, w2) = first, headers[other][1:]
            raise DataError(
                f"imagefolder: {root}: images differ in size ({h1}×{w1} in {paths[0].relative_to(root)}, "
                f"{h2}×{w2} in {paths[other].relative_to(root)}); set `image_size = [H, W]` in [data] to resize "
                "them all to one size"
            )
        image_size = first
    return channels, int(image_size[0]), int(image_size[1])


# --------------------------------------------------------------------------- loading, through the cache


def load_folder(root: Path, image_size: Sequence[int] | None, channels: int | None,
                cache: bool) -> image_cache.CachedImages:
    """A training image folder, decoded (or read from the cache): per split uint8 images and labels, and classes."""
    listing = scan(root)
    name = image_cache.entry_name(root, "train", listing.stats(), image_size, channels)
    if cache:
        hit = image_cache.read_entry(name)
        if hit is not None:
            return hit
    else:
        image_cache.remove_entries(root, "train")
    every = [root / rel for split in listing.files for rel, _ in listing.files[split]]
    c, h, w = _choose_format(every, root, image_size, channels)
    entry = image_cache.CachedImages(classes=listing.classes)
    for split, files in listing.files.items():
        entry.images[split] = decode([root / rel for rel, _ in files], c, h, w, f"{root}/{split}")
        entry.labels[split] = np.asarray([label for _, label in files], dtype=np.int64)
        entry.files[split] = [rel for rel, _ in files]
    if cache:
        image_cache.write_entry(name, root, entry)
    return entry


def load_sample(folder: Path, count: int, seed: int, shape: tuple[int, int, int], cache: bool) -> np.ndarray:
    """At most `count` images of a folder (a seeded choice), decoded to `shape` (C, H, W): an OOD set."""
    files = scan_any(folder)
    if len(files) > count:
        pick = np.random.default_rng(derive_seed(seed, "ood-sample")).choice(len(files), count, replace=False)
        files = [files[i] for i in sorted(pick)]
    stats = _stats(str(folder), files)
    c, h, w = shape
    name = image_cache.entry_name(folder, "ood", stats, [h, w], c)
    if cache:
        hit = image_cache.read_entry(name)
        if hit is not None:
            return hit.images["ood"]
    else:
        image_cache.remove_entries(folder, "ood")
    images = decode([folder / rel for rel in files], c, h, w, str(folder))
    if cache:
        entry = image_cache.CachedImages(classes=[], images={"ood": images},
                                         labels={"ood": np.zeros(len(images), dtype=np.int64)},
                                         files={"ood": files})
        image_cache.write_entry(name, folder, entry)
    return images
