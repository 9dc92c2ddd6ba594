"""How a run's wall time grows with members, epochs and data: a fixed part plus a cost per unit of work.

Real `ens-tui --run-config` runs of the best CPU strategy (local, two ranks, as the default config) over a grid of
(members, epochs, samples); each run's work is `engine.estimate.Workload.units`: a rank's members × (epochs ×
training samples + r × images scored), with r (scoring one image against training one sample) and the zoo models'
relative costs measured here in process (`engine.speed_probe`). A least-squares line through (work, wall) gives
the fixed seconds and the seconds per unit: the figures `engine.estimate` predicts runs with, written into the
results JSON (`estimate_costs`) and this machine's estimate cache.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.launcher_runs import bench_config, launch, threads_for
from engine.estimate import Costs, workload
from engine.speed_probe import CROWDED, model_costs, scoring_rate, training_rate

GRID: list[tuple[int, int, int]] = [
    (1, 1, 10000), (2, 1, 10000), (4, 1, 10000), (8, 1, 10000), (16, 1, 10000), (32, 1, 10000),
    (4, 2, 10000), (4, 4, 10000), (4, 1, 2500), (4, 1, 40000),
]
"""(members, epochs, training samples): members 1…32 at one epoch of 10k, then epochs and data size at 4 members."""
QUICK_GRID = [(1, 1, 1000), (2, 1, 1000), (2, 2, 1000)]
SETUP, STRATEGY = "CPU×2", "local"


def torch_import_seconds(repeats: int = 3) -> float:
    """Median seconds a fresh interpreter takes to import torch (every rank pays it once)."""
    code = "import time; s = time.perf_counter(); import torch; print(time.perf_counter() - s)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(repeats))


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through the points."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def scale(root: Path, out: Path, grid: list[tuple[int, int, int]], available: int, say: Any = print) -> dict[str, Any]:
    """Run the grid, fit wall = fixed + seconds per unit × units, and compare every run with its prediction."""
    cores = os.cpu_count() or 1
    one = training_rate(steps=40)
    eval_ratio = one / scoring_rate()
    speedup = {str(cores): training_rate(threads=cores, steps=20) / one} if cores > 1 else {}
    costs_by_model = model_costs()
    probe = Costs(host=socket.gethostname(), cores=cores, fixed_s=0.0, sample_s=1 / one, eval_ratio=eval_ratio,
                  threads_speedup=speedup, model_cost=costs_by_model)
    runs: list[dict[str, Any]] = []
    for members, epochs, samples in grid:
        samples = min(samples, available)
        say(f"scale: {STRATEGY} {SETUP}, {members} member(s), {epochs} epoch(s), {samples} samples…")
        config = bench_config(SETUP, STRATEGY, root, out, members=members, epochs=epochs, batch_size=64,
                              limit=samples, threads=threads_for(SETUP, STRATEGY))
        work = workload(config, probe)
        run = launch(config)
        run.update(members=members, epochs=epochs, samples=samples, train=work.train, scored=work.scored,
                   per_rank=work.members_per_rank, units=work.units(eval_ratio))
        runs.append(run)
    fixed, per_unit = fit_line([r["units"] for r in runs], [r["seconds"] for r in runs])
    if per_unit <= 0 or fixed <= 0:  # too few or too small runs to fit through noise: the in-process figures
        per_unit = CROWDED / one
        fixed = statistics.median(r["seconds"] - per_unit * r["units"] for r in runs)
    train_fixed, train_per_unit = fit_line([r["per_rank"] * r["epochs"] * r["train"] for r in runs],
                                           [r["train_seconds"] for r in runs])
    for r in runs:
        r["predicted"] = fixed + per_unit * r["units"]
    import_s = torch_import_seconds()
    costs = Costs(host=probe.host, cores=cores, fixed_s=round(fixed, 2), sample_s=per_unit,
                  eval_ratio=round(eval_ratio, 3), threads_speedup={k: round(v, 3) for k, v in speedup.items()},
                  model_cost=costs_by_model, source="")
    return {
        "setup": SETUP, "strategy": STRATEGY, "runs": runs, "fixed_s": fixed, "seconds_per_unit": per_unit,
        "in_process_seconds_per_sample": 1 / one, "crowded": per_unit * one,
        "training_window_seconds_per_sample": train_per_unit, "training_window_intercept": train_fixed,
        "median_fixed_phase_s": statistics.median(r["phases"]["fixed"] for r in runs),
        "torch_import_s": import_s, "fixed_per_import": fixed / import_s,
        "estimate_costs": {**asdict(costs), "date": time.strftime("%Y-%m-%d %H:%M:%S")},
    }
