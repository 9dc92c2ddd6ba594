"""`ens-tui extend RUN --members N`: a finished ensemble grows to N members without training its own again.

Member i is seeded by (seed, i) whatever the count, so a run of 2 extended to 3 is a fresh run of 3: the same
checkpoints bit for bit, the same report; the 2 trained members' files are not rewritten. Whatever cannot be
extended (not a run, still running, not finished, no more members than it has, over the config's maximum, a
config.toml its members were not trained with) is refused in one line, exit 2, the run folder untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.run_folder import RunFolder
from ens_tui.cli import main
from ens_tui.rundir import RunLock, write_run_info
from tests.conftest import run_launcher, tiny_config

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real finished run of 2 members (2 ranks, 1 epoch), trained once for this module; tests use copies."""
    _, launcher = run_launcher(tiny_config(tmp_path_factory.mktemp("two")))
    assert launcher.status == "finished", launcher.reason
    return launcher.run_dir


def copy_of(run: Path, where: Path) -> RunFolder:
    folder = RunFolder(where / run.name)
    shutil.copytree(run, folder.path)
    return folder


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime: what a refusal must leave as it was."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


def tensors_equal(a: Any, b: Any) -> bool:
    """Nested checkpoint contents equal, every tensor bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_a_run_of_two_extended_to_three_is_a_fresh_run_of_three(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_of(finished_run, tmp_path)
    kept = {i: folder.checkpoint(i).read_bytes() for i in (0, 1)}

    assert main(["extend", str(folder.path), "--members", "3"]) == 0, capsys.readouterr().err
    assert "finished in" in capsys.readouterr().out

    for i, data in kept.items():
        assert folder.checkpoint(i).read_bytes() == data, f"member {i}'s checkpoint was rewritten"
    _, fresh = run_launcher(tiny_config(tmp_path / "fresh", train={"members": 3}))
    assert fresh.status == "finished", fresh.reason
    reference = RunFolder(fresh.run_dir)
    for i in range(3):
        ours, theirs = load_checkpoint(folder.checkpoint(i)), load_checkpoint(reference.checkpoint(i))
        for part in ("model", "optimizer"):
            assert tensors_equal(ours[part], theirs[part]), f"member {i}: {part} differs from a fresh run of 3"
    report, expected = (json.loads(f.report_json.read_text()) for f in (folder, reference))
    assert report["members_count"] == 3
    assert report["ensemble"] == expected["ensemble"]
    assert [m["nll"] for m in report["members"]] == [m["nll"] for m in expected["members"]]

    info = json.loads(folder.info.read_text())
    assert info["status"] == "finished" and info["fingerprint"]["train.members"] == 3
    assert [(e["from"], e["to"]) for e in info["extensions"]] == [(2, 3)]
    assert "members = 3" in folder.config.read_text()
    # Its checkpoints still say 2 members: a later resume goes by run.json's count, not theirs.
    write_run_info(folder.path, status="interrupted")
    assert main(["--resume", str(folder.path), "--dry-run"]) == 0, capsys.readouterr().err


def seed_edited(folder: RunFolder) -> None:
    folder.config.write_text(folder.config.read_text().replace("seed = 0", "seed = 7"))


REFUSED: list[tuple[str, str, Any, str]] = [
    ("not a run", "2", None, "not a run folder"),
    ("interrupted", "3", lambda f: write_run_info(f.path, status="interrupted", reason="stopped by the user"),
     "interrupted (stopped by the user), not finished: resume it first (ens-tui --resume "),
    ("failed", "3", lambda f: write_run_info(f.path, status="failed", reason="rank 1 vanished"),
     "failed (rank 1 vanished), not finished: resume it first"),
    ("as many", "2", None, "has 2 members; the new total must be more than 2"),
    ("fewer", "1", None, "has 2 members; the new total must be more than 2"),
    ("over the maximum", "1025", None, "1025 members: train.members: Input should be less than or equal to 1024"),
    ("edited config", "3", seed_edited, "config.toml no longer matches what its members were trained with: seed 0 → 7"),
    ("lost checkpoint", "3", lambda f: f.checkpoint(1).unlink(), "checkpoints/member-01.pt is missing"),
]


@pytest.mark.parametrize(("why", "members", "change", "expected"), REFUSED, ids=[r[0] for r in REFUSED])
def test_what_cannot_be_extended_is_refused_in_one_line_touching_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    why: str, members: str, change: Any, expected: str,
) -> None:
    folder = copy_of(finished_run, tmp_path)
    target = tmp_path if why == "not a run" else folder.path
    if change is not None:
        change(folder)
    before = listing(tmp_path)
    assert main(["extend", str(target), "--members", members]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ens-tui: {target}") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert listing(tmp_path) == before, "a refused extension touches nothing"


def test_a_running_run_is_refused_and_a_dry_run_only_says_what_it_would_do(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_of(finished_run, tmp_path)
    lock = RunLock(folder.path)
    lock.acquire()
    try:
        before = listing(folder.path)
        assert main(["extend", str(folder.path), "--members", "3"]) == 2
        err = capsys.readouterr().err
        assert err == f"ens-tui: {folder.path}: still running (its launcher holds run.lock); extend it once it has finished\n"
    finally:
        lock.release()
    assert main(["extend", str(folder.path), "--members", "4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would extend {folder.path} from 2 to 4 members: train members 2 … 3"), out
    assert "config.toml changes: train.members 2 → 4" in out and f"--run-dir {folder.path}" in out
    assert listing(folder.path) == before, "neither a refusal nor a dry run writes"


def test_a_plain_resume_never_changes_the_member_count_and_says_how(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_of(finished_run, tmp_path)
    assert main(["--resume", str(folder.path)]) == 2
    assert f"to add members: ens-tui extend {folder.path} --members N" in capsys.readouterr().err
    write_run_info(folder.path, status="interrupted")
    folder.config.write_text(folder.config.read_text().replace("members = 2", "members = 3"))
    assert main(["--resume", str(folder.path)]) == 2
    assert "train.members 2 → 3 (a run's checkpoints are its members; to add members to a finished run: ens-tui " \
           "extend RUN --members 3)" in capsys.readouterr().err


def test_a_run_that_stopped_early_grows_from_the_members_it_trained(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stopped_early` in report.json: the run has that many members, whatever its config planned."""
    folder = copy_of(finished_run, tmp_path)
    report = json.loads(folder.report_json.read_text())
    report["stopped_early"] = {"members": 1, "reason": "the last two sizes gained less than 0.002 NLL"}
    folder.report_json.write_text(json.dumps(report))
    folder.checkpoint(1).unlink()
    assert main(["extend", str(folder.path), "--members", "1"]) == 2
    assert "has 1 member; the new total must be more than 1" in capsys.readouterr().err
    assert main(["extend", str(folder.path), "--members", "2", "--dry-run"]) == 0
    assert "from 1 to 2 members: train member 1," in capsys.readouterr().out
