"""Textual messages the UI posts to itself; each wraps one wire event (engine.events) or a launch milestone.

The event-reading worker only turns events into these messages; handlers on the run screen change widgets.
High-rate progress (Step, Util) merges: when the screen falls behind, a newer message for the same rank
(and member) supersedes the one still waiting in the queue, so a flood of steps never lags the display.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from engine import events as ev


class RunEvent(Message):
    """Base of every message carrying one wire event."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event


class RankJoined(RunEvent):
    """A rank said hello: who it is, where it runs, which members it holds."""


class MemberStarted(RunEvent):
    """A rank began training a member."""


class StepProgress(RunEvent):
    """Training progress of one member; merges with a newer one for the same rank and member."""

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, StepProgress)
            and message.event.rank == self.event.rank
            and message.event.member == self.event.member  # type: ignore[union-attr]
        )


class EpochEnded(RunEvent):
    """A member finished an epoch (train loss, validation metrics)."""


class UtilSample(RunEvent):
    """Resource use of one rank; merges with a newer sample from the same rank."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, UtilSample) and message.event.rank == self.event.rank


class MemberFinished(RunEvent):
    """A member finished training (or diverged)."""


class LogLine(RunEvent):
    """A message for the log pane."""


class RankFailed(RunEvent):
    """A rank or the launcher failed; carries the traceback."""


class PredictionsReady(RunEvent):
    """Rank 0 saved every member's test-set predictions."""


class ReportReady(RunEvent):
    """The uncertainty report is on disk."""


class RankFinished(RunEvent):
    """A rank finished its part cleanly."""


class RunFinished(RunEvent):
    """The run ended (finished, failed or interrupted); always the last event."""


class RunStarted(Message):
    """The launcher created the run folder and spawned the ranks."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class LaunchFailed(Message):
    """The launcher could not start the run at all (bad config, no mpiexec, busy port …)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


_BY_TYPE: dict[type, type[RunEvent]] = {
    ev.Hello: RankJoined,
    ev.MemberStart: MemberStarted,
    ev.Step: StepProgress,
    ev.Epoch: EpochEnded,
    ev.Util: UtilSample,
    ev.MemberDone: MemberFinished,
    ev.Log: LogLine,
    ev.Error: RankFailed,
    ev.PredictionsSaved: PredictionsReady,
    ev.ReportSaved: ReportReady,
    ev.Goodbye: RankFinished,
    ev.RunDone: RunFinished,
}


def message_for(event: ev.Event) -> RunEvent:
    """The message class that carries this event."""
    return _BY_TYPE[type(event)](event)
