"""Members, epochs and batch size, changeable before launch without editing the TOML."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label

from engine.config import RunConfig

FIELDS = (("members", "members"), ("epochs", "epochs"), ("batch_size", "batch"))


class OverridesForm(Horizontal):
    """Three integer inputs; posts `Changed` whenever one of them changes, `Submitted` on Enter."""

    DEFAULT_CSS = """
    OverridesForm { height: auto; }
    OverridesForm > Label { padding: 0 1 0 2; color: $text-muted; }
    OverridesForm > Input { width: 9; }
    """

    class Changed(Message):
        """The overrides changed (the preview re-validates)."""

    class Submitted(Message):
        """Enter in one of the inputs: launch with these values."""

    def compose(self) -> ComposeResult:
        for key, label in FIELDS:
            yield Label(label)
            yield Input(type="integer", id=f"override-{key}", compact=True, select_on_focus=True)

    def load(self, config: RunConfig | None) -> None:
        """Fill the inputs with a config's own values (called when the highlighted setup changes)."""
        for key, _ in FIELDS:
            value = getattr(config.train, key) if config else ""
            field = self.query_one(f"#override-{key}", Input)
            with field.prevent(Input.Changed):
                field.value = str(value)

    def values(self) -> dict[str, int | None]:
        """The overrides as keyword arguments for `with_overrides` (an empty field keeps the config's value)."""
        out: dict[str, int | None] = {}
        for key, _ in FIELDS:
            text = self.query_one(f"#override-{key}", Input).value.strip()
            out[key] = int(text) if text.lstrip("-").isdigit() else None
        return out

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())
