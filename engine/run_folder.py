"""The run folder's layout: every file a run leaves behind, named in this one place.

    runs/<id>/config.toml · run.json · run.lock · events.jsonl · control.jsonl · mpiexec.log · checkpoints/member-XX.pt ·
             live/member-XX.npz · predictions.pt · report.json · report.md · report.html · figures/*.png · ensemble.ts.pt · ensemble.onnx ·
             partial/{report.json, report.md, report.html, figures/*.png}

Torch-free: the launcher and the dashboard (ens_tui) and the ranks (engine) all import it. Reading and
writing the files is done by the modules that own them; this one only says where they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        """The resolved config, every default spelled out (what every rank reads)."""
        return self.path / "config.toml"

    @property
    def info(self) -> Path:
        """run.json: status, endpoint, pids, timings, resumes — the launcher's record."""
        return self.path / "run.json"

    @property
    def lock(self) -> Path:
        """run.lock: flock-ed by the launcher for its whole life; a run is running exactly while it is held."""
        return self.path / "run.lock"

    @property
    def events(self) -> Path:
        """events.jsonl: every accepted event, one JSON line each (what `ens-tui show` replays)."""
        return self.path / "events.jsonl"

    @property
    def mpiexec_log(self) -> Path:
        """What mpiexec and the ranks printed outside the socket."""
        return self.path / "mpiexec.log"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, member: int) -> Path:
        """Member `member`'s latest checkpoint (written atomically after each epoch)."""
        return self.checkpoints / f"member-{member:02d}.pt"

    @property
    def control(self) -> Path:
        """control.jsonl: the launcher's requests to the ranks (stop or restart a member, stragglers), one per line."""
        return self.path / "control.jsonl"

    @property
    def live(self) -> Path:
        """live/: each member's validation probabilities after its latest epoch (engine.live)."""
        return self.path / "live"

    def live_member(self, member: int) -> Path:
        return self.live / f"member-{member:02d}.npz"

    @property
    def live_labels(self) -> Path:
        """The validation labels the live files are scored against."""
        return self.live / "labels.npz"

    @property
    def predictions(self) -> Path:
        """Every member's probabilities on the test split and the OOD sets (rank 0 writes it)."""
        return self.path / "predictions.pt"

    @property
    def report_json(self) -> Path:
        return self.path / "report.json"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def report_html(self) -> Path:
        """The report as one self-contained page (figures inlined), to mail or open in a browser."""
        return self.path / "report.html"

    @property
    def figures(self) -> Path:
        """The report's pictures (PNG), for papers; report.md links them."""
        return self.path / "figures"

    @property
    def partial(self) -> RunFolder:
        """partial/: the report of the members trained so far (`python -m engine.partial`), laid out as the run's
        own report files are (`partial.report_json`, `.report_md`, `.report_html`, `.figures`), so it never
        overwrites them; the next partial report replaces it."""
        return RunFolder(self.path / "partial")

    def exported(self, fmt: str) -> Path:
        """Where `ens-tui export --format fmt` writes the ensemble by default."""
        return self.path / {"torchscript": "ensemble.ts.pt", "onnx": "ensemble.onnx"}[fmt]

    def is_run(self) -> bool:
        """Whether this folder holds a run: the launcher writes config.toml and run.json before any rank starts."""
        return self.config.is_file() and self.info.is_file()


def is_run_dir(path: Path | str) -> bool:
    """Whether `path` is a run folder (see `RunFolder.is_run`)."""
    return RunFolder(Path(path)).is_run()
