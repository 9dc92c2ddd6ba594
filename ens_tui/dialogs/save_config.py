"""Asked when the setup screen saves an edited setup: the file name in ./configs/; an existing file needs a second Enter."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
"""A file stem that is also a valid run `name` (the saved config is named after its file)."""


def free_stem(folder: Path, stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, … : the first with no .toml in `folder`."""
    candidate, n = stem, 1
    while (folder / f"{candidate}.toml").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


class SaveConfig(ModalScreen[Path | None]):
    """The path to save to, or None (escape). Never overwrites without a second Enter on the same name."""

    DEFAULT_CSS = """
    SaveConfig { align: center middle; }
    SaveConfig > Vertical {
        width: 64; max-width: 95%; height: auto; padding: 1 2;
        border: thick $accent 80%; background: $surface;
    }
    SaveConfig Horizontal { height: 1; margin: 1 0; }
    SaveConfig Horizontal > Label { color: $text-muted; }
    SaveConfig Input { width: 1fr; }
    SaveConfig Vertical > Label { width: 1fr; }
    SaveConfig #save-note { color: $warning; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, folder: Path, stem: str, shown_folder: str | None = None) -> None:
        super().__init__()
        self.folder = folder
        self._stem = stem
        self._shown_folder = shown_folder or str(folder)
        self._confirm: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("save the edited setup as a config file", style="bold"))
            with Horizontal():
                yield Label(Text(f"{self._shown_folder.rstrip('/')}/"))
                yield Input(self._stem, id="save-name", compact=True)  # selected: typing replaces it
                yield Label(".toml")
            yield Label("", id="save-note")
            yield Label(Text("enter saves · esc cancels", style="dim"))

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)

    @on(Input.Changed)
    def _changed(self) -> None:
        self._confirm = None
        self.query_one("#save-note", Label).update("")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        stem = event.value.strip().removesuffix(".toml")
        note = self.query_one("#save-note", Label)
        if not NAME.match(stem):
            note.update("a name of letters, digits, '.', '_' or '-' (at most 80), starting with a letter or digit")
            return
        path = self.folder / f"{stem}.toml"
        if path.exists() and path != self._confirm:
            self._confirm = path
            note.update(Text(f"{path.name} exists: enter again overwrites it, or type another name"))
            return
        self.dismiss(path)
