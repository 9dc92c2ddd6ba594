"""A user runs `ens-tui --run-config …` in a terminal: progress, a report, an exit code that tells the truth."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.run_folder import RunFolder
from tests.conftest import REPO, assert_no_process_left

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(300)]
STOP_BOUND_S = 60
"""How long a disrupted run may take to end: a bound against hanging, not a speed claim."""


def ens_tui(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ens_tui", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def recorded(folder: RunFolder) -> list[dict]:
    """events.jsonl as a person would read it (a line still being written is skipped)."""
    lines = folder.events.read_text().splitlines() if folder.events.exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


def wait_for_hellos(runs: Path, count: int, timeout: float = 60) -> tuple[RunFolder, list[int]]:
    """Poll events.jsonl (as a person would tail it) until every rank has said hello and trains; pids by rank."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for folder in map(RunFolder, runs.glob("*")):
            lines = recorded(folder)
            pids = [e["pid"] for e in sorted((e for e in lines if e["type"] == "hello"), key=lambda e: e["rank"])]
            if len(pids) == count and any(e["type"] == "step" for e in lines):
                return folder, pids
        time.sleep(0.2)
    raise AssertionError("ranks never said hello")


def test_default_config_runs_headless_to_a_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = ens_tui("--run-config", "configs/quick-digits.toml", "--epochs", "1", "--members", "3",
                   "--output-dir", str(tmp_path / "runs"), env=cli_env)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "m2 done" in out
    assert "Uncertainty report" in out and "ensemble" in out and "OOD noise" in out
    (folder,) = map(RunFolder, (tmp_path / "runs").iterdir())
    assert json.loads(folder.info.read_text())["status"] == "finished"
    report = json.loads(folder.report_json.read_text())
    assert report["members_count"] == 3 and report["ensemble"]["accuracy"] > 0.5


def test_piped_output_at_80_columns_is_one_whole_line_per_event(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """What CI and `| tee run.log` get: Rich assumes 80 columns off a terminal, yet no path, number or event
    line may be cut there, so the log can be grepped and a path copied."""
    runs = tmp_path / ("a-folder-with-a-long-name-" * 3) / "runs"
    proc = ens_tui("--run-config", "configs/quick-digits.toml", "--epochs", "1", "--members", "2", "--limit", "300",
                   "--output-dir", str(runs), env={**cli_env, "COLUMNS": "80"})
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    (folder,) = map(RunFolder, runs.iterdir())
    lines = out.splitlines()
    assert f"run folder {folder.path} · 2 rank(s) · strategy local" in lines, out
    epochs = [line for line in lines if " · epoch " in line]
    assert len(epochs) == 2 and all(
        re.fullmatch(r"rank \d · m\d · epoch 1/1 · train loss [\d.]+, val acc [\d.]+%, val NLL [\d.]+ · [\d.]+s", line)
        for line in epochs), out
    assert any(re.fullmatch(r"rank \d: m1 done in [\d.]+ s, val acc [\d.]+%", line) for line in lines), out
    assert any(re.fullmatch(r"entropy [\d.]+ = aleatoric [\d.]+ \+ mutual information [\d.]+", line.rstrip())
               for line in lines), out
    assert any(re.fullmatch(rf"finished in [\d.]+s · report: {re.escape(str(folder.report_md))}( · .*)?", line)
               for line in lines), out
    assert not any(re.fullmatch(r"\s*[\d.,%s]+\s*", line) for line in lines), "a number wrapped onto its own line"


EPOCHS = 50


def disrupt_long_run(tmp_path: Path, env: dict[str, str], act) -> tuple[RunFolder, list[int], str, int, list[dict]]:
    """Start a long headless run, `act(proc, rank_pids)` once every rank trains; returns how it ended.

    The run must end well within STOP_BOUND_S of the disruption (otherwise this fails on the timeout), and
    cut short: far fewer epochs recorded than it was asked for.
    """
    runs = tmp_path / "runs"
    proc = ens_tui("--run-config", "configs/quick-digits.toml", "--epochs", str(EPOCHS), "--output-dir", str(runs),
                   env=env)
    try:
        folder, pids = wait_for_hellos(runs, 2)
        act(proc, pids)
        out, _ = proc.communicate(timeout=STOP_BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return folder, pids, out, proc.returncode, recorded(folder)


def test_a_killed_rank_fails_the_run_and_leaves_no_process(tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder, pids, out, code, events = disrupt_long_run(
        tmp_path, cli_env, lambda _, p: os.kill(p[1], signal.SIGKILL))
    assert code == 1, out
    types = [e["type"] for e in events]
    assert types.count("run_done") == 1 and types[-1] == "run_done", "the launcher's verdict is the last word"
    assert events[-1]["status"] == "failed" and "rank 1" in events[-1]["reason"], events[-1]
    assert "signal 9" in events[-1]["reason"], "mpiexec's witness names how the rank died"
    assert types.count("epoch") < 2 * EPOCHS, "the failure was noticed while the run still trained"
    assert "goodbye" not in types, "no rank finished cleanly"
    info = json.loads(folder.info.read_text())
    assert info["status"] == "failed" and info["reason"] == events[-1]["reason"]
    assert "run failed" in out
    assert_no_process_left(pids + [info["pid"]])
    # Every checkpoint written before the failure still loads.
    import torch

    for path in folder.checkpoints.glob("*.pt"):
        assert torch.load(path, weights_only=True)["epoch"] >= 1


def test_ctrl_c_interrupts_every_rank(tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder, pids, out, code, events = disrupt_long_run(
        tmp_path, cli_env, lambda proc, _: proc.send_signal(signal.SIGINT))
    assert code == 130, out
    types = [e["type"] for e in events]
    assert types[-1] == "run_done" and events[-1]["status"] == "interrupted", events[-1]
    assert types.count("epoch") < 2 * EPOCHS, "stopped while it still trained"
    info = json.loads(folder.info.read_text())
    assert info["status"] == "interrupted"
    assert_no_process_left(pids + [info["pid"]])


HOT_MODEL = """
import torch
from torch import nn


class Exploding(nn.Module):
    \"\"\"Trains normally for a few steps, then its logits overflow: a member that diverges.\"\"\"

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size[0] * image_size[1], num_classes)
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        if self.training:
            self.steps += 1
            if self.steps > 3:
                return logits * float("inf")
        return logits
"""


def test_a_run_whose_every_member_diverges_fails_in_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # A learning rate wild enough to diverge is refused by the config now, so the model itself blows up.
    (tmp_path / "hot_model.py").write_text(HOT_MODEL)
    config = tmp_path / "hot.toml"
    config.write_text((REPO / "configs/quick-digits.toml").read_text().replace(
        'name = "seed-cnn"', 'name = "hot_model:Exploding"'))
    proc = ens_tui("--run-config", str(config), "--epochs", "1", "--members", "2", "--limit", "200",
                   "--output-dir", str(tmp_path / "runs"), env=cli_env)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "every member diverged" in out and "lower the learning rate" in out
    assert "Traceback" not in out
