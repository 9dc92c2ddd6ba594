"""Textual messages the UI posts to itself; each wraps one wire event (engine.events) or a launch milestone.

The event-reading worker only turns events into these messages; the run screen's handler folds every
RunEvent through its RunState, so a new event type needs no message of its own.
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


class StepProgress(RunEvent):
    """Training progress of one member; merges with a newer one for the same rank and member."""

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, StepProgress)
            and message.event.rank == self.event.rank
            and message.event.member == self.event.member  # type: ignore[union-attr]
        )


class UtilSample(RunEvent):
    """Resource use of one rank; merges with a newer sample from the same rank."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, UtilSample) and message.event.rank == self.event.rank


class RunFinished(RunEvent):
    """The run ended (finished, failed or interrupted); always the last event."""


class RunStarted(Message):
    """The launcher created the run folder and spawned the ranks."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


_BY_TYPE: dict[type, type[RunEvent]] = {ev.Step: StepProgress, ev.Util: UtilSample, ev.RunDone: RunFinished}
"""Events whose message is more than a plain RunEvent: the mergeable ones, and the end the screen waits for."""


def message_for(event: ev.Event) -> RunEvent:
    """The message that carries this event (a plain RunEvent unless it merges or ends the run)."""
    return _BY_TYPE.get(type(event), RunEvent)(event)
