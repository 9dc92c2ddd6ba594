"""The report's predict tab: type or pick a path, and the run's ensemble answers for every image in it.

Scoring runs `ens-tui predict … --format json` in an engine process (the UI never loads torch), so
what the tab shows is exactly what the command prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Input, Static

from engine.config import IMAGE_SUFFIXES
from ens_tui.widgets.prediction_card import VERDICT_STYLE, PredictionCard

MAX_CARDS = 48
"""A folder of thousands of images is summarised; the cards show its first inputs."""


class PathSuggester(Suggester):
    """Completes the last part of a path from the file system (→ or end accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(value).expanduser()
        parent, prefix = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(c.name + "/" * c.is_dir() for c in parent.iterdir()
                           if c.name.startswith(prefix) and not c.name.startswith("."))
        except OSError:
            return None
        return value + names[0][len(prefix):] if names else None


SCORABLE = (*IMAGE_SUFFIXES, ".npy")
"""What `ens-tui predict` reads; the tree shows only these (and folders)."""


class VisibleTree(DirectoryTree):
    """The working folder's sub-folders and the files predict can read; hidden entries (.git, .venv) left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")
                and (path.is_dir() or path.suffix.lower() in SCORABLE)]


class PredictPane(Vertical):
    """Input and file tree on top of the scored cards."""

    DEFAULT_CSS = """
    PredictPane { height: 1fr; }
    PredictPane #predict-path { margin: 0 0 0 0; }
    PredictPane #predict-status { height: auto; padding: 0 1; }
    PredictPane #predict-body { height: 1fr; }
    PredictPane #predict-tree { width: 32; height: 1fr; }
    PredictPane #predict-results { width: 1fr; height: 1fr; }
    """

    def __init__(self, run_dir: Path, class_names: list[str], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.run_dir, self.class_names = run_dir, class_names

    def compose(self) -> ComposeResult:
        yield Input(placeholder="an image, a folder of images or a .npy array — enter predicts",
                    suggester=PathSuggester(), id="predict-path")
        yield Static(Text("pick a file on the left, or type a path above", style="dim"), id="predict-status")
        with Horizontal(id="predict-body"):
            yield VisibleTree(".", id="predict-tree")
            yield VerticalScroll(id="predict-results")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.predict(event.value.strip())

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.query_one("#predict-path", Input).value = str(event.path)
        self.predict(str(event.path))

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        self.query_one("#predict-path", Input).value = f"{event.path}/"

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False, description="predict")
    def predict(self, path: str) -> None:
        """Score `path` in an engine process; the cards replace the previous ones when it answers."""
        self.app.call_from_thread(self._begin, path)
        command = [sys.executable, "-m", "engine.predict", str(self.run_dir), path, "--format", "json",
                   "--thumbnails"]
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        skipped = [line.removeprefix("ens-tui predict: ") for line in done.stderr.splitlines() if "skipped" in line]
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            status = Text(reason.removeprefix("ens-tui predict: "), style="bold red")
            for line in skipped:
                status.append(f"\n{line}", style="yellow")
            self.app.call_from_thread(self._status, status)
            return
        self.app.call_from_thread(self._show, path, json.loads(done.stdout), skipped)

    def _begin(self, path: str) -> None:
        """A new question: the previous answers go, so they are never mistaken for this one's."""
        self.query_one("#predict-results", VerticalScroll).remove_children()
        self._status(Text(f"predicting {path} …", style="dim"))

    def _status(self, text: Text) -> None:
        self.query_one("#predict-status", Static).update(text)

    def _show(self, path: str, items: list[dict[str, Any]], skipped: list[str]) -> None:
        counts = Counter(item["verdict"] for item in items)
        status = Text.assemble((f"{len(items)} input(s) from {path}: ", "bold"))
        for verdict, style in VERDICT_STYLE.items():
            status.append(f"{counts.get(verdict, 0)} {verdict}", style=style)
            status.append("  ")
        if len(items) > MAX_CARDS:
            status.append(f"\nshowing the first {MAX_CARDS}; `ens-tui predict {self.run_dir} {path}` lists all",
                          style="dim")
        for line in skipped:
            status.append(f"\n{line}", style="yellow")
        self._status(status)
        results = self.query_one("#predict-results", VerticalScroll)
        results.remove_children()
        folder = path.rstrip("/") + "/"
        results.mount_all(PredictionCard(item, self.class_names, name=item["input"].removeprefix(folder))
                          for item in items[:MAX_CARDS])
