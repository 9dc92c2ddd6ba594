"""Decoded images kept on disk, so the next run of the same files starts in about a second.

Your image folders (engine.imagefolder) and the named sets' files (torchvision's MNIST-family idx files and
CIFAR-10 batches, scikit-learn's digits: engine.data) are both kept here, never decoded twice.
An entry is one folder under `cache_dir()`: a uint8 (N, C, H, W) `.npy` per split and a small `meta.json`
(classes, labels, file list). Its name is derived from everything that decides its content (the folder,
every file's size and mtime, the requested size and channels), so an edited file is simply a new entry,
and the stale ones of the same folder are removed when it is written. Entries appear by one atomic rename of
a finished folder: ranks reading while the launcher's probe writes, or two writers racing, are both safe.

Torch-free on purpose: `ens-tui cache clear` runs in the UI process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_text

FORMAT = 1
"""Bumped when the layout of an entry changes, so older entries are never misread."""
META = "meta.json"


@dataclass
class CachedImages:
    """A decoded image folder: per split, uint8 images (N, C, H, W), int64 labels and the files they came from."""

    classes: list[str]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)


def cache_dir() -> Path:
    """$ENS_TUI_CACHE, else $XDG_CACHE_HOME/ens-tui, else ~/.cache/ens-tui."""
    if os.environ.get("ENS_TUI_CACHE"):
        return Path(os.environ["ENS_TUI_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ens-tui"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def entry_name(root: Path, role: str, files: Sequence[tuple[str, int, int]], image_size: Sequence[int] | None,
               channels: int | None) -> str:
    """The key of one decoded folder: `<folder and role>-<files>-<size and channels>`.

    `files` are (path relative to root, size in bytes, mtime in ns), sorted; `role` tells a training folder
    from a sample of one taken as an OOD set. Sharing the first part lets a new entry replace the stale ones.
    """
    return "-".join((
        _digest([FORMAT, str(Path(root).resolve()), role]),
        _digest(list(map(list, files))),
        _digest([list(image_size) if image_size else None, channels]),
    ))


def _folder_part(name: str) -> str:
    return name.split("-", 1)[0]


def _files_part(name: str) -> str:
    return name.split("-")[1]


def file_stats(root: Path, files: Sequence[str]) -> list[tuple[str, int, int]] | None:
    """(path relative to root, size, mtime in ns) of each file, sorted: what `entry_name` hashes; None when one is
    missing (a dataset not downloaded yet, say)."""
    out = []
    for rel in sorted(files):
        try:
            st = os.stat(Path(root) / rel)
        except OSError:
            return None
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def read_entry(name: str) -> CachedImages | None:
    """The entry, or None when there is none (or it vanished or broke while being read: decode again).

    Images are memory-mapped copy-on-write: ranks on one host share the pages, nothing is read before it is used,
    and the arrays stay writable (torch takes them without a copy). Entries are never changed in place, only
    replaced by a rename, so a mapping stays valid even while a newer entry removes this one.
    """
    path = cache_dir() / name
    try:
        meta = json.loads((path / META).read_text())
        if meta.get("format") != FORMAT:
            return None
        entry = CachedImages(classes=list(meta["classes"]))
        for split, info in meta["splits"].items():
            entry.images[split] = np.load(path / f"{split}.npy", mmap_mode="c", allow_pickle=False)
            entry.labels[split] = np.asarray(info["labels"], dtype=np.int64)
            entry.files[split] = list(info["files"])
            if len(entry.images[split]) != len(entry.labels[split]):
                return None
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def write_entry(name: str, root: Path, entry: CachedImages) -> None:
    """Store an entry (a finished folder renamed into place) and drop stale entries of the same folder.

    Best effort: a cache that cannot be written (read-only home, full disk) costs the next run a decode,
    never this run.
    """
    base = cache_dir()
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=base))
    except OSError:
        return
    try:
        for split, images in entry.images.items():
            _save_npy(tmp / f"{split}.npy", images)
        meta = {
            "format": FORMAT, "root": str(Path(root).resolve()), "classes": entry.classes,
            "splits": {s: {"labels": entry.labels[s].tolist(), "files": entry.files[s]} for s in entry.images},
        }
        atomic_write_text(tmp / META, json.dumps(meta))
        os.rename(tmp, base / name)
    except OSError:
        # Another process put the same entry in place first (or the disk is full): theirs stands.
        shutil.rmtree(tmp, ignore_errors=True)
        return
    for other in base.iterdir():
        if other.name != name and _folder_part(other.name) == _folder_part(name) and \
                not other.name.startswith(".") and _files_part(other.name) != _files_part(name):
            shutil.rmtree(other, ignore_errors=True)


def remove_entries(root: Path, role: str) -> int:
    """Remove every entry of this folder (`cache = false`); how many there were."""
    prefix = entry_name(root, role, [], None, None).split("-", 1)[0] + "-"
    base = cache_dir()
    gone = 0
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name.startswith(prefix):
                shutil.rmtree(entry, ignore_errors=True)
                gone += 1
    return gone


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clear_cache() -> tuple[int, int]:
    """Remove every entry (and any left half-written); (entries removed, bytes freed)."""
    base = cache_dir()
    count = size = 0
    if not base.is_dir():
        return 0, 0
    for entry in base.iterdir():
        if not entry.is_dir():
            continue
        try:
            freed = _size(entry)
        except OSError:
            freed = 0
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            size += freed
            count += not entry.name.startswith(".")
    return count, size
