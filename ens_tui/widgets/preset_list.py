"""The list of setups on the setup screen; a setup this machine cannot run stays visible, dimmed, with why."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ens_tui.presets import Preset

SOURCE_MARK = {"argument": "arg", "builtin": "", "local": "./configs"}


@dataclass(frozen=True)
class Entry:
    """A listed preset and, when it cannot run here, the reason."""

    preset: Preset
    problem: str | None = None

    @property
    def runnable(self) -> bool:
        """Loads and fits this machine."""
        return self.preset.config is not None and self.problem is None


class PresetList(OptionList):
    """Options stay highlightable even when not runnable, so the preview can still explain them."""

    DEFAULT_CSS = """
    PresetList { width: 1fr; height: 1fr; }
    """

    def __init__(self, entries: list[Entry], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(*(self._option(i, e) for i, e in enumerate(entries)), id=id)
        self.entries = entries

    @staticmethod
    def _option(index: int, entry: Entry) -> Option:
        preset = entry.preset
        mark = SOURCE_MARK[preset.source]
        label = Text(preset.name, style="" if entry.runnable else "dim strike" if preset.error else "dim")
        if mark:
            label.append(f"  {mark}", style="dim italic")
        if preset.error:
            label.append("\n  ✗ invalid config", style="red dim")
        elif entry.problem:
            # The short form ("needs CUDA"); the preview gives the whole reason.
            label.append(f"\n  ✗ {re.split(r'[:(,]', entry.problem)[0].strip()}", style="yellow dim")
        return Option(label, id=str(index))

    def show_problem(self, index: int, problem: str | None) -> None:
        """Relabel one setup for its edited config's problem (the entry itself keeps the file's own)."""
        if 0 <= index < len(self.entries):
            self.replace_option_prompt_at_index(index, self._option(index, Entry(self.entries[index].preset, problem)).prompt)

    def put(self, entry: Entry) -> None:
        """List a setup saved from this screen: in place of the one with the same file, else at the end."""
        key = entry.preset.path.resolve()
        index = next((i for i, e in enumerate(self.entries) if e.preset.path.resolve() == key), None)
        if index is None:
            self.entries.append(entry)
            self.add_option(self._option(len(self.entries) - 1, entry))
        else:
            self.entries[index] = entry
            self.replace_option_prompt_at_index(index, self._option(index, entry).prompt)

    @property
    def selected_entry(self) -> Entry | None:
        """The highlighted entry."""
        index = self.highlighted
        return self.entries[index] if index is not None and 0 <= index < len(self.entries) else None
