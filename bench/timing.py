"""How long a finished run trained, read back from its events.jsonl; every benchmark times a run this way.

The training window runs from the first `member_start` to the last `member_done`, so rank start-up,
data decoding, scoring and the report do not dilute throughput. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import events as ev
from engine.run_folder import RunFolder


def read_events(run_dir: Path | str) -> list[ev.Event]:
    """Every event the run recorded, in order, validated as the launcher wrote it."""
    lines = RunFolder(Path(run_dir)).events.read_text(encoding="utf-8").splitlines()
    return [ev.decode(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class TrainingWindow:
    """The training phase of one run."""

    seconds: float
    """First `member_start` to last `member_done`, in wall-clock seconds."""
    member_epochs: int
    """Epochs finished, summed over members (one `epoch` event each)."""

    @property
    def member_epochs_per_s(self) -> float:
        return self.member_epochs / self.seconds


def training_window(run_dir: Path | str) -> TrainingWindow:
    """The training window of a finished run; ValueError when no member started and finished."""
    events = read_events(run_dir)
    starts = [e.t for e in events if isinstance(e, ev.MemberStart)]
    ends = [e.t for e in events if isinstance(e, ev.MemberDone)]
    if not starts or not ends:
        raise ValueError(f"{run_dir}: no member both started and finished, so there is no training window")
    epochs = sum(1 for e in events if isinstance(e, ev.Epoch))
    return TrainingWindow(seconds=max(ends) - min(starts), member_epochs=epochs)
