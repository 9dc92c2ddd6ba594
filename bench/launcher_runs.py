"""One benchmark row run end to end through the real CLI: `ens-tui --run-config` in a subprocess.

Config → launcher → mpiexec → ranks → report, exactly as a user runs it; the bench only writes the
config, times the process and reads the run folder back. The CLI is reached by subprocess, never imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.timing import run_phases, training_window
from engine.config import RunConfig, parse_config
from engine.run_folder import RunFolder

SETUPS: dict[str, list[dict[str, Any]]] = {
    "CPU×2": [{"count": 2, "device": "cpu"}],
    "GPU×2": [{"count": 2, "device": "cuda"}],
    "CPU×2+GPU×1": [{"count": 2, "device": "cpu"}, {"count": 1, "device": "cuda"}],
    "GPU×1": [{"count": 1, "device": "cuda"}],
    "CPU×1": [{"count": 1, "device": "cpu"}],
}
"""Rank layouts by name, as `[[parallel.ranks]]` tables."""


def bench_config(setup: str, strategy: str, root: Path, out: Path, *, members: int, epochs: int, batch_size: int,
                 limit: int | None, threads: int) -> RunConfig:
    """The seed workload (seed-cnn, SGD 0.01/0.5, all samples for training) under one setup and strategy."""
    return parse_config(
        {
            "name": f"bench-{strategy}",
            "seed": 0,
            "output_dir": str(out),
            "data": {"dataset": "mnist", "root": str(root), "download": False, "val_fraction": 0.0,
                     "ood": ["noise"], "limit": limit},
            "model": {"name": "seed-cnn"},
            "train": {"members": members, "epochs": epochs, "batch_size": batch_size, "optimizer": "sgd",
                      "lr": 0.01, "momentum": 0.5},
            "parallel": {"strategy": strategy, "ranks": SETUPS[setup], "threads_per_rank": threads},
        },
        f"bench {setup} {strategy}",
    )


def threads_for(setup: str, strategy: str) -> int:
    """One process gets every core; several ranks share them."""
    cores = os.cpu_count() or 1
    ranks = 1 if strategy == "sequential" else sum(g["count"] for g in SETUPS[setup])
    return max(1, cores // ranks)


def run_config(path: Path, out: Path, env: dict[str, str] | None = None) -> tuple[RunFolder, float]:
    """`ens-tui --run-config PATH --output-dir OUT` in a subprocess, to the end: its run folder and wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ens_tui.cli", "--run-config", str(path), "--output-dir", str(out)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120", **(env or {})})
    seconds = time.perf_counter() - start
    run_dirs = [p for p in set(out.iterdir()) - before if p.is_dir()]
    if done.returncode != 0 or len(run_dirs) != 1:
        tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
        raise RuntimeError(f"{path.name} failed (exit {done.returncode}): " + " | ".join(tail))
    return RunFolder(run_dirs[0]), seconds


def launch(config: RunConfig, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one config with `ens-tui --run-config` and time it end to end; the run folder is removed after.

    Returns the seconds end to end, the training window and the share of it the ranks were training, the
    ensemble's accuracy, the run's phases (`bench.timing.run_phases`) and the 1/5/15-minute load average just
    before it started.
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{config.name}-{time.monotonic_ns()}.toml"
    path.write_text(config.to_toml())
    load = os.getloadavg()
    launched = time.time()
    run, seconds = run_config(path, out, env)
    exited = time.time()
    window = training_window(run.path)
    phases = run_phases(run.path, launched, exited)
    report = json.loads(run.report_json.read_text())
    shutil.rmtree(run.path, ignore_errors=True)
    path.unlink()
    return {"seconds": seconds, "train_seconds": window.seconds, "accuracy": report["ensemble"]["accuracy"],
            "busy": window.busy, "phases": phases, "load": load}
