"""Shared helpers: tiny real configs, running the real launcher, and checking no process survives."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine import events as ev
from engine.config import RunConfig, parse_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def tiny_config(tmp_path: Path, **sections: Any) -> RunConfig:
    """A real digits run small enough for seconds: 2 members, 1 epoch, a few hundred samples."""
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "data": {"dataset": "digits", "limit": 320, "ood": ["noise"]},
        "train": {"members": 2, "epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.003},
        "parallel": {"strategy": "local", "ranks": [{"count": 2, "device": "cpu"}]},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return parse_config(data, "test")


def run_launcher(config: RunConfig, on_event: Any = None, **kwargs: Any) -> tuple[list[ev.Event], Any]:
    """Run the real launcher (real mpiexec, real socket) to the end; returns its events and itself."""
    from ens_tui.launcher import Launcher

    launcher = Launcher(config, **kwargs)
    seen: list[ev.Event] = []

    async def go() -> None:
        await launcher.start()
        async for event in launcher.events():
            seen.append(event)
            if on_event is not None:
                await on_event(event, launcher)

    asyncio.run(go())
    return seen, launcher


def run_pids(events: list[ev.Event]) -> list[int]:
    return [e.pid for e in events if isinstance(e, ev.Hello)]


def assert_no_process_left(pids: list[int]) -> None:
    """None of these processes (ranks, mpiexec) may still exist, zombies aside."""
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append((pid, proc.name(), proc.cmdline()[:6]))
        except psutil.NoSuchProcess:
            continue
    assert not alive, f"processes survived the run: {alive}"


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running `ens-tui` as a user would, from this venv."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "140"
    return env


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run, trained once per session by the real CLI on MPI ranks: 3 members, 1 epoch, 300 digits.

    For the tests that use a trained ensemble (predict, export, the predict tab); they may add files to the
    folder (an export) but never change what is there.
    """
    runs = tmp_path_factory.mktemp("trained")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", "configs/quick-digits.toml", "--epochs",
                           "1", "--members", "3", "--limit", "300", "--output-dir", str(runs)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = runs.iterdir()
    return folder


@pytest.fixture
def float64() -> object:
    """Models and data in float64 for the duration of one test: where numeric comparisons hold on any CPU."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small tmpfs at `folder` for one test (full and read-only disks are real this way); needs root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a file system needs root (CI runs as root)")
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)])


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decoded-dataset cache of this test's own, for tests that look at what the cache holds."""
    monkeypatch.setenv("ENS_TUI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cache_entries(cache: Path) -> list[Path]:
    """The entries a cache folder holds (temp files being written aside)."""
    return sorted(p for p in cache.iterdir() if not p.name.startswith(".")) if cache.is_dir() else []


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Decoded datasets go to a cache of the suite's own (ranks and CLI subprocesses inherit it), never the user's;
    and no run-time estimate from this machine's figures (they differ by machine, and a probe takes seconds):
    tests of the estimate give it figures of their own."""
    pinned = {"ENS_TUI_CACHE": str(tmp_path_factory.mktemp("cache")), "ENS_TUI_ESTIMATE_COSTS": "none"}
    before = {name: os.environ.get(name) for name in pinned}
    os.environ.update(pinned)
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
