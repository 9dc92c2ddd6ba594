"""A folder of runs as rows: what each run folder under an output dir is, read without ever raising.

`scan(output_dir)` summarises every folder in it (the runs browser and `ens-tui runs DIR --list` both show
these rows); `compare(a, b)` lines two runs up key by key. A folder that cannot be read whole (garbage
run.json, no config.toml, a report.json that is not a report, unreadable event lines, an empty folder) is
still a row: its `problems` say what is wrong, and what could be read is kept.

Torch-free, and Textual-free too: the CLI prints these rows without starting the app.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.config import ConfigError, load_config
from engine.report_model import ReportError
from engine.run_folder import RunFolder
from ens_tui import rundir
from ens_tui.widgets._format import duration

UNREADABLE = "unreadable"


@dataclass(frozen=True)
class RunSummary:
    """One run folder as the browser lists it; None where a figure is unknown (not recorded, or unreadable)."""

    path: Path
    status: str
    """The real status (`rundir.run_status`: a `running` run.json with no launcher holding the lock is
    interrupted), or `unreadable` when run.json cannot be read and no launcher holds the lock."""
    reason: str = ""
    problems: tuple[str, ...] = ()
    """What could not be read, one short line each (`report.json: not JSON (…)`); empty for a sound folder."""
    name: str | None = None
    strategy: str | None = None
    ranks: str | None = None
    """Ranks × device, e.g. `2×cpu` or `2×cpu+1×cuda`."""
    world_size: int | None = None
    members: int | None = None
    epochs: int | None = None
    started: float | None = None
    ended: float | None = None
    """When the launcher recorded the end; for a run whose launcher died, its last recorded event."""
    resumes: int = 0
    accuracy: float | None = None
    nll: float | None = None
    brier: float | None = None
    ece: float | None = None
    mutual_information: float | None = None
    member_epochs: int = 0
    """Epochs completed, summed over members (events.jsonl)."""
    epoch_seconds: float | None = None
    """Mean seconds of one member's epoch."""
    member_seconds: float | None = None
    """Seconds spent training members, summed over members."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved config flattened to dotted keys (`train.epochs`); empty when config.toml is unreadable."""
    modified: float = 0.0

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def shown_status(self) -> str:
        """What the status column says: `unreadable` for any folder with a problem, else the status."""
        return UNREADABLE if self.problems else self.status

    @property
    def note(self) -> str:
        """One line: why the folder is unreadable, or why the run ended as it did."""
        if self.problems:
            return f"{UNREADABLE}: {'; '.join(self.problems)}"
        return self.reason

    @property
    def wall_seconds(self) -> float | None:
        """The launch's wall time (the last resume's, for a resumed run); so far, for a running one."""
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.time() if self.status == "running" else None
        return None if end is None else max(end - self.started, 0.0)

    @property
    def when(self) -> float:
        """When the run started (its folder's modification time when run.json does not say): the date column."""
        return self.started if self.started is not None else self.modified

    @property
    def total_member_epochs(self) -> int | None:
        return self.members * self.epochs if self.members is not None and self.epochs is not None else None

    def cell(self, column: str) -> str:
        """The column's display text (`–` for unknown)."""
        return _CELLS[column](self)


