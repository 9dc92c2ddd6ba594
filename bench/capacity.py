"""Many members near the cores' capacity: 32 seed-cnn members trained on every core, against what the cores can do.

The cores' capacity for this model is `cores × one member's 1-thread samples/s`, measured here in the bench
process on the same data: one fresh member, one epoch, the model's own work (forward, loss, backward, step on the
epoch's shuffled batches), nothing else. The runs are real `ens-tui --run-config` runs, one rank per core and one
thread each; their rate is the training window's (first `member_start` to last `member_done`). The in-process
measurement is taken before and after every run (interleaved), and the ratio is median against median.

On a machine others are using too, one member alone gets a whole core that the runs' ranks have to share, so
the bench also measures the capacity *at once*: one process per core, each timing one member over the same
epoch at the same moment (`python -m bench.capacity ROOT SAMPLES` is that process), summed. Against it, the ratio
says what the product loses (start-up skew, hand-out, tail); against the first, what the machine's load takes too.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.launcher_runs import SETUPS, bench_config, launch
from engine.config import RunConfig
from engine.data import Splits, load_splits
from engine.member import make_member
from engine.seeding import batch_slices, epoch_order

TARGET = 0.95
"""Training-phase model-samples/s of the best strategy against the cores' capacity."""


def cores_setup() -> str:
    """A setup with one CPU rank per core (registered in SETUPS under `CPU×<cores>`)."""
    cores = os.cpu_count() or 1
    name = f"CPU×{cores}"
    SETUPS.setdefault(name, [{"count": cores, "device": "cpu"}])
    return name


def one_member_rate(config: RunConfig, splits: Splits, member: int = 0) -> float:
    """Samples/s of one fresh member over one epoch of `splits` on one thread: the model's work alone."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = make_member(config, splits.shape, splits.num_classes, member, torch.device("cpu"))
        m.model.train()
        x, y = splits.x_train, splits.y_train
        order = epoch_order(config.seed, 0, len(y))
        start = time.perf_counter()
        for s in batch_slices(len(y), config.train.batch_size):
            idx = order[s]
            m.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(m.model(x[idx]), y[idx]).backward()
            m.optimizer.step()
        return len(y) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def at_once_rate(root: Path, samples: int, processes: int) -> float:
    """Sum of `processes` one-thread members' samples/s, each in its own process, timed at the same moment."""
    procs = [subprocess.Popen([sys.executable, "-m", "bench.capacity", str(root), str(samples), str(i)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(processes)]
    try:
        for proc in procs:  # every process has loaded torch and the data: start them together
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("capacity probe failed to start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return sum(float(proc.communicate(timeout=600)[0].split()[-1]) for proc in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def capacity(root: Path, out: Path, *, members: int, samples: int, strategies: list[str], repeats: int,
             say: Any = print) -> dict[str, Any]:
    """The 32-member runs beside the in-process 1-thread rate, interleaved; the ratio of the best strategy."""
    cores = os.cpu_count() or 1
    setup = cores_setup()
    configs = {s: bench_config(setup, s, root, out, members=members, epochs=1, batch_size=64, limit=samples,
                               threads=1) for s in strategies}
    reference = next(iter(configs.values()))
    splits = load_splits(reference.data, reference.seed)
    rates = [one_member_rate(reference, splits, 0)]
    together = [at_once_rate(root, samples, cores)]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    for repeat in range(repeats):
        for strategy, config in configs.items():
            say(f"capacity: {strategy} {setup}, {members} members, repeat {repeat + 1}/{repeats}…")
            run = launch(config)
            run["model_samples_per_s"] = members * len(splits.y_train) / run["train_seconds"]
            runs[strategy].append(run)
            rates.append(one_member_rate(reference, splits, len(rates)))
            together.append(at_once_rate(root, samples, cores))
    one = statistics.median(rates)
    at_once = statistics.median(together)
    medians = {s: statistics.median(r["model_samples_per_s"] for r in rs) for s, rs in runs.items()}
    best = max(medians, key=lambda s: medians[s])
    ratio = medians[best] / (cores * one)
    return {
        "members": members, "samples": len(splits.y_train), "cores": cores, "setup": setup, "repeats": repeats,
        "one_member_runs": rates, "one_member_samples_per_s": one, "capacity_samples_per_s": cores * one,
        "at_once_runs": together, "at_once_samples_per_s": at_once, "ratio_at_once": medians[best] / at_once,
        "runs": runs, "model_samples_per_s": medians, "best": best, "ratio": ratio, "target": TARGET,
        "met": ratio >= TARGET,
    }


def main() -> None:
    """One process of `at_once_rate`: load the data, say `ready`, wait for `go`, print one member's samples/s."""
    root, samples, member = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    config = bench_config("CPU×1", "local", root, root, members=1, epochs=1, batch_size=64, limit=samples, threads=1)
    splits = load_splits(config.data, config.seed)
    print("ready", flush=True)
    sys.stdin.readline()
    print(one_member_rate(config, splits, member), flush=True)


if __name__ == "__main__":
    main()
