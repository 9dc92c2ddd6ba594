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
    busy: float = float("nan")
    """Share of the window the ranks spent training members (their `member_done` seconds over ranks × window):
    what the rest of the window went to — a late first member, handing members out, the last rank's tail — is
    the product's loss, whatever else the machine was doing."""

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
    done = [e for e in events if isinstance(e, ev.MemberDone)]
    ranks = len({e.rank for e in done})
    seconds = max(ends) - min(starts)
    busy = sum(e.seconds for e in done) / (ranks * seconds) if seconds > 0 else float("nan")
    return TrainingWindow(seconds=seconds, member_epochs=epochs, busy=busy)


PHASES = ("launch → hello", "hello → first step", "training", "last step → report saved", "report saved → exit")
"""A run end to end, cut where its events say: the first rank's hello, the first `member_start`, the last
`member_done`, `report_saved`. They add up to the whole run, launch to exit."""


def run_phases(run_dir: Path | str, launched: float, exited: float) -> dict[str, float]:
    """Seconds of each of `PHASES`, plus `fixed` (launch → first step + last step → exit), `total`, `scoring`, and, from
    run.json, `cli start` (launch → the launcher's `started`) and `launcher exit` (its `ended` → exit).

    `launched` and `exited` are wall-clock times (time.time()) taken around the `ens-tui` process. "First step"
    is the first `member_start` and "last step" the last `member_done` (the training window); scoring the
    members falls into "last step → report saved" (`scoring`: up to `predictions_saved`), so `fixed` holds it.
    """
    import json

    events = read_events(run_dir)
    info = json.loads(RunFolder(Path(run_dir)).info.read_text(encoding="utf-8"))
    hello = min(e.t for e in events if isinstance(e, ev.Hello))
    first = min(e.t for e in events if isinstance(e, ev.MemberStart))
    last = max(e.t for e in events if isinstance(e, ev.MemberDone))
    report = max(e.t for e in events if isinstance(e, ev.ReportSaved))
    saved = max(e.t for e in events if isinstance(e, ev.PredictionsSaved))
    cuts = [launched, hello, first, last, report, exited]
    out = {name: cuts[i + 1] - cuts[i] for i, name in enumerate(PHASES)}
    out["fixed"] = (first - launched) + (exited - last)
    out["total"] = exited - launched
    out["scoring"] = saved - last
    out["cli start"] = float(info["started"]) - launched
    out["launcher exit"] = exited - float(info["ended"])
    return out
