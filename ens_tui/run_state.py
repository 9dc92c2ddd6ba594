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
from typing import Literal, NamedTuple

from engine import events as ev
from engine.config import RunConfig
from engine.report_model import SizeLaw
from ens_tui.widgets import _format as fmt

RankStatus = Literal["starting", "training", "scoring", "done", "failed", "stopped"]
"""`scoring`: every member the rank holds is trained; it scores them (and rank 0 writes the report) until goodbye."""
Phase = Literal["starting", "training", "scoring", "finishing", "finished", "failed", "interrupted"]
Level = Literal["debug", "info", "warning", "error"]

BUSY: tuple[RankStatus, ...] = ("starting", "training", "scoring")
END_STATUS: dict[str, RankStatus] = {"finished": "done", "failed": "failed", "interrupted": "stopped"}
"""What a rank still busy when the run ends is shown as."""
HISTORY_SECONDS = 1.0
"""Throughput history is sampled once per this many seconds of event time."""
HISTORY_LEN = 600
MAX_LOSS_POINTS = 1200
"""Per member; older points are thinned (every other one dropped) past this."""
ENSEMBLE_HISTORY = 240
"""Live ensemble scores kept for the trend (one per member-epoch)."""


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
    """The share placement gave this rank (empty when members come from a queue)."""
    current: list[int] = field(default_factory=list)
    """The members the rank trains now, all at once under broadcast and fused; once trained, the last ones it held."""
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    """The rank's rate at its latest step report; None while it is not training or has not reported yet."""
    status: RankStatus = "starting"
    members_done: int = 0
    util: ev.Util | None = None
    silent_s: float | None = None
    """Seconds the launcher had heard nothing from this rank when it said so; None once it speaks again."""
    straggler: bool = False
    """Flagged by the launcher: far slower than its peers (a member queue hands it no new members meanwhile)."""
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))

    @property
    def where(self) -> str:
        """host:pid, or ? before hello."""
        return f"{self.host}:{self.pid}" if self.pid is not None else "?"


class ValPoint(NamedTuple):
    """One member's validation scores after an epoch (None where the rank sent none)."""

    epoch: int
    """Epochs done, counted from 1 (the loss plot's x at the epoch's end)."""
    accuracy: float | None
    nll: float | None


@dataclass
class MemberProgress:
    """Training progress of one ensemble member, for the loss and validation plots and the overall progress bar."""

    member: int
    rank: int | None = None
    fraction: float = 0.0
    losses: list[tuple[float, float]] = field(default_factory=list)
    epoch_losses: list[tuple[float, float]] = field(default_factory=list)
    val_accuracy: float | None = None
    val: list[ValPoint] = field(default_factory=list)
    """Validation accuracy and NLL after each epoch, in epoch order; empty without a validation split."""
    done: bool = False
    diverged: bool = False
    stopped: bool = False
    """Stopped by the user before its last epoch."""
    restarted: bool = False
    """Trained again from its initial weights at a lower learning rate after it diverged."""

    def add_val(self, point: ValPoint) -> None:
        """Keep `point`; an epoch seen again (a resume retraining it) replaces the series from there on."""
        if point.accuracy is None and point.nll is None:
            return
        while self.val and self.val[-1].epoch >= point.epoch:
            self.val.pop()
        self.val.append(point)


class EnsemblePoint(NamedTuple):
    """The live ensemble's validation scores when its members held `member_epochs` epochs in all."""

    member_epochs: int
    val_nll: float
    val_accuracy: float


def last_gain(ensemble: ev.Ensemble) -> float | None:
    """What the last finished member changed the finished members' NLL by (negative: it helped); None below two
    members or where the curve skips sizes (thinned past a hundred members)."""
    curve = ensemble.curve
    if len(curve) < 2 or curve[-1].size != curve[-2].size + 1:
        return None
    return curve[-1].nll - curve[-2].nll


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def signed(value: float) -> str:
    """An NLL change with its sign (a real minus): −0.0012, +0.0003."""
    return f"{'−' if value < 0 else '+'}{abs(value):.4f}"


def ensemble_line(ensemble: ev.Ensemble) -> str:
    """What the finished members are worth, in one line (the log's and the headless view's)."""
    curve = ensemble.curve
    k = curve[-1].size if curve else len(ensemble.finished)
    plural = "s" * (k != 1)
    nll = f": val NLL {fmt.score(curve[-1].nll)}" if curve else ""
    gain = last_gain(ensemble)
    text = f"ensemble of {k} finished member{plural}{nll}"
    if gain is not None:
        text += f" ({signed(gain)} from the {ordinal(k)})"
    fit = ensemble.fit
    if fit is not None:
        text += f"; next member ≈ {signed(-fit.next_gain)}"
        text += ("; already at 95 % of the attainable gain" if fit.gain_95 <= fit.sizes
                 else f"; {fit.gain_95} members reach 95 % of the gain")
    return text


