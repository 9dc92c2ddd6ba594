"""The ensemble while it trains: every member's validation probabilities in the run folder, combined by
whichever rank ends an epoch.

A member's epoch ends with its validation softmax written to `live/member-XX.npz` (atomically; a few hundred
KB). The rank then reads every member's latest file, scores their average and sends one `ensemble` event.
Files rather than MPI collectives, because ranks end epochs at unrelated moments and must never wait for each
other; rather than the socket, because the probabilities are far larger than a frame. The same files let
rank 0's member queue judge whether one more member is still worth training (`worth_more`), and they survive
a resume or an extend, so the curve carries on where it was.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import events as ev
from engine import uncertainty as U
from engine.atomic import atomic_write_bytes
from engine.report_model import SizeLaw, SizePoint
from engine.run_folder import RunFolder
from engine.size_law import fit_size_law

ORDERS = 16
"""Random orders of the finished members the size curve averages over (the report uses subsets; this is
cheaper and as fair: size 1 is the mean member, the full size the ensemble exactly)."""
MAX_CURVE = 200
"""Sizes a curve carries at most (every size up to it; spread geometrically beyond), so a frame stays small."""


@dataclass(frozen=True)
class Snapshot:
    """Every member's latest validation probabilities, as read from the run folder."""

    members: list[int]
    epochs: list[int]
    probs: np.ndarray
    """(M, N, K) float32."""
    final: int
    """The epoch count a finished member has reached."""

    @property
    def finished(self) -> list[int]:
        return [m for m, e in zip(self.members, self.epochs, strict=True) if e >= self.final]

    @property
    def finished_probs(self) -> np.ndarray:
        """(F, N, K) the finished members' probabilities, in `finished` order."""
        return self.probs[[self.members.index(m) for m in self.finished]]


