"""Finding the setups the setup screen lists: built-in presets, ./configs/, and paths from the command line.

Built-in presets ship inside the wheel at `ens_tui/presets/` (hatch force-include); in a source checkout
they are the repository's `configs/`. A config that fails to load is still listed, with its error, so a
typo in a user's file is visible instead of silently missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from engine.config import OVERRIDE_BY_DEST, ConfigError, RunConfig, load_config, with_overrides

Source = Literal["argument", "builtin", "local"]

# The quick default first; every other built-in follows by plain file-name order, so the seed's nine are
# NOT grouped by device: seed-cpu2-broadcast, the three seed-cpu2-gpu1-*, seed-cpu2-local, seed-cpu2-sequential,
# then the three seed-gpu2-*. The setup-screen snapshots pin this order (the third row is a GPU setup).
_BUILTIN_ORDER = ("quick-digits",)


@dataclass(frozen=True)
class Preset:
    """One listed setup: where it came from and either its config or why it cannot be read."""

    path: Path
    source: Source
    config: RunConfig | None = None
    error: str | None = None
    overridden: tuple[str, ...] = ()
    """The command-line flags applied to `config` (`--data-root`, …), so the preview can say so."""

    @property
    def name(self) -> str:
        """The label in the list: the file's stem (unique enough, and what the user typed)."""
        return self.path.stem

    @property
    def description(self) -> str:
        """One line: the comment block that opens the file, else a summary of the config (or its error)."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        comment: list[str] = []
        for line in lines:
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        if text := " ".join(part for part in comment if part):
            return text
        if self.config is None:
            return f"invalid config: {(self.error or '').splitlines()[0] if self.error else 'unreadable'}"
        c = self.config
        return (f"{c.train.members} × {c.model.name} on {c.data.dataset}, {c.train.epochs} epoch(s), "
                f"{c.parallel.strategy} on {c.parallel.world_size} rank(s)")


def builtin_dir() -> Path | None:
    """The folder of built-in presets: the installed package's, else the source checkout's configs/."""
    try:
        packaged = Path(str(resources.files("ens_tui") / "presets"))
    except (ModuleNotFoundError, TypeError):
        packaged = None
    if packaged is not None and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "configs"
    return checkout if checkout.is_dir() else None


def _builtin_key(path: Path) -> tuple[int, str]:
    stem = path.stem
    return (_BUILTIN_ORDER.index(stem) if stem in _BUILTIN_ORDER else len(_BUILTIN_ORDER), stem)


def load_preset(path: Path, source: Source, overrides: Mapping[str, Any] | None = None) -> Preset:
    """Load one config file with the command-line overrides applied, keeping a one-line error instead of raising."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None and value is not False}
    flags = tuple(OVERRIDE_BY_DEST[key].flag for key in given)
    try:
        config = load_config(path)
        return Preset(path=path, source=source, config=with_overrides(config, **given) if given else config,
                      overridden=flags)
    except ConfigError as err:
        return Preset(path=path, source=source, error=str(err), overridden=flags)


def discover(config_paths: list[Path] | tuple[Path, ...] = (), cwd: Path | None = None,
             overrides: Mapping[str, Any] | None = None) -> list[Preset]:
    """Every setup to list: command-line paths first (in the order given), then built-ins, then ./configs/.

    `overrides` (`with_overrides` keywords, from the command line) apply to every one of them. A file reachable
    two ways (./configs/ *is* the built-in folder in a checkout) is listed once, under its first source.
    """
    cwd = cwd or Path.cwd()
    seen: set[Path] = set()
    found: list[Preset] = []

    def add(path: Path, source: Source) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        found.append(load_preset(path, source, overrides))

    for path in config_paths:
        add(Path(path), "argument")
    folder = builtin_dir()
    if folder is not None:
        for path in sorted(folder.glob("*.toml"), key=_builtin_key):
            add(path, "builtin")
    local = cwd / "configs"
    if local.is_dir():
        for path in sorted(local.glob("*.toml")):
            add(path, "local")
    return found
