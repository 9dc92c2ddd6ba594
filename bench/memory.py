"""What one more fused member costs in memory: peak RSS of a fused rank against its member count.

Each count is measured in a fresh process (`python -m bench.memory K` prints its peak RSS in bytes),
since peak RSS only ever grows within a process. Compared with the estimate the memory guard uses.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import torch

from engine.config import RunConfig


def memory_probe(members: int, steps: int) -> None:
    """Child process: train `members` fused seed-cnns for a few steps, print peak RSS in bytes."""
    import resource

    from engine.member import make_member
    from engine.vectorized import StackedMembers

    torch.set_num_threads(1)
    config = RunConfig()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    stack = StackedMembers([make_member(config, (1, 28, 28), 10, i, torch.device("cpu")) for i in range(members)],
                           config.train)
    for _ in range(steps):
        stack.step(x, y)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def memory_per_member(counts: list[int]) -> dict[str, Any]:
    """Peak RSS at each member count, bytes per extra member, and the guard's estimate beside it."""
    from engine.models import build_model
    from engine.vectorized import activation_bytes_per_sample, member_bytes

    peaks = {}
    for k in counts:
        done = subprocess.run([sys.executable, "-m", "bench.memory", str(k)], capture_output=True, text=True,
                              check=True)
        peaks[k] = int(done.stdout.split()[-1])
    slope = (peaks[counts[-1]] - peaks[counts[0]]) / (counts[-1] - counts[0])
    model = build_model("seed-cnn", (1, 28, 28), 10)
    params = sum(p.numel() * 4 for p in model.parameters())
    config = RunConfig()
    estimate = member_bytes(model, (1, 28, 28), 64, config.train, torch.device("cpu"))
    return {
        "peak_rss_bytes": peaks, "bytes_per_extra_member": slope, "params_bytes": params,
        "activation_bytes_per_sample": activation_bytes_per_sample(model, (1, 28, 28), torch.device("cpu")),
        "estimate_bytes": estimate, "ratio_to_estimate": slope / estimate,
    }


if __name__ == "__main__":
    memory_probe(int(sys.argv[1]), steps=3)
