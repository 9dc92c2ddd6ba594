"""Pick a setup with the keyboard, adjust it (members, epochs, batch, lr, strategy, ranks, dataset), save or launch it.

Edits are kept per setup while the screen lives: moving to another setup and back restores them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static

from engine.config import RunConfig
from ens_tui.dialogs.save_config import SaveConfig, free_stem
from ens_tui.presets import Preset, load_preset
from ens_tui.widgets.overrides_form import FIELD_BY_KEY, OverridesForm, apply_edits
from ens_tui.widgets.preset_list import Entry, PresetList
from ens_tui.widgets.setup_preview import SetupPreview, short_path

SetupChecker = Callable[[RunConfig], str | None]


class SetupScreen(Screen[None]):
    """The list on the left, the preview and the overrides on the right; Enter launches."""

    DEFAULT_CSS = """
    SetupScreen #preview-scroll { height: 1fr; }
    """

    BINDINGS = [
        Binding("enter", "launch", "Launch", priority=True),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("m", "edit('members')", "Members"),
        Binding("e", "edit('epochs')", "Epochs"),
        Binding("b", "edit('batch_size')", "Batch"),
        # The form underlines these letters; the footer has no room for them (`?` lists them).
        Binding("l", "edit('lr')", "Learning rate", show=False),
        Binding("t", "edit('strategy')", "Strategy", show=False),
        Binding("n", "edit('ranks')", "Ranks", show=False),
        Binding("d", "edit('dataset')", "Dataset", show=False),
        Binding("s", "save", "Save"),
        Binding("r", "open_runs", "Runs"),
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

    def __init__(self, presets: list[Preset], check: SetupChecker, save_dir: Path | None = None) -> None:
        super().__init__()
        self._check = check
        self._entries = [Entry(p, check(p.config) if p.config is not None else None) for p in presets]
        self._save_dir = save_dir
        """Where `s` saves (default ./configs/ of the working folder at the time)."""
        self._edits: dict[Path, dict[str, str]] = {}
        """Field texts the user changed, per setup (its file's resolved path), restored when it is highlighted again."""
        self._problems: dict[str, str | None] = {}
        """The checker's verdict on each edited config seen (keyed by its JSON), so typing does not re-probe."""
        self._invalid = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="setup-left"):
            yield Static("setups", classes="pane-title")
            yield PresetList(self._entries, id="presets")
        with Vertical(id="setup-right"):
            yield Static("preview", classes="pane-title")
            with VerticalScroll(id="preview-scroll"):
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

    @staticmethod
    def _key(entry: Entry) -> Path:
        return entry.preset.path.resolve()

    @on(OptionList.OptionHighlighted, "#presets")
    def _highlighted(self) -> None:
        entry = self.query_one(PresetList).selected_entry
        edits = self._edits.get(self._key(entry)) if entry else None
        self.query_one(OverridesForm).load(entry.preset.config if entry else None, edits)
        self._show_highlighted()

    @on(OverridesForm.Changed)
    def _overrides_changed(self) -> None:
        entry = self.query_one(PresetList).selected_entry
        if entry is not None and entry.preset.config is not None:
            edits = self.query_one(OverridesForm).edits(entry.preset.config)
            if edits:
                self._edits[self._key(entry)] = edits
            else:
                self._edits.pop(self._key(entry), None)
        self._show_highlighted()

    @on(OptionList.OptionSelected, "#presets")
    @on(OverridesForm.Submitted)
    def _selected(self) -> None:
        self.action_launch()

    def _problem(self, config: RunConfig) -> str | None:
        """Why this machine cannot run an edited config (the checker is asked once per distinct config)."""
        key = config.model_dump_json()
        if key not in self._problems:
            self._problems[key] = self._check(config)
        return self._problems[key]

    def _resolved(self) -> tuple[Entry | None, RunConfig | None, dict[str, str]]:
        """The highlighted entry (its problem re-checked when edits changed the config), its config with every
        valid edit applied, and the reason of each field that does not validate."""
        entry = self.query_one(PresetList).selected_entry
        if entry is None or entry.preset.config is None:
            return entry, None, {}
        config, errors = apply_edits(entry.preset.config, self.query_one(OverridesForm).texts())
        if config is not entry.preset.config:
            entry = Entry(entry.preset, self._problem(config))
        return entry, config, errors

    def _show_highlighted(self) -> None:
        entry, config, errors = self._resolved()
        self.query_one(OverridesForm).show_errors(errors)
        presets = self.query_one(PresetList)
        if entry is not None and presets.highlighted is not None:
            presets.show_problem(presets.highlighted, entry.problem)
        summary = f"fix {', '.join(FIELD_BY_KEY[k].label for k in errors)} to launch (see below)" if errors else None
        self.query_one(SetupPreview).show(entry, config, summary)
        if self._invalid != bool(errors):
            self._invalid = bool(errors)
            self.refresh_bindings()

    # ------------------------------------------------------------------ actions

    def action_launch(self) -> None:
        """Launch the highlighted setup, or say why not."""
        entry, config, errors = self._resolved()
        if entry is None:
            return
        if entry.preset.error or config is None:
            self.notify(entry.preset.error or "cannot read this config", title="Invalid config", severity="error")
        elif errors:
            self.notify("\n".join(f"{FIELD_BY_KEY[k].label}: {why}" for k, why in errors.items()),
                        title="Invalid value", severity="error")
        elif entry.problem:
            self.notify(entry.problem, title="Cannot run on this machine", severity="warning")
        else:
            self.post_message(self.Launch(config, entry.preset))

    def action_cursor_down(self) -> None:
        """j: next setup."""
        self.query_one(PresetList).action_cursor_down()

    def action_cursor_up(self) -> None:
        """k: previous setup."""
        self.query_one(PresetList).action_cursor_up()

    def action_edit(self, key: str) -> None:
        """Focus one of the fields."""
        self.query_one(f"#override-{key}", Input).focus()

    def action_save(self) -> None:
        """Save the highlighted setup, edits applied, as a new config file in ./configs/ (the name is asked)."""
        entry, config, errors = self._resolved()
        if entry is None or config is None:
            self.notify(entry.preset.error if entry else "no setup to save", title="Nothing to save", severity="error")
            return
        if errors:
            self.notify(f"fix {', '.join(FIELD_BY_KEY[k].label for k in errors)} first", title="Not saved",
                        severity="error")
            return
        folder = self._save_dir or Path.cwd() / "configs"
        edits = self._edits.get(self._key(entry), {})
        preset = entry.preset

        def save(path: Path | None) -> None:
            if path is not None:
                self._write(path, preset, config, edits)

        self.app.push_screen(SaveConfig(folder, free_stem(folder, f"{preset.name}-edited"), short_path(folder)), save)

    def _write(self, path: Path, preset: Preset, config: RunConfig, edits: dict[str, str]) -> None:
        """Write the config (named after its file), say where, and list it (replacing the entry it overwrote)."""
        changes = ", ".join(f"{FIELD_BY_KEY[k].label} {v.strip()}" for k, v in edits.items())
        changes += (", " if changes and preset.overridden else "") + " ".join(preset.overridden)
        header = f"# {preset.name}, edited on the setup screen{f' ({changes})' if changes else ''}.\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(header + config.model_copy(update={"name": path.stem}).to_toml(), encoding="utf-8")
        except OSError as err:
            self.notify(f"cannot write {path}: {err.strerror or err}", title="Not saved", severity="error")
            return
        self.notify(f"saved {short_path(path)}", title="Saved")
        saved = load_preset(path, "local")
        self._edits.pop(path.resolve(), None)
        self.query_one(PresetList).put(Entry(saved, self._check(saved.config) if saved.config else None))

    def action_open_runs(self) -> None:
        """The runs browser, on the highlighted setup's output_dir."""
        from ens_tui.screens.runs import RunsScreen

        _, config, _ = self._resolved()
        self.app.push_screen(RunsScreen(Path(config.output_dir if config is not None else "runs")))

    def action_back_to_list(self) -> None:
        """Escape: back from the form to the list."""
        self.query_one(PresetList).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Letters typed into the form are text, not commands.
        if action not in ("launch", "back_to_list") and isinstance(self.focused, Input):
            return False
        if action == "launch" and self._invalid:
            return None  # shown disabled; Enter still reaches the form, which says what to fix
        return True
