"""Asked when the run screen controls one member (`m`): stop one that trains, or restart one that diverged from its
initial weights at a fraction of the learning rate. A request the run cannot honour is refused here, saying why,
and nothing is sent."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from engine.control import MIN_LR_FACTOR, Request, RestartMember, StopMember
from ens_tui.run_state import RunState

DEFAULT_LR_FACTOR = 0.1


def has_queue(state: RunState) -> bool:
    """Whether the run hands members out from a queue, which a restart goes back into."""
    config = state.config
    if config is None:
        return False
    parallel = config.parallel
    return (parallel.placement == "dynamic" and parallel.strategy in ("local", "fused")) or parallel.world_size == 1


def refusal(state: RunState, action: str, member: int, lr_factor: float = DEFAULT_LR_FACTOR) -> str | None:
    """Why `action` ("stop" or "restart") cannot apply to `member` now, or None."""
    total = state.total_members
    if not state.running:
        return "the run is not training any more"
    if total and not 0 <= member < total:
        return f"there is no member {member}: members are 0–{total - 1}"
    progress = state.members.get(member)
    if action == "stop":
        if progress is None or progress.rank is None:
            return f"member {member} has not started training yet"
        if progress.done:
            return f"member {member} has finished training"
        return None
    if progress is None or not progress.diverged:
        return f"member {member} has not diverged: only a diverged member restarts"
    if not has_queue(state):
        return ("a restart goes back into the member queue, which this run has not got: it needs placement = "
                "'dynamic' with strategy local or fused, or one rank")
    if not MIN_LR_FACTOR < lr_factor < 1:
        return f"the learning-rate factor must be between {MIN_LR_FACTOR:g} and 1 (exclusive), e.g. 0.1"
    return None


class MemberControl(ModalScreen[Request | None]):
    """The request to send, or None (escape)."""

    DEFAULT_CSS = """
    MemberControl { align: center middle; }
    MemberControl > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent 80%; background: $surface;
    }
    MemberControl Horizontal { height: auto; margin: 1 0 0 0; }
    MemberControl Horizontal > Label { color: $text-muted; padding: 0 1 0 0; }
    MemberControl Input { width: 10; margin: 0 2 0 0; }
    MemberControl Button { margin: 0 2 0 0; min-width: 10; }
    MemberControl #member-note { color: $warning; margin: 1 0 0 0; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        training = sorted(i for i, m in self.state.members.items() if m.rank is not None and not m.done)
        diverged = sorted(i for i, m in self.state.members.items() if m.diverged)
        first = (training or diverged or [0])[0]
        with Vertical():
            yield Label(Text("one member", style="bold"))
            yield Label(Text(f"training: {', '.join(map(str, training)) or 'none'} · diverged: "
                             f"{', '.join(map(str, diverged)) or 'none'}", style="dim"))
            with Horizontal():
                yield Label("member")
                yield Input(str(first), id="member-index", type="integer", compact=True)
                yield Label("lr ×")
                yield Input(str(DEFAULT_LR_FACTOR), id="member-lr", type="number", compact=True)
            with Horizontal():
                yield Button("Stop it", id="member-stop", variant="warning", compact=True)
                yield Button("Restart it", id="member-restart", variant="primary", compact=True)
            yield Label("", id="member-note")
            yield Label(Text("stop: ends after the step in progress, keeps what it learned · restart (a diverged "
                             "member): from its initial weights at lr × the factor · esc cancels", style="dim"))

    def action_cancel(self) -> None:
        """Close without sending anything."""
        self.dismiss(None)

    @on(Input.Changed)
    def _changed(self) -> None:
        self.query_one("#member-note", Label).update("")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        note = self.query_one("#member-note", Label)
        action = "stop" if event.button.id == "member-stop" else "restart"
        try:
            member = int(self.query_one("#member-index", Input).value)
            factor = float(self.query_one("#member-lr", Input).value) if action == "restart" else DEFAULT_LR_FACTOR
        except ValueError:
            note.update("type a member number (and, for a restart, a factor such as 0.1)")
            return
        if why := refusal(self.state, action, member, factor):
            note.update(why)
            return
        self.dismiss(StopMember(member=member) if action == "stop" else RestartMember(member=member, lr_factor=factor))
