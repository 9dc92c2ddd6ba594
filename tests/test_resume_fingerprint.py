"""A resume continues what was trained, or says in one line why it cannot.

A config.toml edited by hand after its members trained (another seed, model, batch size, fewer or more members)
is refused naming each changed key, old → new; more epochs continue every member (not under a cosine schedule,
whose finished epochs decayed toward the old end). A checkpoint file that is empty, truncated or not a
checkpoint is named before launch, without torch. Every refusal leaves the run folder byte for byte as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch

from engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from engine.config import OVERRIDES, load_config
from engine.fingerprint import GROWS, KEYS, fingerprint
from engine.member import make_member
from engine.run_folder import RunFolder
from ens_tui.cli import main
from ens_tui.rundir import create_run_dir, write_run_info
from tests.conftest import REPO, tiny_config

RETRAIN = "delete it to retrain that member from scratch"


def interrupted_copy(trained_run: Path, tmp_path: Path) -> RunFolder:
    """The session's trained run (3 members, 1 epoch, cosine), copied and marked interrupted so it resumes."""
    folder = RunFolder(tmp_path / trained_run.name)
    shutil.copytree(trained_run, folder.path)
    write_run_info(folder.path, status="interrupted", reason="stopped by the user")
    return folder


def launched_folder(tmp_path: Path, **train: Any) -> RunFolder:
    """A new run as the launcher leaves it before the first epoch: config.toml, and run.json with its fingerprint."""
    config = tiny_config(tmp_path, train={"epochs": 2, **train})
    folder = RunFolder(create_run_dir(config))
    write_run_info(folder.path, status="interrupted", reason="stopped by the user", resumes=0,
                   fingerprint=fingerprint(config))
    return folder


def edit(folder: RunFolder, changes: dict[str, Any]) -> None:
    """Edit config.toml by hand: `{"train.lr": 0.1}`; None removes the key."""
    data = tomllib.loads(folder.config.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        section = data
        for part in parents:
            section = section[part]
        if value is None:
            section.pop(leaf, None)
        else:
            section[leaf] = value
    folder.config.write_text(tomli_w.dumps(data))


def snapshot(folder: RunFolder) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder.path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in folder.path.rglob("*") if p.is_file()}


