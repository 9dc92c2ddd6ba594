"""What a run's members were trained with, and whether a resume still matches it.

A fingerprint is the flat set of config values that determine the members (`{"seed": 0, "model.name": …}`);
a launch stores it in run.json and every checkpoint stores it too. A resume may change where and how the
members train (ranks, strategy, threads, the data's root) and may grow what the OVERRIDES table lets grow
(more epochs), but nothing else. Only `ens-tui extend` changes the member count, of a finished run: member i
is seeded by (seed, i) whatever the count, so the count is the run's (run.json), not each checkpoint's.

Torch-free: the CLI checks a run folder before launch (a checkpoint is a zip archive holding a pickle, read
here without torch), and the ranks compare each checkpoint against the same contract.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

from engine.config import OVERRIDES, RunConfig, load_config
from engine.run_folder import RunFolder

KEYS: tuple[str, ...] = (
    "seed",
    "data.dataset", "data.limit", "data.val_fraction", "data.synthetic_size", "data.image_size", "data.channels",
    "model.name", "model.kwargs",
    "train.members", "train.epochs", "train.batch_size", "train.optimizer", "train.lr", "train.momentum",
    "train.weight_decay", "train.schedule", "train.data_order",
)
"""What determines the members. Not data.root, download, cache or ood (files may move; OOD sets only score),
nor model.path (folders may move), nor anything under parallel or report."""

COUNT = "train.members"
"""The run's member count: checked against run.json's fingerprint, never a checkpoint's (one saved before an
extension holds the smaller count and still continues the run)."""

GROWS: frozenset[str] = frozenset(".".join(o.path) for o in OVERRIDES if o.resume == "grow")
"""Keys a resume may raise: more epochs continue every member (except under a cosine schedule, see `changes`)."""

ZIP_MAGIC = b"PK\x03\x04"
RETRAIN = "delete it to retrain that member from scratch"


def fingerprint(config: RunConfig) -> dict[str, Any]:
    """The values of `KEYS` in `config`, JSON-native (run.json stores it as is)."""
    return pick(config.model_dump(mode="json"))


def pick(dumped: dict[str, Any]) -> dict[str, Any]:
    """`KEYS` from a dumped config (also a checkpoint's stored `config`); keys it lacks are left out."""
    out: dict[str, Any] = {}
    for key in KEYS:
        value: Any = dumped
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            out[key] = value
    return json.loads(json.dumps(out))


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)


def changes(trained: dict[str, Any], now: dict[str, Any], *, count: bool = False) -> dict[str, str]:
    """`key old → new (why)` by key, for every value `now` cannot continue from; keys `trained` lacks are not
    checked (a fingerprint from before the key existed). The member count only with `count` (a run's record, not
    a checkpoint's: see COUNT)."""
    out = {}
    for key, old in trained.items():
        if key not in KEYS or key not in now or now[key] == old or (key == COUNT and not count):
            continue
        new = now[key]
        note = ""
        if key == COUNT and isinstance(old, int) and isinstance(new, int) and new > old:
            note = (f" (a run's checkpoints are its members; to add members to a finished run: ens-tui extend RUN "
                    f"--members {new})")
        elif key == COUNT:
            note = " (a run's checkpoints are its members; dropping members is not supported)"
        elif key in GROWS and isinstance(old, int) and isinstance(new, int) and new > old:
            if trained.get("train.schedule") != "cosine":
                continue
            note = (" (under schedule 'cosine' the learning rate decays to 0 over the planned epochs, so the "
                    "finished ones cannot be continued)")
        elif key in GROWS:
            note = " (finished epochs cannot be undone)"
        out[key] = f"{key} {_shown(old)} → {_shown(new)}{note}"
    return out


# --------------------------------------------------------------------------- checkpoint files, without torch


class _Opaque:
    """Stands in for every object a checkpoint's pickle names (tensors, storages): nothing from it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _Dict(dict):
    """An OrderedDict of the checkpoint (a state dict carries `_metadata` as pickled state, dropped here)."""

    def __setstate__(self, state: Any) -> None:
        pass


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        return _Dict if (module, name) == ("collections", "OrderedDict") else _Opaque

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) > 2:
            self.storages.append(str(pid[2]))
        return None


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read: empty, truncated, damaged or not a checkpoint at all."""


