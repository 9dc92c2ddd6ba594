"""What a setup will do, in one glance: strategy, ranks × device, members, epochs, data (root, download), model,
output folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from engine.config import RunConfig
from engine.estimate import estimate_line
from ens_tui.widgets.preset_list import Entry

STRATEGY_GLOSS = {
    "sequential": "one process trains the members one after another",
    "local": "each rank loads the data itself and trains its members",
    "broadcast": "rank 0 loads each batch and broadcasts it to the others",
    "fused": "each rank trains its members as one vectorized model",
}


def ranks_summary(config: RunConfig) -> str:
    """e.g. `2 × cpu + 1 × cuda` (sequential collapses to its single process)."""
    counts = Counter(config.parallel.rank_devices())
    return " + ".join(f"{n} × {device}" for device, n in counts.items())


def short_path(path: Path) -> str:
    """The path relative to the working folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class SetupPreview(Static):
    """Shows the highlighted entry with the form's overrides applied (or the error that blocks it)."""

    DEFAULT_CSS = """
    SetupPreview { height: auto; }
    """

    def show(self, entry: Entry | None, config: RunConfig | None, error: str | None = None) -> None:
        """Render one entry; `config` is the entry's config after overrides."""
        self.update(self._renderable(entry, config, error))

    def _renderable(self, entry: Entry | None, config: RunConfig | None, error: str | None) -> RenderableType:
        if entry is None:
            return Text("no setups found", style="dim")
        preset = entry.preset
        if preset.error or config is None:
            return Group(Text(preset.name, style="bold"), Text(preset.error or "", style="red"))
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        p, t = config.parallel, config.train
        table.add_row("strategy", Text.assemble((p.strategy, "bold"), (f" — {STRATEGY_GLOSS[p.strategy]}", "dim")))
        table.add_row("ranks", Text(f"{ranks_summary(config)}  ({p.threads_per_rank} thread/rank)"))
        table.add_row("members", Text(str(t.members), style="bold"))
        table.add_row("epochs", Text(str(t.epochs), style="bold"))
        table.add_row("batch size", str(t.batch_size))
        table.add_row("optimizer", f"{t.optimizer}, lr {t.lr:g}")
        limit = f", first {config.data.limit} samples" if config.data.limit else ""
        table.add_row("dataset", f"{config.data.dataset}{limit}")
        table.add_row("data root", Text.assemble(config.data.root,
                                                 (f"  download = {str(config.data.download).lower()}", "dim")))
        table.add_row("OOD sets", ", ".join(config.data.ood) or "none")
        table.add_row("model", config.model.name)
        table.add_row("est. time", estimate_line(config, brief=True))
        table.add_row("results", f"{config.output_dir}/<run-id>/")
        table.add_row("file", Text.assemble(short_path(preset.path), (" + " + " ".join(preset.overridden))
                                            if preset.overridden else "", style="dim"))
        parts: list[RenderableType] = [table]
        if entry.problem:
            parts.append(Text(f"\n✗ cannot run here: {entry.problem}", style="bold yellow"))
        if error:
            parts.append(Text(f"\n✗ {error}", style="bold red"))
        return Group(*parts)