def _write(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(exist_ok=True)
    out = io.BytesIO()
    np.savez(out, **arrays)
    atomic_write_bytes(path, out.getvalue())


def record(folder: RunFolder, member: int, epoch: int, probs: np.ndarray | None) -> None:
    """Keep member `member`'s validation probabilities after `epoch` epochs; None (diverged) withdraws it."""
    path = folder.live_member(member)
    if probs is None:
        path.unlink(missing_ok=True)
        return
    _write(path, probs=np.asarray(probs, dtype=np.float32), epoch=np.int64(epoch))


def record_labels(folder: RunFolder, labels: np.ndarray) -> None:
    """The validation labels the files are scored against, for readers without the data (rank 0's queue)."""
    if not folder.live_labels.is_file():
        _write(folder.live_labels, labels=np.asarray(labels, dtype=np.int64))


def read_labels(folder: RunFolder) -> np.ndarray | None:
    try:
        with np.load(folder.live_labels) as data:
            return np.asarray(data["labels"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def read(folder: RunFolder, final: int, classes: int | None = None) -> Snapshot | None:
    """The members' latest files (a file that cannot be read is skipped: it is being replaced); None if none."""
    members, epochs, probs = [], [], []
    for path in sorted(folder.live.glob("member-*.npz")) if folder.live.is_dir() else []:
        try:
            with np.load(path) as data:
                p, e = data["probs"], int(data["epoch"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue
        if probs and p.shape != probs[0].shape or classes is not None and p.shape[-1] != classes:
            continue
        members.append(int(path.stem.split("-")[1]))
        epochs.append(e)
        probs.append(p)
    if not probs:
        return None
    return Snapshot(members, epochs, np.stack(probs), final)


def size_curve(probs: np.ndarray, labels: np.ndarray, sizes: list[int] | None = None, orders: int = ORDERS,
               seed: int = 0) -> list[SizePoint]:
    """Accuracy and NLL of the first k members for k in `sizes` (ascending; default `curve_sizes`), averaged over
    `orders` random orders of the M members."""
    m = len(probs)
    sizes = sizes or curve_sizes(m)
    rng = np.random.default_rng(seed)
    acc = np.zeros(len(sizes))
    nll = np.zeros(len(sizes))
    runs = 1 if m == 1 else orders
    for _ in range(runs):
        order = rng.permutation(m)
        total = np.zeros(probs.shape[1:], dtype=np.float64)
        at = 0
        for k, member in enumerate(order, start=1):
            total += probs[member]
            if at < len(sizes) and sizes[at] == k:
                mean = total / k
                acc[at] += U.accuracy(mean, labels)
                nll[at] += U.nll(mean, labels)
                at += 1
    return [SizePoint(size=k, accuracy=float(a / runs), nll=float(n / runs)) for k, a, n in zip(sizes, acc, nll, strict=True)]


def curve_sizes(m: int) -> list[int]:
    """1..m, thinned geometrically past MAX_CURVE // 2 so there are at most MAX_CURVE (m always included)."""
    if m <= MAX_CURVE:
        return list(range(1, m + 1))
    head = list(range(1, MAX_CURVE // 2 + 1))
    tail = np.unique(np.geomspace(head[-1] + 1, m, MAX_CURVE - len(head)).round().astype(int)).tolist()
    return head + [k for k in tail if k > head[-1]]


@dataclass
class LiveEnsemble:
    """One rank's view of the ensemble: records its members' epochs and scores everyone's latest state.

    The finished members' curve only changes when one finishes, so it is kept until the finished set changes.
    """

    folder: RunFolder
    labels: np.ndarray
    epochs: int
    send: Callable[[ev.Ensemble], None]
    seed: int = 0
    _curve_of: tuple[tuple[int, ...], tuple[list[SizePoint], SizeLaw | None]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        record_labels(self.folder, self.labels)

    def member_epoch(self, member: int, epochs_done: int, probs: np.ndarray | None) -> None:
        """Record one member's end of epoch, then score and announce the ensemble as it now stands."""
        record(self.folder, member, epochs_done, probs)
        if (ensemble := self.score()) is not None:
            self.send(ensemble)

    def score(self) -> ev.Ensemble | None:
        """The ensemble as the files stand now, stamped with the moment they were read (the order of events)."""
        read_at = time.time()
        snap = read(self.folder, self.epochs)
        if snap is None:
            return None
        mean = U.ensemble_mean(snap.probs)
        mi = U.decompose(snap.probs)["mutual_information"]
        curve, fit = self.finished_curve(snap)
        return ev.Ensemble(
            size=len(snap.members), members=snap.members, member_epochs=max(1, sum(snap.epochs)),
            val_accuracy=U.accuracy(mean, self.labels), val_nll=U.nll(mean, self.labels),
            val_ece=U.ece(mean, self.labels), mutual_information=float(mi.mean()),
            disagreement=U.disagreement(snap.probs), finished=snap.finished, curve=curve, fit=fit, t=read_at,
        )

    def finished_curve(self, snap: Snapshot) -> tuple[list[SizePoint], SizeLaw | None]:
        """The size curve of the finished members and the law fitted to it (None below two members)."""
        finished = tuple(snap.finished)
        if self._curve_of is not None and self._curve_of[0] == finished:
            return self._curve_of[1]
        curve = size_curve(snap.finished_probs, self.labels, seed=self.seed) if finished else []
        fit = fit_size_law([p.size for p in curve], [p.nll for p in curve])
        self._curve_of = (finished, (curve, fit))
        return curve, fit


def worth_more(folder: RunFolder, epochs: int, threshold: float, seed: int = 0) -> str | None:
    """Why no further member is worth training (each of the last two ensemble sizes of the finished members
    gained less validation NLL than `threshold`), or None while members still pay."""
    labels = read_labels(folder)
    snap = read(folder, epochs)
    if labels is None or snap is None or len(snap.finished) < 3:
        return None
    k = len(snap.finished)
    nll = [p.nll for p in size_curve(snap.finished_probs, labels, sizes=[k - 2, k - 1, k], seed=seed)]
    gains = [nll[0] - nll[1], nll[1] - nll[2]]
    if all(g < threshold for g in gains):
        return (f"growing the ensemble to {k - 1} and then {k} members lowered the validation NLL by {gains[0]:.4f} "
                f"and {gains[1]:.4f}, each less than {threshold:g}")
    return None
