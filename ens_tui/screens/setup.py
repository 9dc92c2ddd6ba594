"""Pick a setup with the keyboard, adjust members / epochs / batch size, and launch it."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static

from engine.config import ConfigError, RunConfig, with_overrides
from ens_tui.presets import Preset
from ens_tui.widgets.overrides_form import OverridesForm
from ens_tui.widgets.preset_list import Entry, PresetList
from ens_tui.widgets.setup_preview import SetupPreview

SetupChecker = Callable[[RunConfig], str | None]


class SetupScreen(Screen[None]):
    """The list on the left, the preview and the overrides on the right; Enter launches."""

    BINDINGS = [
        Binding("enter", "launch", "Launch", priority=True),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("m", "edit('members')", "Members"),
        Binding("e", "edit('epochs')", "Epochs"),
        Binding("b", "edit('batch_size')", "Batch"),
        Binding("escape", "back_to_list", "List", show=False),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit", "Quit"),
    ]

    class Launch(Message):
        """The user launches this config (overrides already applied)."""

        def __init__(self, config: RunConfig, preset: Preset) -> None:
            super().__init__()
            self.config = config
            self.preset = preset

    def __init__(self, presets: list[Preset], check: SetupChecker) -> None:
        super().__init__()
        self._entries = [Entry(p, check(p.config) if p.config is not None else None) for p in presets]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="setup-left"):
            yield Static("setups", classes="pane-title")
            yield PresetList(self._entries, id="presets")
        with Vertical(id="setup-right"):
            yield Static("preview", classes="pane-title")
            yield SetupPreview(id="preview")
            yield OverridesForm(id="overrides")
        yield Footer()

    def on_mount(self) -> None:
        presets = self.query_one(PresetList)
        if self._entries:
            presets.highlighted = 0
        presets.focus()
        self._show_highlighted()

    # ------------------------------------------------------------------ reactions

    @on(OptionList.OptionHighlighted, "#presets")
    def _highlighted(self) -> None:
        entry = self.query_one(PresetList).selected_entry
        self.query_one(OverridesForm).load(entry.preset.config if entry else None)
        self._show_highlighted()

    @on(OverridesForm.Changed)
    def _overrides_changed(self) -> None:
        self._show_highlighted()

    @on(OptionList.OptionSelected, "#presets")
    @on(OverridesForm.Submitted)
    def _selected(self) -> None:
        self.action_launch()

    def _resolved(self) -> tuple[Entry | None, RunConfig | None, str | None]:
        """The highlighted entry, its config with the form's overrides, and the error if they don't validate."""
        entry = self.query_one(PresetList).selected_entry
        if entry is None or entry.preset.config is None:
            return entry, None, None
        try:
            return entry, with_overrides(entry.preset.config, **self.query_one(OverridesForm).values()), None
        except ConfigError as err:
            return entry, entry.preset.config, str(err).removeprefix("command line: ")

    def _show_highlighted(self) -> None:
        self.query_one(SetupPreview).show(*self._resolved())

    # ------------------------------------------------------------------ actions

    def action_launch(self) -> None:
        """Launch the highlighted setup, or say why not."""
        entry, config, error = self._resolved()
        if entry is None:
            return
        if entry.preset.error or config is None:
            self.notify(entry.preset.error or "cannot read this config", title="Invalid config", severity="error")
        elif entry.problem:
            self.notify(entry.problem, title="Cannot run on this machine", severity="warning")
        elif error:
            self.notify(error, title="Invalid override", severity="error")
        else:
            self.post_message(self.Launch(config, entry.preset))

    def action_cursor_down(self) -> None:
        """j: next setup."""
        self.query_one(PresetList).action_cursor_down()

    def action_cursor_up(self) -> None:
        """k: previous setup."""
        self.query_one(PresetList).action_cursor_up()

    def action_edit(self, key: str) -> None:
        """Focus one of the override fields."""
        self.query_one(f"#override-{key}", Input).focus()

    def action_back_to_list(self) -> None:
        """Escape: back from the form to the list."""
        self.query_one(PresetList).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Letters typed into the form are text, not commands.
        if action in ("cursor_down", "cursor_up", "edit") and isinstance(self.focused, Input):
            return False
        return True
