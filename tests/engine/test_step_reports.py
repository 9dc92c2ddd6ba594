"""Step reports of a rank that trains several members at once (broadcast, fused): one window, one rate, together.

Per-member report clocks drift apart (each is set when its own report goes out), so a loop that asked each
member separately sent their reports on different steps, each measuring whatever was left of the rank's
window: a one-step sliver, or nothing at all (0 samples/s on the dashboard).
"""

from __future__ import annotations

from collections import Counter

import torch

from engine.batches import LocalBatches
from engine.config import parse_config
from engine.member import make_member
from engine.trainer import Trainer

CPU = torch.device("cpu")
EVERY = 3


class OutOfPhase:
    """Hooks whose per-member report clocks are out of phase: member i is due every EVERY asks, i asks late."""

    def __init__(self) -> None:
        self.asked: Counter[int] = Counter()
        self.steps: list[tuple[int, int, int, float]] = []

    def wants_step(self, member: int) -> bool:
        self.asked[member] += 1
        return (self.asked[member] - 1 - member) % EVERY == 0

    def on_member_start(self, member: int) -> None:
        pass

    def on_step(self, member, epoch, step, steps, loss, samples_per_s, fused) -> None:  # noqa: ANN001
        self.steps.append((epoch, step, member, samples_per_s))

    def on_epoch_end(self, member, epoch, train_loss, val, seconds) -> None:  # noqa: ANN001
        pass

    def on_member_done(self, member, seconds, checkpoint) -> None:  # noqa: ANN001
        pass


def test_members_trained_together_report_together_with_the_ranks_rate() -> None:
    config = parse_config({
        "data": {"dataset": "synthetic", "synthetic_size": 160, "ood": []},
        "train": {"members": 2, "epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.05},
        "parallel": {"strategy": "broadcast", "ranks": [{"count": 1, "device": "cpu"}]},
    }, "test")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(160, 1, 28, 28, generator=gen), torch.randint(0, 10, (160,), generator=gen)
    batches = LocalBatches(x, y, 16, config.seed, CPU)
    members = [make_member(config, (1, 28, 28), 10, i, CPU) for i in range(2)]
    hooks = OutOfPhase()
    Trainer(config, batches, hooks).train(members)

    by_step: dict[tuple[int, int], dict[int, float]] = {}
    for epoch, step, member, rate in hooks.steps:
        by_step.setdefault((epoch, step), {})[member] = rate
    assert len(by_step) >= 2 * (batches.steps // EVERY)
    for where, rates in by_step.items():
        assert set(rates) == {0, 1}, f"step {where}: only {sorted(rates)} reported"
        assert rates[0] == rates[1] > 0, where
