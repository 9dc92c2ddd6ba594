"""The fields of a setup that change before launch without editing the TOML, each validated through the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from engine.config import DATASETS, FILE_KINDS, ConfigError, RankGroup, RunConfig, Strategy, parse_config, parse_ranks

SOURCE = "setup"
"""How a rejected value's config error names its origin (stripped before the field shows the reason)."""


def ranks_text(groups: list[RankGroup]) -> str:
    """Rank groups in `--ranks` syntax (`cpu:2,cuda:1`), which `parse_ranks` reads back to the same groups."""
    return ",".join(f"{g.device}:{g.count}" for g in groups)


def _ranks(text: str) -> list[dict[str, Any]]:
    return [g.model_dump() for g in parse_ranks(text)]


@dataclass(frozen=True)
class Field:
    """One editable setting: where it lands in the config, and how its text is read and shown."""

    key: str
    """The input's id suffix (`override-<key>`) and the key of an edit."""
    label: str
    path: tuple[str, ...]
    kind: Literal["integer", "number", "text"]
    parse: Callable[[str], Any]
    """Text → the config's value; raises ValueError (ConfigError included) on text it cannot read."""
    hotkey: str
    """The setup screen's key that focuses it (underlined in the label)."""
    choices: tuple[str, ...] = ()
    """Completions offered while typing (→ accepts)."""

    def text(self, config: RunConfig) -> str:
        """The config's own value, as the field shows it."""
        value: Any = config
        for part in self.path:
            value = getattr(value, part)
        return ranks_text(value) if self.key == "ranks" else str(value)


FIELDS = (
    Field("members", "members", ("train", "members"), "integer", int, "m"),
    Field("epochs", "epochs", ("train", "epochs"), "integer", int, "e"),
    Field("batch_size", "batch", ("train", "batch_size"), "integer", int, "b"),
    Field("lr", "lr", ("train", "lr"), "number", float, "l"),
    Field("strategy", "strategy", ("parallel", "strategy"), "text", str, "t", get_args(Strategy)),
    Field("ranks", "ranks", ("parallel", "ranks"), "text", _ranks, "n"),
    Field("dataset", "dataset", ("data", "dataset"), "text", str, "d", DATASETS + FILE_KINDS),
)
FIELD_BY_KEY = {f.key: f for f in FIELDS}


def _with(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """`config` with each field's value set, re-validated as a whole (ConfigError names every problem)."""
    data = config.model_dump(mode="json")
    for key, value in values.items():
        *parents, name = FIELD_BY_KEY[key].path
        section = data
        for part in parents:
            section = section[part]
        section[name] = value
    return parse_config(data, SOURCE)


def _reason(field: Field, err: ValueError) -> str:
    """The first problem in one short line, without the `setup: train.members: ` that the field already says."""
    if not isinstance(err, ConfigError):
        return f"not {'an integer' if field.kind == 'integer' else 'a number'}"
    line = str(err).splitlines()[0].removeprefix(f"{SOURCE}: ").removeprefix("--ranks: ")
    line = line.removeprefix(".".join(field.path) + ": ")
    message, allowed, got = line.partition("; allowed: ")
    # pydantic's "Input should be greater than or equal to 1" says what the range already says, longer.
    return f"allowed: {got}" if allowed and message.startswith("Input should be") else line


def apply_edits(config: RunConfig, texts: Mapping[str, str]) -> tuple[RunConfig, dict[str, str]]:
    """The config with every valid edit applied, and a one-line reason for each field that is not valid.

    Each field is validated on its own (so its reason is its own), then all of them together; an empty field,
    or one showing the config's own value, keeps the config's value.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        text = texts.get(field.key, "").strip()
        if not text or text == field.text(config):
            continue
        try:
            value = field.parse(text)
            _with(config, {field.key: value})
        except ValueError as err:
            errors[field.key] = _reason(field, err)
        else:
            values[field.key] = value
    if not values:
        return config, errors
    try:
        return _with(config, values), errors
    except ConfigError as err:  # fields valid one by one but not together: the first one named carries it
        first = next(iter(values))
        errors[first] = _reason(FIELD_BY_KEY[first], err)
        return config, errors


class OverridesForm(Vertical):
    """One input per field; posts `Changed` whenever one of them changes, `Submitted` on Enter.

    An invalid field turns red and shows its reason on the line below it.
    """

    DEFAULT_CSS = """
    OverridesForm { height: auto; }
    OverridesForm > Horizontal { height: 1; }
    OverridesForm > Horizontal > Label { width: 10; color: $text-muted; }
    OverridesForm > Horizontal > Input { width: 1fr; max-width: 40; }
    OverridesForm > .field-error { display: none; color: $error; padding-left: 10; }
    OverridesForm > .field-error.-shown { display: block; }
    """

    class Changed(Message):
        """A field changed (the screen re-validates and remembers the edit)."""

    class Submitted(Message):
        """Enter in one of the inputs: launch with these values."""

    def compose(self) -> ComposeResult:
        for field in FIELDS:
            label = Text(field.label, style="")
            at = field.label.find(field.hotkey)
            if at >= 0:
                label.stylize("underline", at, at + 1)
            with Horizontal():
                yield Label(label)
                yield Input(
                    type=field.kind, id=f"override-{field.key}", compact=True, select_on_focus=True,
                    validate_on=(), suggester=SuggestFromList(field.choices) if field.choices else None,
                )
            yield Label("", id=f"override-{field.key}-error", classes="field-error")

    def load(self, config: RunConfig | None, edits: Mapping[str, str] | None = None) -> None:
        """Fill the inputs with a config's own values, or with the edits kept for it (the highlighted setup changed)."""
        for field in FIELDS:
            value = (edits or {}).get(field.key, field.text(config) if config else "")
            widget = self.query_one(f"#override-{field.key}", Input)
            with widget.prevent(Input.Changed):
                widget.value = value

    def texts(self) -> dict[str, str]:
        """What every field holds."""
        return {f.key: self.query_one(f"#override-{f.key}", Input).value for f in FIELDS}

    def edits(self, config: RunConfig) -> dict[str, str]:
        """The fields whose text differs from the config's own value."""
        texts = self.texts().items()
        return {key: text for key, text in texts if text.strip() and text.strip() != FIELD_BY_KEY[key].text(config)}

    def show_errors(self, errors: Mapping[str, str]) -> None:
        """Mark each invalid field and show its reason below it; clear the others."""
        for field in FIELDS:
            reason = errors.get(field.key)
            self.query_one(f"#override-{field.key}", Input).set_class(reason is not None, "-invalid")
            line = self.query_one(f"#override-{field.key}-error", Label)
            line.update(Text(f"✗ {reason}") if reason else "")
            line.set_class(reason is not None, "-shown")

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())
