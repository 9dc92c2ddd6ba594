"""The one fold of events into state, with no Textual in sight: the dashboard and the headless view read it.

Live runs and replays (`ens-tui show`) go through the same `RunState.apply`, so replaying events.jsonl
rebuilds the state the live run had after its last event: ranks, members, losses, throughput history,
log. The state keeps time only from the events' own stamps, which keeps replays and snapshot tests
deterministic; what a live view adds on top is not replayed: the elapsed clock ticking on the wall clock
between events (`elapsed_at`), and Step/Util messages the dashboard merged away when it fell behind
(events.jsonl holds every one of them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from engine import events as ev
from engine.config import RunConfig

RankStatus = Literal["starting", "training", "done", "failed", "stopped"]
Level = Literal["debug", "info", "warning", "error"]

END_STATUS: dict[str, RankStatus] = {"finished": "done", "failed": "failed", "interrupted": "stopped"}
"""What a rank still busy when the run ends is shown as."""
HISTORY_SECONDS = 1.0
"""Throughput history is sampled once per this many seconds of event time."""
HISTORY_LEN = 600
MAX_LOSS_POINTS = 1200
"""Per member; older points are thinned (every other one dropped) past this."""


@dataclass
class LogEntry:
    """One line (or block, for tracebacks) of the log pane."""

    t: float
    level: Level
    source: str
    text: str


@dataclass
class RankState:
    """What the rank table shows for one rank."""

    rank: int
    device: str = "?"
    host: str = "?"
    pid: int | None = None
    members: list[int] = field(default_factory=list)
    member: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    samples_per_s: float = 0.0
    status: RankStatus = "starting"
    members_done: int = 0
    util: ev.Util | None = None
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))

    @property
    def where(self) -> str:
        """host:pid, or ? before hello."""
        return f"{self.host}:{self.pid}" if self.pid is not None else "?"


@dataclass
class MemberProgress:
    """Training progress of one ensemble member, for the loss plot and the overall progress bar."""

    member: int
    rank: int | None = None
    fraction: float = 0.0
    losses: list[tuple[float, float]] = field(default_factory=list)
    epoch_losses: list[tuple[float, float]] = field(default_factory=list)
    val_accuracy: float | None = None
    done: bool = False
    diverged: bool = False


@dataclass
class RunState:
    """Everything the dashboard knows about a run."""

    config: RunConfig | None = None
    ranks: dict[int, RankState] = field(default_factory=dict)
    members: dict[int, MemberProgress] = field(default_factory=dict)
    logs: list[LogEntry] = field(default_factory=list)
    total_history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))
    system_cpu: dict[str, float] = field(default_factory=dict)
    gpus: dict[tuple[str, int], ev.Util] = field(default_factory=dict)
    peak_samples_per_s: float = 0.0
    started_t: float | None = None
    last_t: float | None = None
    report: ev.ReportSaved | None = None
    done: ev.RunDone | None = None
    _bucket: int = 0

    # ------------------------------------------------------------------ derived views

    @property
    def running(self) -> bool:
        """True from the first event until RunDone."""
        return self.done is None

    @property
    def total_members(self) -> int:
        """Members the run trains (from the config, else the members seen so far)."""
        if self.config is not None:
            return self.config.train.members
        return max(len(self.members), 1)

    @property
    def total_samples_per_s(self) -> float:
        """Sum of the latest throughput of every rank still training."""
        return sum(r.samples_per_s for r in self.ranks.values() if r.status == "training")

    @property
    def progress(self) -> float:
        """Share of all member-epochs done, 0..1."""
        if self.done is not None and self.done.status == "finished":
            return 1.0
        total = sum(m.fraction for m in self.members.values())
        return min(total / self.total_members, 1.0)

    @property
    def elapsed(self) -> float:
        """Seconds between the first event and the last one seen (the launcher's own count once it ended,
        which includes the ranks' start-up before their first event)."""
        if self.started_t is None or self.last_t is None:
            return 0.0
        seen = max(self.last_t - self.started_t, 0.0)
        return max(seen, self.done.seconds) if self.done is not None else seen

    def elapsed_at(self, now: float) -> float:
        """Seconds since the first event at wall-clock `now` (live runs tick between events)."""
        if self.started_t is None:
            return 0.0
        if self.done is not None:
            return self.elapsed
        return max(now - self.started_t, self.elapsed)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left, extrapolating the progress so far; None until there is enough to go on."""
        p = self.progress
        if self.done is not None:
            return 0.0
        if p < 0.01 or elapsed <= 0:
            return None
        return elapsed * (1.0 - p) / p

    def members_done(self) -> int:
        """Members that finished training."""
        return sum(1 for m in self.members.values() if m.done)

    # ------------------------------------------------------------------ folding events

    def rank(self, index: int) -> RankState:
        """The state of a rank, created on first mention."""
        if index not in self.ranks:
            self.ranks[index] = RankState(rank=index)
        return self.ranks[index]

    def member(self, index: int) -> MemberProgress:
        """The progress of a member, created on first mention."""
        if index not in self.members:
            self.members[index] = MemberProgress(member=index)
        return self.members[index]

    def apply(self, event: ev.Event) -> list[LogEntry]:
        """Fold one event in; returns the log lines it produced (also kept in `logs`)."""
        if self.started_t is None:
            self.started_t = event.t
        self._advance_clock(event.t)
        source = "launcher" if event.rank is None else f"rank {event.rank}"
        new: list[LogEntry] = []

        def log(level: Level, text: str) -> None:
            new.append(LogEntry(event.t, level, source, text))

        match event:
            case ev.Hello():
                r = self.rank(event.rank or 0)
                r.device, r.host, r.pid, r.members = event.device, event.host, event.pid, list(event.members)
                members = ", ".join(map(str, event.members)) or "from the queue"
                log("info", f"joined on {event.device} ({event.host}:{event.pid}), members {members}")
            case ev.MemberStart():
                r = self.rank(event.rank or 0)
                r.member, r.device, r.status = event.member, event.device, "training"
                r.epoch, r.step, r.loss = 0, None, None
                self.member(event.member).rank = event.rank
            case ev.Step():
                r = self.rank(event.rank or 0)
                r.status = "training"
                r.member, r.epoch, r.step, r.steps = event.member, event.epoch, event.step, event.steps
                r.loss, r.samples_per_s = event.loss, event.samples_per_s
                self.peak_samples_per_s = max(self.peak_samples_per_s, self.total_samples_per_s)
                if self.config is not None:
                    r.epochs = self.config.train.epochs
                m = self.member(event.member)
                m.rank = event.rank
                x = event.epoch + min(event.step / event.steps, 1.0)
                m.fraction = max(m.fraction, x / (r.epochs or max(event.epoch + 1, 1)))
                m.losses.append((x, event.loss))
                if len(m.losses) > MAX_LOSS_POINTS:
                    m.losses = m.losses[::2]
            case ev.Epoch():
                r = self.rank(event.rank or 0)
                r.epochs = event.epochs
                m = self.member(event.member)
                m.fraction = max(m.fraction, (event.epoch + 1) / event.epochs)
                m.epoch_losses.append((float(event.epoch + 1), event.train_loss))
                m.val_accuracy = event.val_accuracy
            case ev.Util():
                r = self.rank(event.rank or 0)
                r.util = event
                if event.system_cpu_percent is not None:
                    self.system_cpu[r.host] = event.system_cpu_percent
                if event.gpu_index is not None:
                    self.gpus[(r.host, event.gpu_index)] = event
            case ev.MemberDone():
                r = self.rank(event.rank or 0)
                r.members_done += 1
                r.samples_per_s = 0.0
                m = self.member(event.member)
                m.done, m.diverged, m.fraction = True, event.diverged, 1.0
                m.val_accuracy = event.val_accuracy if event.val_accuracy is not None else m.val_accuracy
                acc = f", val acc {event.val_accuracy:.1%}" if event.val_accuracy is not None else ""
                if event.diverged:
                    log("warning", f"member {event.member} diverged and was stopped after {event.seconds:.1f} s")
                else:
                    log("info", f"member {event.member} done in {event.seconds:.1f} s{acc}")
            case ev.Log():
                log(event.level, event.message)
            case ev.Error():
                if event.rank is not None:
                    self.rank(event.rank).status = "failed"
                    self.rank(event.rank).samples_per_s = 0.0
                text = event.message + (f"\n{event.traceback.rstrip()}" if event.traceback else "")
                log("error", text)
            case ev.PredictionsSaved():
                log("info", f"predictions of {len(event.members)} members saved")
            case ev.ReportSaved():
                self.report = event
                log(
                    "info",
                    f"report saved: accuracy {event.accuracy:.1%}, NLL {event.nll:.3f}, "
                    f"ECE {event.ece:.3f}, MI {event.mutual_information:.3f}",
                )
            case ev.Goodbye():
                r = self.rank(event.rank or 0)
                if r.status != "failed":
                    r.status = "done"
                r.samples_per_s = 0.0
            case ev.RunDone():
                self.done = event
                for r in self.ranks.values():
                    r.samples_per_s = 0.0
                    if r.status in ("starting", "training"):
                        r.status = END_STATUS[event.status]
                reason = f": {event.reason}" if event.reason else ""
                level: Level = "info" if event.status == "finished" else (
                    "warning" if event.status == "interrupted" else "error"
                )
                log(level, f"run {event.status} after {self.elapsed:.1f} s{reason}")
        self.logs.extend(new)
        return new

    def _advance_clock(self, t: float) -> None:
        """Record the throughput history for every whole sampling period that passed before `t`."""
        assert self.started_t is not None
        self.last_t = max(self.last_t or t, t)
        bucket = int((self.last_t - self.started_t) / HISTORY_SECONDS)
        # A long silence (or clocks that disagree) fills at most one history's worth of samples.
        missed = min(bucket - self._bucket, HISTORY_LEN)
        self._bucket = max(self._bucket, bucket)
        for _ in range(max(missed, 0)):
            self.total_history.append(self.total_samples_per_s)
            for r in self.ranks.values():
                r.history.append(r.samples_per_s if r.status == "training" else 0.0)
