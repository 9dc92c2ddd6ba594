"""Finding the setups the setup screen lists: built-in presets, ./configs/, and paths from the command line.

Built-in presets ship inside the wheel at `ens_tui/presets/` (hatch force-include); in a source checkout
they are the repository's `configs/`. A config that fails to load is still listed, with its error, so a
typo in a user's file is visible instead of silently missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from engine.config import ConfigError, RunConfig, load_config

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

    @property
    def name(self) -> str:
        """The label in the list: the file's stem (unique enough, and what the user typed)."""
        return self.path.stem


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


def load_preset(path: Path, source: Source) -> Preset:
    """Load one config file, keeping a one-line error instead of raising."""
    try:
        return Preset(path=path, source=source, config=load_config(path))
    except ConfigError as err:
        return Preset(path=path, source=source, error=str(err))


def discover(config_paths: list[Path] | tuple[Path, ...] = (), cwd: Path | None = None) -> list[Preset]:
    """Every setup to list: command-line paths first (in the order given), then built-ins, then ./configs/.

    A file reachable two ways (./configs/ *is* the built-in folder in a checkout) is listed once, under
    its first source.
    """
    cwd = cwd or Path.cwd()
    seen: set[Path] = set()
    found: list[Preset] = []

    def add(path: Path, source: Source) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        found.append(load_preset(path, source))

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
