"""Per-step time of one seed-cnn member under each kernel variant: what memory layout and torch.compile buy."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F


def kernel_timings(steps: int, compile_too: bool) -> dict[str, Any]:
    """ms per training step of one seed-cnn member at batch 64, one thread (median of 5 × `steps`)."""
    from engine.models import SeedCNN

    torch.set_num_threads(1)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    results: dict[str, Any] = {}
    variants = ["eager NCHW", "eager channels-last"] + (["compiled NCHW", "compiled channels-last"] if compile_too else [])
    for name in variants:
        model = SeedCNN()
        if "channels-last" in name:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        forward = torch.compile(model) if name.startswith("compiled") else model

        def step(optimizer: torch.optim.Optimizer = optimizer, forward: Any = forward) -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(forward(x), y).backward()
            optimizer.step()

        t0 = time.perf_counter()
        for _ in range(3):
            step()
        warmup = time.perf_counter() - t0
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - t) / steps * 1e3)
        results[name] = {"ms_per_step": statistics.median(times), "warmup_s": warmup}
    return results