def read_head(path: Path) -> dict[str, Any]:
    """A checkpoint's plain values (its stored `fingerprint`, `config`, `epoch`…), tensors left out.

    Raises CheckpointFileError saying what is wrong with the file (`is truncated`); cheap: only the pickle is
    read and CRC-checked, and every tensor record it names must be in the archive.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise CheckpointFileError(f"cannot be read ({err.strerror})") from None
    if size == 0:
        raise CheckpointFileError("is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            pkl = next((n for n in sorted(names) if n.count("/") == 1 and n.endswith("/data.pkl")), None)
            if pkl is None:
                raise CheckpointFileError("is not a checkpoint (a zip archive without data.pkl)")
            unpickler = _Unpickler(archive.read(pkl))
            state = unpickler.load()
    except zipfile.BadZipFile as err:
        if magic != ZIP_MAGIC:
            raise CheckpointFileError("is not a checkpoint") from None
        if "CRC" in str(err):
            raise CheckpointFileError("is damaged (a checksum does not match)") from None
        raise CheckpointFileError("is truncated") from None
    except CheckpointFileError:
        raise
    except Exception:  # noqa: BLE001 — whatever a broken pickle raises, the file is what is wrong
        raise CheckpointFileError("is damaged (its contents cannot be read)") from None
    prefix = pkl.rsplit("/", 1)[0]
    missing = [key for key in unpickler.storages if f"{prefix}/data/{key}" not in names]
    if missing or not isinstance(state, dict):
        raise CheckpointFileError("is damaged (tensor data is missing)" if missing else "is not a checkpoint")
    return state


def stored_fingerprint(state: dict[str, Any]) -> dict[str, Any] | None:
    """The fingerprint a checkpoint was saved with; from its stored `config` when it predates fingerprints."""
    saved = state.get("fingerprint")
    if isinstance(saved, dict):
        return saved
    config = state.get("config")
    return pick(config) if isinstance(config, dict) else None


# --------------------------------------------------------------------------- the check before a resume


def resume_problem(run_dir: Path, config: RunConfig, *, extend: bool = False) -> str | None:
    """Why `config` cannot resume `run_dir`, in one line, or None; reads the folder, writes nothing.

    Compares `config` with the fingerprint in run.json and with each checkpoint's (a run from before
    fingerprints has only its checkpoints' stored config; one with neither is not checked), and refuses a
    checkpoint file that would not load. The member count may differ only with `extend` (`ens-tui extend`
    checks the count itself).
    """
    folder = RunFolder(run_dir)
    trained: list[tuple[dict[str, Any], bool]] = []
    try:
        info = json.loads(folder.info.read_text())
    except (OSError, ValueError):
        info = None
    record = info.get("fingerprint") if isinstance(info, dict) else None
    recorded = isinstance(record, dict)
    if isinstance(record, dict):
        trained.append((record, True))
    for path in sorted(folder.checkpoints.glob("member-*.pt")):
        try:
            state = read_head(path)
        except CheckpointFileError as err:
            return f"{run_dir}: {path.relative_to(folder.path)} {err}; {RETRAIN}"
        if (saved := stored_fingerprint(state)) is not None:
            trained.append((saved, not recorded))  # before fingerprints, the checkpoints are the run's record
    now = fingerprint(config)
    found: dict[str, str] = {}
    for saved, of_the_run in trained:
        for key, change in changes(saved, now, count=of_the_run and not extend).items():
            found.setdefault(key, change)
    if not found:
        return None
    listed = ", ".join(found.values())
    try:
        in_file = fingerprint(load_config(folder.config))
    except ValueError:
        in_file = now
    if all(in_file[key] != now[key] for key in found):
        return (f"{run_dir}: the overrides do not match what its members were trained with: {listed}; drop them "
                "or start a new run")
    return (f"{run_dir}: config.toml no longer matches what its members were trained with: {listed}; "
            "restore those values or start a new run")