def refused(folder: RunFolder, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """Resume through the CLI; it must refuse in one line and touch nothing. Returns that line."""
    before = snapshot(folder)
    assert main(["--resume", str(folder.path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ens-tui: {folder.path}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    assert snapshot(folder) == before, "a refused resume touches nothing"
    return err.strip()


def accepted(folder: RunFolder, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    before = snapshot(folder)
    assert main(["--resume", str(folder.path), *flags, "--dry-run"]) == 0, capsys.readouterr().err
    assert snapshot(folder) == before, "a dry run touches nothing"
    return capsys.readouterr().out


def test_the_fingerprint_is_what_a_resume_may_not_change() -> None:
    """One contract: the OVERRIDES table's resume policies and the fingerprint agree."""
    config = tiny_config(Path("/nowhere"))
    assert json.loads(json.dumps(fingerprint(config))) == fingerprint(config)
    assert set(fingerprint(config)) == set(KEYS)
    for o in OVERRIDES:
        key = ".".join(o.path)
        if o.resume == "honour":
            assert key not in KEYS, f"{o.flag} is honoured on --resume, so it cannot be in the fingerprint"
        elif o.resume == "grow":
            assert key in KEYS and key in GROWS
        elif key != "output_dir":
            assert key in KEYS, f"{o.flag} is refused on --resume because the members depend on it"
    moved = config.model_copy(deep=True)
    moved.data.root, moved.data.ood, moved.data.cache, moved.model.path = "/elsewhere", ["invert"], False, ["/x"]
    moved.parallel.strategy, moved.parallel.threads_per_rank, moved.report.shift = "fused", 4, False
    assert fingerprint(moved) == fingerprint(config), "where data lives and how members run may change"


EDITS = [
    ({"seed": 7}, "seed 0 → 7"),
    ({"train.members": 8}, "train.members 3 → 8 (a run's checkpoints are its members"),
    ({"train.members": 2}, "train.members 3 → 2"),
    ({"model.name": "mlp"}, "model.name 'seed-cnn' → 'mlp'"),
    ({"train.batch_size": 16}, "train.batch_size 32 → 16"),
    ({"train.lr": 0.1}, "train.lr 0.05 → 0.1"),
    ({"data.dataset": "synthetic"}, "data.dataset 'digits' → 'synthetic'"),
    ({"data.limit": None}, "data.limit 300 → unset"),
    ({"train.epochs": 3}, "train.epochs 1 → 3 (under schedule 'cosine' the learning rate decays"),
    ({"seed": 7, "model.name": "mlp"}, "seed 0 → 7, model.name 'seed-cnn' → 'mlp'"),
]


@pytest.mark.parametrize(("changes", "expected"), EDITS, ids=[", ".join(e[0]) for e in EDITS])
def test_a_hand_edited_config_is_refused_naming_what_changed(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], expected: str
) -> None:
    folder = interrupted_copy(trained_run, tmp_path)
    edit(folder, changes)
    line = refused(folder, capsys)
    assert line.startswith(f"ens-tui: {folder.path}: config.toml no longer matches what its members were trained "
                           "with: "), line
    assert expected in line and line.endswith("; restore those values or start a new run"), line
    assert line.count("→") == len(changes), line
    assert refused(folder, capsys, "--dry-run") == line


def test_more_epochs_continue_every_member_and_fewer_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = launched_folder(tmp_path)
    edit(folder, {"train.epochs": 4, "data.root": str(tmp_path / "moved"), "parallel.strategy": "sequential",
                  "parallel.threads_per_rank": 2, "data.ood": ["invert"]})
    out = accepted(folder, capsys)
    assert "4 epoch(s)" in out and "strategy sequential" in out
    assert "6 epoch(s)" in accepted(folder, capsys, "--epochs", "6")
    edit(folder, {"train.epochs": 1})
    line = refused(folder, capsys)
    assert "config.toml no longer matches" in line and "train.epochs 2 → 1 (finished epochs cannot be undone)" in line


def test_more_epochs_under_a_cosine_schedule_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = launched_folder(tmp_path, schedule="cosine")
    line = refused(folder, capsys, "--epochs", "3", "--dry-run")
    assert line == (f"ens-tui: {folder.path}: the overrides do not match what its members were trained with: "
                    "train.epochs 2 → 3 (under schedule 'cosine' the learning rate decays to 0 over the planned "
                    "epochs, so the finished ones cannot be continued); drop them or start a new run")


def test_a_run_from_before_fingerprints_is_checked_against_its_checkpoints(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = interrupted_copy(trained_run, tmp_path)
    info = json.loads(folder.info.read_text())
    info.pop("fingerprint", None)
    folder.info.write_text(json.dumps(info))
    for path in folder.checkpoints.glob("member-*.pt"):
        state = load_checkpoint(path)
        state.pop("fingerprint", None)
        save_checkpoint(path, state)
    accepted(folder, capsys)
    edit(folder, {"seed": 3})
    assert "seed 0 → 3" in refused(folder, capsys)


def test_a_run_with_neither_fingerprint_nor_checkpoints_is_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = RunFolder(create_run_dir(tiny_config(tmp_path)))
    write_run_info(folder.path, status="interrupted")
    edit(folder, {"seed": 5})
    accepted(folder, capsys)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BROKEN = [
    ("truncated", truncate),
    ("empty", lambda path: path.write_bytes(b"")),
    ("not a checkpoint", lambda path: path.write_bytes(os.urandom(4096))),
]


@pytest.mark.parametrize(("what", "damage"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_checkpoint_is_named_before_launch(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, damage: Any
) -> None:
    folder = interrupted_copy(trained_run, tmp_path)
    damage(folder.checkpoint(1))
    assert refused(folder, capsys) == f"ens-tui: {folder.path}: checkpoints/member-01.pt is {what}; {RETRAIN}"


def test_the_real_cli_refuses_a_truncated_checkpoint_without_torch(
    trained_run: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    folder = interrupted_copy(trained_run, tmp_path)
    truncate(folder.checkpoint(2))
    before = snapshot(folder)
    probe = ("import sys, runpy; sys.argv = ['ens-tui', '--resume', sys.argv[1]]\n"
             "try: runpy.run_module('ens_tui', run_name='__main__')\n"
             "finally: print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, str(folder.path)], cwd=REPO, env=cli_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"ens-tui: {folder.path}: checkpoints/member-02.pt is truncated; {RETRAIN}\nno torch\n"
    assert snapshot(folder) == before


def test_a_rank_refuses_a_checkpoint_it_cannot_continue_in_one_line(trained_run: Path, tmp_path: Path) -> None:
    """What the CLI checks before launch, the rank checks again: no load_state_dict traceback ever."""
    folder = interrupted_copy(trained_run, tmp_path)
    config = load_config(folder.config)

    def restore(config: Any, index: int = 0) -> Any:
        return make_member(config, (1, 28, 28), 10, index, torch.device("cpu"), folder)

    assert restore(config).epochs_done == 1
    other = config.model_copy(update={"model": config.model.model_copy(update={"name": "mlp"})})
    with pytest.raises(CheckpointError) as err:
        restore(other)
    assert str(err.value) == ("checkpoints/member-00.pt was trained with other settings: model.name 'seed-cnn' → "
                              f"'mlp'; restore those values in config.toml or {RETRAIN}")
    truncate(folder.checkpoint(1))
    with pytest.raises(CheckpointError, match=f"^checkpoints/member-01.pt is truncated; {RETRAIN}$"):
        restore(config, 1)


def test_the_launcher_itself_refuses_a_broken_checkpoint_before_any_rank_starts(trained_run: Path, tmp_path: Path) -> None:
    """Not only the CLI: any front end that resumes through the launcher gets the same one line, nothing started."""
    from ens_tui.launcher import Launcher, LaunchError

    folder = interrupted_copy(trained_run, tmp_path)
    folder.checkpoint(0).write_bytes(os.urandom(4096))
    before = sorted(p.name for p in folder.path.iterdir())
    with pytest.raises(LaunchError) as refused:
        asyncio.run(Launcher(load_config(folder.config), run_dir=folder.path).start())
    assert str(refused.value).endswith(f"checkpoints/member-00.pt is not a checkpoint; {RETRAIN}"), refused.value
    assert "\n" not in str(refused.value) and "weights_only" not in str(refused.value)
    assert sorted(p.name for p in folder.path.iterdir()) == before, "nothing written, no lock taken"
