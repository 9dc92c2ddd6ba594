"""A few seconds' measurement of this machine for `engine.estimate`: `python -m engine.speed_probe` prints its
figures as one JSON line (`engine.estimate.Costs`).

It times one seed-cnn member training on one core (and on every core), scoring against training, the zoo models
against seed-cnn, and importing torch, from which the fixed part of a run is guessed (a run starts torch on
every rank, loads data and writes a report: `FIXED_PER_IMPORT` times the import, calibrated by `ens-tui bench`).
`engine.estimate` runs it in its own process, since the UI side never imports torch; the bench reuses
`training_rate` and `scoring_rate` for its own figures.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time

FIXED_PER_IMPORT = 5.4
"""A run's fixed seconds over one `import torch` on the same machine: 5.8 s against 1.08 s on the 2-core VM
(`ens-tui bench` scale part, bench/results/vm-2cpu-nogpu-20261125-1654.json: `scale.fixed_per_import`)."""
CROWDED = 1.03
"""Seconds per sample inside real runs over one member alone on one core: 1.026 on the 2-core VM (the same file:
`scale.crowded`; shared caches and memory, the launcher, reporting)."""
BATCH = 64
SHAPE = (1, 28, 28)


def training_rate(model_name: str = "seed-cnn", threads: int = 1, steps: int = 30, repeats: int = 3) -> float:
    """Training samples per second of one zoo member on random MNIST-shaped batches (median of `repeats`)."""
    import torch
    import torch.nn.functional as F

    from engine.config import TrainConfig
    from engine.layout import prefer_layout
    from engine.member import make_optimizer
    from engine.models import build_model

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        device = torch.device("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = prefer_layout(build_model(model_name, SHAPE, 10), device)
            x, y = torch.randn(BATCH, *SHAPE), torch.randint(0, 10, (BATCH,))
        optimizer = make_optimizer(model.parameters(), TrainConfig(optimizer="sgd", lr=0.01, momentum=0.5))
        model.train()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        for _ in range(2):  # warm-up: allocator, oneDNN primitive caches
            step()
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates.append(steps * BATCH / (time.perf_counter() - start))
        return statistics.median(rates)
    finally:
        torch.set_num_threads(before)


def scoring_rate(model_name: str = "seed-cnn", images: int = 2048, repeats: int = 3) -> float:
    """Images per second one member scores on one core, as `engine.evaluation.predict_logits` does."""
    import torch

    from engine.evaluation import predict_logits
    from engine.layout import prefer_layout
    from engine.models import build_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = prefer_layout(build_model(model_name, SHAPE, 10), torch.device("cpu"))
            x = torch.randn(images, *SHAPE)
        predict_logits(model, x[:BATCH])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict_logits(model, x)
            times.append(time.perf_counter() - start)
        return images / statistics.median(times)
    finally:
        torch.set_num_threads(before)


def model_costs(steps: int = 4, repeats: int = 2) -> dict[str, float]:
    """Per-sample training cost of every zoo model against seed-cnn, one core, MNIST-shaped."""
    from engine.models import MODELS

    base = training_rate("seed-cnn", steps=steps * 4, repeats=repeats)
    return {name: round(base / training_rate(name, steps=steps, repeats=repeats), 3) for name in MODELS}


def main() -> int:
    start = time.perf_counter()
    import torch  # noqa: F401 - timed: every rank pays it

    import_s = time.perf_counter() - start
    cores = os.cpu_count() or 1
    one = training_rate()
    # Few steps: on a busy machine threads that wait for each other can be 20× slower than one.
    speedup = {str(cores): round(training_rate(threads=cores, steps=8, repeats=1) / one, 3)} if cores > 1 else {}
    costs = {
        "host": socket.gethostname(), "cores": cores,
        "fixed_s": round(FIXED_PER_IMPORT * import_s, 2),
        "sample_s": CROWDED / one,
        "eval_ratio": round(one / scoring_rate(), 3),
        "threads_speedup": speedup,
        "model_cost": model_costs(),
        "source": f"a probe of this machine, {time.strftime('%Y-%m-%d %H:%M')}",
    }
    print(json.dumps(costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
