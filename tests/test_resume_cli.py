"""`ens-tui --resume RUN_DIR` with flags: what a resume can change is honoured, the rest refused in one line.

Honoured: where and how it runs (--ranks, --strategy, --deterministic, --mpiexec/--bind/--hostfile, --data-root)
and more epochs. Refused: anything that would change what the saved members mean. A refusal or a --dry-run
leaves the run folder exactly as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine.config import load_config
from engine.run_folder import RunFolder
from ens_tui.cli import main
from ens_tui.rundir import create_run_dir, read_events, write_run_info
from tests.conftest import REPO, assert_no_process_left, run_launcher, run_pids, tiny_config


def interrupted_folder(tmp_path: Path) -> RunFolder:
    """What an interrupted run leaves before its first epoch: its resolved config and run.json."""
    folder = RunFolder(create_run_dir(tiny_config(tmp_path, train={"epochs": 2})))
    write_run_info(folder.path, status="interrupted", reason="stopped by the user", resumes=0)
    return folder


def snapshot(folder: RunFolder) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.path.rglob("*") if p.is_file()}


REFUSED = [
    (["--members", "3"], "--members cannot change on --resume"),
    (["--batch-size", "16"], "--batch-size cannot change on --resume"),
    (["--dataset", "synthetic"], "--dataset cannot change on --resume"),
    (["--limit", "64"], "--limit cannot change on --resume"),
    (["--seed", "7"], "--seed cannot change on --resume: members are seeded by (seed, index)"),
    (["--output-dir", "{tmp}/elsewhere"], "--output-dir cannot change on --resume"),
    (["--epochs", "1"], "--epochs 1 is below the run's 2"),
    (["--ranks", "cpu:x"], "--ranks: cannot read 'cpu:x'"),
    (["--strategy", "ring"], "parallel.strategy: must be one of"),
    (["--run-config", "configs/quick-digits.toml"], "--resume continues a run with its own config.toml"),
]


@pytest.mark.parametrize(("flags", "expected"), REFUSED, ids=[r[0][0] + " " + r[0][1][:8] for r in REFUSED])
def test_a_resume_refuses_what_would_change_the_saved_members(
    tmp_path: Path, flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = interrupted_folder(tmp_path)
    before = snapshot(folder)
    flags = [f.format(tmp=tmp_path) for f in flags]
    assert main(["--resume", str(folder.path), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("ens-tui: ") and expected in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert snapshot(folder) == before, "a refused resume touches nothing"
    assert not (tmp_path / "elsewhere").exists()


def test_a_resume_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = interrupted_folder(tmp_path)
    before = snapshot(folder)
    argv = ["--resume", str(folder.path), "--epochs", "3", "--ranks", "1", "--strategy", "sequential",
            "--deterministic", "--data-root", str(tmp_path / "data"), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"would resume {folder.path} (interrupted" in out
    for change in ("train.epochs 2 → 3", "parallel.strategy 'local' → 'sequential'",
                   "parallel.deterministic False → True", "data.root 'data' →"):
        assert change in out, out
    assert "strategy sequential" in out and "1 rank(s): cpu" in out and ", deterministic" in out
    assert f"--run-dir {folder.path}" in out
    assert snapshot(folder) == before, "a dry run touches nothing"


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_a_resume_trains_further_on_fewer_ranks(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Stop a 2-rank run after its first epoch, then resume it on one rank for one more epoch than planned."""
    config = tiny_config(tmp_path, train={"epochs": 2})

    async def stop_after_an_epoch(event: ev.Event, launcher) -> None:  # noqa: ANN001
        if isinstance(event, ev.Epoch):
            await launcher.stop()

    first, interrupted = run_launcher(config, on_event=stop_after_an_epoch)
    assert interrupted.status == "interrupted"
    folder = RunFolder(interrupted.run_dir)

    done = subprocess.run(
        [sys.executable, "-m", "ens_tui", "--resume", str(folder.path), "--epochs", "3", "--ranks", "1"],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    resumed = load_config(folder.config)
    assert resumed.train.epochs == 3 and resumed.parallel.world_size == 1, "the ranks read the honoured overrides"
    assert resumed.model_copy(update={"train": config.train, "parallel": config.parallel}) == config
    info = json.loads(folder.info.read_text())
    assert info["status"] == "finished" and info["resumes"] == 1 and info["ranks"] == 1
    events = read_events(folder.path)
    later = events[len(first):]
    assert sorted(e.rank for e in later if isinstance(e, ev.Hello)) == [0]
    assert {(e.member, e.epoch) for e in later if isinstance(e, ev.Epoch)} >= {(0, 2), (1, 2)}
    assert isinstance(later[-1], ev.RunDone) and later[-1].status == "finished"
    assert folder.report_json.is_file()
    assert_no_process_left(run_pids(events))