def _number(value: float | int | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _date(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "–"


@dataclass(frozen=True)
class Column:
    """A column of the runs table: its key, header, how to sort it, and which way is `best first`."""

    key: str
    label: str
    sort_key: Callable[[RunSummary], Any]
    descending: bool = False
    numeric: bool = False
    """Right-aligned."""


COLUMNS: tuple[Column, ...] = (
    Column("status", "status", lambda r: r.shown_status),
    Column("date", "date", lambda r: r.when, descending=True),
    Column("name", "name", lambda r: r.name),
    Column("accuracy", "acc", lambda r: r.accuracy, descending=True, numeric=True),
    Column("nll", "nll", lambda r: r.nll, numeric=True),
    Column("ece", "ece", lambda r: r.ece, numeric=True),
    Column("wall", "wall", lambda r: r.wall_seconds, numeric=True),
    Column("strategy", "strategy", lambda r: r.strategy),
    Column("ranks", "ranks", lambda r: r.world_size),
    Column("members", "members", lambda r: r.members, numeric=True),
    Column("epochs", "epochs", lambda r: r.epochs, numeric=True),
)
COLUMN = {c.key: c for c in COLUMNS}

_CELLS: dict[str, Callable[[RunSummary], str]] = {
    "status": lambda r: r.shown_status,
    "date": lambda r: _date(r.when),
    "name": lambda r: r.name or "–",
    "accuracy": lambda r: _number(r.accuracy),
    "nll": lambda r: _number(r.nll),
    "ece": lambda r: _number(r.ece),
    "wall": lambda r: duration(r.wall_seconds),
    "strategy": lambda r: r.strategy or "–",
    "ranks": lambda r: r.ranks or "–",
    "members": lambda r: _number(r.members, "d"),
    "epochs": lambda r: _number(r.epochs, "d"),
}


def sort_runs(runs: list[RunSummary], column: str, descending: bool) -> list[RunSummary]:
    """Sorted by one column; unknown values (None) last either way, ties newest first."""
    key = COLUMN[column].sort_key
    newest = sorted(runs, key=lambda r: (r.when, r.id), reverse=True)
    known = [r for r in newest if key(r) is not None]
    return sorted(known, key=key, reverse=descending) + [r for r in newest if key(r) is None]


# ---------------------------------------------------------------------- reading


def _short(message: str, path: Path) -> str:
    """A reader's one-line message with the file's full path cut to its name (the row already says which run)."""
    first = (message.splitlines() or [""])[0]
    return first.replace(str(path), path.name)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"epochs": 3}}` → `{"train.epochs": 3}`; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def summarize(run_dir: Path) -> RunSummary:
    """Everything the browser shows about one folder; never raises for what is inside it."""
    folder = RunFolder(run_dir)
    found: dict[str, Any] = {}
    problems: list[str] = []
    try:
        modified = run_dir.stat().st_mtime
        empty = not any(run_dir.iterdir())
    except OSError as err:
        return RunSummary(run_dir, UNREADABLE, problems=(f"cannot read the folder ({err.strerror or err})",))
    if empty:
        return RunSummary(run_dir, UNREADABLE, problems=("empty folder",), modified=modified)

    # run.json: status and timings
    status, reason, info = UNREADABLE, "", None
    try:
        info = json.loads(folder.info.read_bytes())
    except FileNotFoundError:
        problems.append(f"no {folder.info.name}")
    except OSError as err:
        problems.append(f"{folder.info.name}: cannot read it ({err.strerror or err})")
    except (ValueError, RecursionError) as err:
        problems.append(f"{folder.info.name}: not JSON ({err})")
    if info is not None and not isinstance(info, dict):
        problems.append(f"{folder.info.name}: not a run record (expected a JSON object)")
        info = None
    if info is not None:
        status, reason = rundir.run_status(run_dir, info)
        found["started"] = _float(info.get("started"))
        found["ended"] = _float(info.get("ended"))
        resumes = info.get("resumes")
        found["resumes"] = resumes if isinstance(resumes, int) else 0
    elif rundir.is_running(run_dir):
        status = "running"  # a launcher holds the lock and has not written run.json yet

    # config.toml: what the run is
    try:
        config = load_config(folder.config)
    except ConfigError as err:
        problems.append(_short(str(err), folder.config) if folder.config.exists() else f"no {folder.config.name}")
    else:
        p, t = config.parallel, config.train
        counts: dict[str, int] = {}
        for device in p.rank_devices():
            counts[device] = counts.get(device, 0) + 1
        found.update(name=config.name, strategy=p.strategy, world_size=p.world_size, members=t.members,
                     epochs=t.epochs, ranks="+".join(f"{n}×{d}" for d, n in counts.items()),
                     config=flatten(config.model_dump(mode="json")))

    # report.json: the ensemble's metrics
    try:
        report = rundir.read_report(run_dir)
    except ReportError as err:
        problems.append(_short(str(err), folder.report_json))
    else:
        if report is not None:
            e = report.ensemble
            found.update(accuracy=e.accuracy, nll=e.nll, brier=e.brier, ece=e.ece,
                         mutual_information=report.uncertainty.mutual_information)

    # events.jsonl: progress and timings
    try:
        events = rundir.read_events(run_dir)
    except rundir.RunDirError as err:
        problems.append(_short(str(err), folder.events))
    else:
        if events.skipped:
            total = events.skipped + len(events)
            problems.append(f"{folder.events.name}: {events.skipped} of {total} lines unreadable")
        found.update(_timings(events))
        if status == "interrupted" and found.get("ended") is None and events:
            found["ended"] = events[-1].t  # the launcher died: the last thing it recorded

    return RunSummary(run_dir, status, reason, tuple(problems), modified=modified, **found)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timings(events: list[ev.Event]) -> dict[str, Any]:
    epochs = [e.seconds for e in events if isinstance(e, ev.Epoch)]
    members = [e.seconds for e in events if isinstance(e, ev.MemberDone)]
    return {
        "member_epochs": len(epochs),
        "epoch_seconds": sum(epochs) / len(epochs) if epochs else None,
        "member_seconds": sum(members) if members else None,
    }


def output_dir_problem(output_dir: Path) -> str | None:
    """Why `output_dir` cannot be browsed (missing, a file, unreadable), or None."""
    if not output_dir.exists():
        return f"{output_dir}: no such folder"
    if not output_dir.is_dir():
        return f"{output_dir}: is a file, not a folder of runs"
    if RunFolder(output_dir).is_run():
        return f"{output_dir}: is one run folder (replay it with `ens-tui show {output_dir}`); browse its parent"
    if not os.access(output_dir, os.R_OK | os.X_OK):
        return f"{output_dir}: not readable by this user"
    return None


def scan(output_dir: Path) -> list[RunSummary]:
    """Every folder under `output_dir` (hidden ones aside), newest first; [] when it cannot be listed."""
    try:
        folders = [p for p in Path(output_dir).iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    return sort_runs([summarize(p) for p in folders], "date", descending=True)


# ---------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side; each row is (what, run a's value, run b's value)."""

    a: RunSummary
    b: RunSummary
    config: list[tuple[str, str, str]]
    """Only the config keys that differ (a key one config lacks shows `–`); empty when either config.toml is
    unreadable (then `same_keys` is 0 too)."""
    same_keys: int
    timings: list[tuple[str, str, str]]
    metrics: list[tuple[str, str, str, str | None]]
    """(metric, a, b, which is better: `a`, `b` or None when equal or unknown)."""


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def compare(a: RunSummary, b: RunSummary) -> Comparison:
    """Config differences key by key, timings and metrics of two runs."""
    # Without both configs there is nothing to line up (the dialog says whose config.toml is unreadable).
    keys = list(a.config) + [k for k in b.config if k not in a.config] if a.config and b.config else []
    differ = [k for k in keys if a.config.get(k, ...) != b.config.get(k, ...)]
    config = [(k, _value(a.config.get(k)), _value(b.config.get(k))) for k in differ]
    timings = [
        ("status", a.shown_status, b.shown_status),
        ("started", _date(a.when), _date(b.when)),
        ("wall time", duration(a.wall_seconds), duration(b.wall_seconds)),
        ("epochs trained", _progress(a), _progress(b)),
        ("mean epoch", _seconds(a.epoch_seconds), _seconds(b.epoch_seconds)),
        ("member time (sum)", duration(a.member_seconds), duration(b.member_seconds)),
        ("resumes", str(a.resumes), str(b.resumes)),
    ]
    metrics: list[tuple[str, str, str, str | None]] = []
    for label, attr, higher in (("accuracy", "accuracy", True), ("NLL", "nll", False), ("Brier", "brier", False),
                                ("ECE", "ece", False), ("mutual information", "mutual_information", None)):
        va, vb = getattr(a, attr), getattr(b, attr)
        better = None
        if higher is not None and va is not None and vb is not None and va != vb:
            better = "a" if (va > vb) == higher else "b"
        metrics.append((label, _number(va, ".4f"), _number(vb, ".4f"), better))
    return Comparison(a, b, config, len(keys) - len(differ), timings, metrics)


def _progress(run: RunSummary) -> str:
    total = run.total_member_epochs
    return f"{run.member_epochs}/{total}" if total else str(run.member_epochs)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}s"
