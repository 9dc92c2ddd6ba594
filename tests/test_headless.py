"""A user runs `ens-tui --run-config …` in a terminal: progress, a report, an exit code that tells the truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_no_process_left

pytestmark = pytest.mark.mpi


def ens_tui(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ens_tui", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_hellos(runs: Path, count: int, timeout: float = 60) -> tuple[Path, list[int]]:
    """Poll events.jsonl (as a person would tail it) until every rank has said hello."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for events in runs.glob("*/events.jsonl"):
            lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
            pids = [e["pid"] for e in lines if e["type"] == "hello"]
            steps = [e for e in lines if e["type"] == "step"]
            if len(pids) == count and steps:
                return events.parent, pids
        time.sleep(0.2)
    raise AssertionError("ranks never said hello")


def test_default_config_runs_headless_to_a_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = ens_tui("--run-config", "configs/quick-digits.toml", "--epochs", "1", "--members", "3",
                   "--output-dir", str(tmp_path / "runs"), env=cli_env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "member 2 done" in out
    assert "Uncertainty report" in out and "ensemble" in out and "OOD noise" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["members_count"] == 3 and report["ensemble"]["accuracy"] > 0.5


def disrupt_long_run(tmp_path: Path, env: dict[str, str], act) -> tuple[Path, list[int], str, int, float]:
    """Start a long headless run, `act(proc, rank_pids)` once every rank trains, and time how long it takes to end."""
    runs = tmp_path / "runs"
    proc = ens_tui("--run-config", "configs/quick-digits.toml", "--epochs", "50", "--output-dir", str(runs), env=env)
    try:
        run_dir, pids = wait_for_hellos(runs, 2)
        act(proc, pids)
        start = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    return run_dir, pids, out, proc.returncode, took


def test_a_killed_rank_fails_the_run_and_leaves_no_process(tmp_path: Path, cli_env: dict[str, str]) -> None:
    run_dir, pids, out, code, took = disrupt_long_run(tmp_path, cli_env, lambda _, p: os.kill(p[1], signal.SIGKILL))
    assert code == 1, out
    assert took < 10, f"took {took:.1f}s to notice"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed"
    assert "rank" in info["reason"], info["reason"]
    assert "run failed" in out
    assert_no_process_left(pids + [info["pid"]])
    # Every checkpoint written before the failure still loads.
    import torch

    for path in (run_dir / "checkpoints").glob("*.pt"):
        assert torch.load(path, weights_only=True)["epoch"] >= 1


def test_ctrl_c_interrupts_every_rank(tmp_path: Path, cli_env: dict[str, str]) -> None:
    run_dir, pids, out, code, took = disrupt_long_run(tmp_path, cli_env, lambda proc, _: proc.send_signal(signal.SIGINT))
    assert code == 130, out
    assert took < 5, f"took {took:.1f}s to stop"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert_no_process_left(pids + [info["pid"]])