def size_law_lines(law: SizeLaw) -> list[str]:
    """The law fitted to a report's size curve as the report screen and the headless summary say it, in lines
    short enough for an 80-column log: the law, the next member and enough members, the projection."""
    enough = ("the members trained reach 95 % of the attainable gain" if law.gain_95 <= law.sizes
              else f"{law.gain_95} members reach 95 % of the attainable gain")
    lines = [f"NLL(k) ≈ {law.a:.4f} + {law.b:.4f}/k through sizes 1–{law.sizes}",
             f"next member ≈ {signed(-law.next_gain)} NLL · {enough}"]
    if law.projected:
        lines.append("projected NLL: " + " · ".join(f"{p.size} → {fmt.score(p.nll)}" for p in law.projected))
    return lines


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
    ensemble: ev.Ensemble | None = None
    """The newest live ensemble: the most member-epochs (of two alike, the later); events from ranks may cross."""
    ensemble_history: deque[EnsemblePoint] = field(default_factory=lambda: deque(maxlen=ENSEMBLE_HISTORY))
    """The newest ensemble's scores as they came, in growing member-epochs."""
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
        return sum(r.samples_per_s or 0.0 for r in self.ranks.values() if r.status == "training")

    @property
    def phase(self) -> Phase:
        """What the run does now: starting, training, scoring (every member trained, the report not saved yet),
        finishing (report saved, the ranks saying goodbye), or how it ended."""
        if self.done is not None:
            return self.done.status
        if self.report is not None:
            return "finishing"
        if self.members and self.members_done() >= self.total_members:
            return "scoring"
        return "training" if self.ranks else "starting"

    @property
    def progress(self) -> float:
        """Share of all member-epochs done, 0..1."""
        if self.done is not None and self.done.status == "finished":
            return 1.0
        total = sum(m.fraction for m in self.members.values())
        return min(total / self.total_members, 1.0)

    @property
    def elapsed(self) -> float:
        """Seconds between the first event and the last one seen: the clock the log is stamped with (the
        launcher's count from launch, start-up included, is only told in the run's last log line)."""
        if self.started_t is None or self.last_t is None:
            return 0.0
        return max(self.last_t - self.started_t, 0.0)

    def elapsed_at(self, now: float) -> float:
        """Seconds since the first event at wall-clock `now` (live runs tick between events)."""
        if self.started_t is None:
            return 0.0
        if self.done is not None:
            return self.elapsed
        return max(now - self.started_t, self.elapsed)

    def eta(self, elapsed: float) -> float | None:
        """Seconds of training left, extrapolating the progress so far: 0 once finished; None until there is
        enough to go on, while scoring (no progress to extrapolate) and once the run failed or was interrupted."""
        if self.done is not None:
            return 0.0 if self.done.status == "finished" else None
        p = self.progress
        if p < 0.01 or p >= 1.0 or elapsed <= 0:
            return None
        return elapsed * (1.0 - p) / p

    def members_done(self) -> int:
        """Members that finished training."""
        return sum(1 for m in self.members.values() if m.done)

    @property
    def live_ensemble_off(self) -> str | None:
        """Why the ranks score no live ensemble in this run (its config says so), or None."""
        if self.config is None:
            return None
        if not self.config.train.live_ensemble:
            return "[train] live_ensemble = false"
        if self.config.data.val_fraction == 0:
            return "no validation split (data.val_fraction = 0)"
        return None

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
        if event.rank is not None and event.rank in self.ranks and not isinstance(event, ev.RankSilent):
            self.ranks[event.rank].silent_s = None

        def log(level: Level, text: str) -> None:
            new.append(LogEntry(event.t, level, source, text))

        match event:
            case ev.Hello():
                r = self.rank(event.rank or 0)
                r.device, r.host, r.pid, r.members = event.device, event.host, event.pid, list(event.members)
                log("info", f"joined on {event.device} ({event.host}:{event.pid}), "
                            f"members {fmt.members(event.members) or 'from the queue'}")
            case ev.MemberStart():
                r = self.rank(event.rank or 0)
                r.device = event.device
                m = self.member(event.member)
                if m.done and m.diverged:  # a restart: it trains again from the start
                    m.done, m.diverged, m.restarted, m.fraction = False, False, True, 0.0
                    m.losses, m.epoch_losses, m.val = [], [], []
                self._hold(r, event.member)
            case ev.Step():
                r = self.rank(event.rank or 0)
                self._hold(r, event.member)
                r.epoch, r.step, r.steps = event.epoch, event.step, event.steps
                r.loss, r.samples_per_s = event.loss, event.samples_per_s
                self.peak_samples_per_s = max(self.peak_samples_per_s, self.total_samples_per_s)
                if self.config is not None:
                    r.epochs = self.config.train.epochs
                m = self.member(event.member)
                x = event.epoch + min(event.step / event.steps, 1.0)
                m.fraction = max(m.fraction, x / (r.epochs or max(event.epoch + 1, 1)))
                m.losses.append((x, event.loss))
                if len(m.losses) > MAX_LOSS_POINTS:
                    m.losses = m.losses[::2]
            case ev.Epoch():
                r = self.rank(event.rank or 0)
                r.epochs = event.epochs
                if event.member in r.current and event.epoch >= (r.epoch or 0):
                    # The epoch's last steps may fall between throttled reports: it ended, so all of them ran.
                    r.epoch = event.epoch
                    r.step = r.steps - 1 if r.steps is not None else None
                m = self.member(event.member)
                m.fraction = max(m.fraction, (event.epoch + 1) / event.epochs)
                m.epoch_losses.append((float(event.epoch + 1), event.train_loss))
                m.val_accuracy = event.val_accuracy
                m.add_val(ValPoint(event.epoch + 1, event.val_accuracy, event.val_nll))
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
                m = self.member(event.member)
                m.done, m.diverged, m.stopped, m.fraction = True, event.diverged, event.stopped, 1.0
                m.val_accuracy = event.val_accuracy if event.val_accuracy is not None else m.val_accuracy
                if r.status == "training" and all(self.member(i).done for i in r.current):
                    r.status, r.samples_per_s = "scoring", None
                name = fmt.member(event.member)
                acc = f", val acc {fmt.accuracy(event.val_accuracy)}" if event.val_accuracy is not None else ""
                if event.diverged:
                    log("warning", f"{name} diverged and was stopped after {event.seconds:.1f} s")
                elif event.stopped:
                    log("info", f"{name} stopped by the user after {event.seconds:.1f} s{acc}; it stays in the "
                                "ensemble with what it learned")
                else:
                    log("info", f"{name} done in {event.seconds:.1f} s{acc}")
            case ev.Ensemble():
                before = self.ensemble
                if before is None or event.t >= before.t:
                    self.ensemble = event
                    history = self.ensemble_history
                    if history and history[-1].member_epochs == event.member_epochs:
                        history.pop()
                    history.append(EnsemblePoint(event.member_epochs, event.val_nll, event.val_accuracy))
                    if len(event.finished) > (len(before.finished) if before is not None else 0):
                        log("info", ensemble_line(event))
            case ev.Log():
                log(event.level, event.message)
            case ev.Error():
                if event.rank is not None:
                    self.rank(event.rank).status = "failed"
                    self.rank(event.rank).samples_per_s = None
                text = event.message + (f"\n{event.traceback.rstrip()}" if event.traceback else "")
                log("error", text)
            case ev.PredictionsSaved():
                log("info", f"predictions of {len(event.members)} members saved")
            case ev.ReportSaved():
                self.report = event
                log(
                    "info",
                    f"report saved: accuracy {fmt.accuracy(event.accuracy)}, NLL {fmt.score(event.nll)}, "
                    f"ECE {fmt.score(event.ece)}, MI {fmt.score(event.mutual_information)}",
                )
            case ev.Goodbye():
                r = self.rank(event.rank or 0)
                if r.status != "failed":
                    r.status = "done"
                r.samples_per_s = None
            case ev.RankSilent():
                r = self.rank(event.rank or 0)
                if r.silent_s is None:
                    new.append(LogEntry(event.t, "warning", "launcher",
                                        f"rank {r.rank} silent for {event.seconds:.0f} s (stopped or hung?)"))
                r.silent_s = event.seconds
            case ev.Straggler():
                r = self.rank(event.rank or 0)
                r.straggler = event.flagged
                who = f"rank {r.rank} ({r.host}:{r.pid})" if r.pid is not None else f"rank {r.rank}"
                if event.flagged:
                    log("warning", f"{who} is a straggler: {fmt.rate(event.samples_per_s)}/s against its peers' "
                                   f"median {fmt.rate(event.peers_median)}/s for {event.seconds:.0f} s; it gets no new "
                                   "members while flagged")
                else:
                    log("info", f"{who} caught up ({fmt.rate(event.samples_per_s)}/s, peers' median "
                                f"{fmt.rate(event.peers_median)}/s): no longer a straggler")
            case ev.RunDone():
                self.done = event
                for r in self.ranks.values():
                    r.samples_per_s = None
                    if r.status in BUSY:
                        r.status = END_STATUS[event.status]
                reason = f": {event.reason}" if event.reason else ""
                level: Level = "info" if event.status == "finished" else (
                    "warning" if event.status == "interrupted" else "error"
                )
                log(level, f"run {event.status} after {self.elapsed:.1f} s{self._since_launch(event)}{reason}")
        self.logs.extend(new)
        return new

    def _hold(self, r: RankState, member: int) -> None:
        """`member` trains on rank `r`: it joins the members the rank holds, or starts a new group once those
        are all trained (a rank of the local strategy moving on to its next member)."""
        self.member(member).rank = r.rank
        if member not in r.current:
            if all(self.member(i).done for i in r.current):
                r.current, r.epoch, r.step, r.loss, r.samples_per_s = [], None, None, None, None
            r.current.append(member)
        r.status = "training"

    def _since_launch(self, done: ev.RunDone) -> str:
        """The launcher's count from launch, stated against the log's clock (which starts at the first event)."""
        start_up = done.seconds - self.elapsed
        if start_up < 0.05:
            return ""
        return f" ({done.seconds:.1f} s since launch: the ranks took {start_up:.1f} s to start)"

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
                r.history.append((r.samples_per_s or 0.0) if r.status == "training" else 0.0)
