"""Dynamic placement needs an MPI that lets rank 0's dispenser thread call MPI; with less it runs static."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine.config import parse_config
from engine.run_folder import RunFolder
from ens_tui.launcher import find_mpiexec
from tests.conftest import REPO

pytestmark = pytest.mark.mpi


CONFIG = parse_config({
    "data": {"dataset": "digits", "limit": 160, "ood": []},
    "train": {"members": 3, "epochs": 1, "batch_size": 32},
    "parallel": {"strategy": "local", "placement": "dynamic", "ranks": [{"count": 2, "device": "cpu"}]},
}, "test")


def run_worker(run_dir: Path, thread_level: str) -> list[ev.Event]:
    """The real worker on two mpiexec ranks (3 members, dynamic placement asked for), its MPI initialised at
    `thread_level`; without the launcher, events come on stdout."""
    RunFolder(run_dir).config.write_text(CONFIG.to_toml())
    done = subprocess.run(
        [find_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", "-rc", f"thread_level={thread_level}", "-m",
         "engine.worker", "--run-dir", str(run_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [ev.decode(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_an_mpi_without_thread_multiple_gets_static_placement_and_a_warning(tmp_path: Path) -> None:
    events = run_worker(tmp_path, "serialized")
    hellos = sorted((e for e in events if isinstance(e, ev.Hello)), key=lambda e: e.rank or 0)
    assert [h.members for h in hellos] == [[0, 2], [1]], "round-robin, announced up front"
    warnings = [e.message for e in events if isinstance(e, ev.Log) and e.level == "warning"]
    assert any("MPI_THREAD_MULTIPLE" in w and "THREAD_SERIALIZED" in w and "static" in w for w in warnings)
    starts = {e.member: e.rank for e in events if isinstance(e, ev.MemberStart)}
    assert starts == {0: 0, 1: 1, 2: 0}
    assert next(e for e in events if isinstance(e, ev.PredictionsSaved)).members == [0, 1, 2]


def test_with_thread_multiple_the_queue_decides(tmp_path: Path) -> None:
    events = run_worker(tmp_path, "multiple")
    assert [h.members for h in events if isinstance(h, ev.Hello)] == [[], []]
    assert not any(isinstance(e, ev.Log) and "MPI_THREAD_MULTIPLE" in e.message for e in events)
    assert sorted(e.member for e in events if isinstance(e, ev.MemberStart)) == [0, 1, 2]
