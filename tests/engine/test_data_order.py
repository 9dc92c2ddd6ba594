"""`train.data_order`: one shared batch stream, or each member shuffled on its own (the deep-ensembles recipe).

The strategies run in-process on COMM_SELF on tiny synthetic data. What a member trained on is checked
exactly, as the dataset indices of every batch its stepper was handed (no float noise can enter); trained
members are compared in float64, where vectorized and one-by-one kernels agree far below the tolerance.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from mpi4py import MPI

from engine.batches import LocalBatches
from engine.config import RunConfig, parse_config
from engine.data import load_splits
from engine.member import make_member
from engine.rank import RankContext
from engine.reporter import Reporter, Sink
from engine.seeding import batch_slices, epoch_order
from engine.strategies import fused, local, sequential
from engine.trainer import OneByOne, Trainer
from engine.vectorized import StackedMembers, vectorized

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
MEMBERS, EPOCHS, BATCH = 3, 2, 16


def config(data_order: str, strategy: str = "sequential", **parallel: object) -> RunConfig:
    return parse_config(
        {
            "seed": 3,
            "data": {"dataset": "synthetic", "synthetic_size": 96, "limit": 96, "val_fraction": 0.0, "ood": []},
            "train": {"members": MEMBERS, "epochs": EPOCHS, "batch_size": BATCH, "optimizer": "sgd", "lr": 0.05,
                      "momentum": 0.9, "data_order": data_order},
            "parallel": {"strategy": strategy, "ranks": [{"count": 1, "device": "cpu"}], **parallel},
            "report": {"shift": False},
        },
        "test",
    )


def rank(cfg: RunConfig, run_dir: Path | None = None) -> RankContext:
    """A rank on COMM_SELF; with `run_dir`, one that checkpoints there (and resumes from it)."""
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    return RankContext(MPI.COMM_SELF, cfg, CPU, Reporter(Sink(stream=io.BytesIO()), 0), run_dir)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[torch.Tensor]]:
    """Member index → every input batch the loop's steppers trained that member on, in order."""
    batches: dict[int, list[torch.Tensor]] = defaultdict(list)

    def recording(step: Callable) -> Callable:
        def wrapped(self: OneByOne | StackedMembers, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            for j, member in enumerate(self.members):
                batches[member.index].append(x[j].clone() if y.dim() == 2 else x.clone())
            return step(self, x, y)

        return wrapped

    monkeypatch.setattr(OneByOne, "step", recording(OneByOne.step))
    monkeypatch.setattr(StackedMembers, "step", recording(StackedMembers.step))
    return batches


def as_indices(cfg: RunConfig, batches: dict[int, list[torch.Tensor]]) -> dict[int, list[list[int]]]:
    """The recorded batches as training-set indices, found by their exact bytes."""
    x_train = load_splits(cfg.data, cfg.seed).x_train
    where = {row.numpy().tobytes(): i for i, row in enumerate(x_train)}
    assert len(where) == len(x_train), "every training sample is distinct"
    return {m: [[where[row.numpy().tobytes()] for row in x] for x in xs] for m, xs in sorted(batches.items())}


def planned(cfg: RunConfig, member: int | None, epochs: range = range(EPOCHS)) -> list[list[int]]:
    """The batches `member` should train on: its own order under per-member, the one stream under shared."""
    n = len(load_splits(cfg.data, cfg.seed).y_train)
    return [epoch_order(cfg.seed, e, n, member)[s].tolist() for e in epochs for s in batch_slices(n, BATCH)]


def test_each_member_gets_its_own_order_and_shared_is_one_order_for_all() -> None:
    n = 40
    batches = LocalBatches(torch.arange(n).view(n, 1, 1, 1).float(), torch.arange(n), 16, seed=0, device=CPU)
    shared = torch.cat([y for _, y in batches.epoch(0)])
    per_member = torch.cat([y for _, y in batches.epoch(0, [0, 1, 2])], dim=1)
    assert per_member.shape == (3, n)
    for row in (shared, *per_member):
        assert sorted(row.tolist()) == list(range(n)), "an epoch is a permutation of the training set"
    orders = {tuple(r.tolist()) for r in (shared, *per_member)}
    assert len(orders) == 4, "members differ from each other and from the shared order"
    # A member's batches depend on (seed, member, epoch) only: not on which members it is grouped with.
    alone = torch.cat([y for _, y in batches.epoch(0, [2])], dim=1)[0]
    regrouped = torch.cat([y for _, y in batches.epoch(0, [2, 0])], dim=1)[0]
    assert torch.equal(alone, per_member[2]) and torch.equal(regrouped, per_member[2])
    again = torch.cat([y for _, y in batches.epoch(1, [2])], dim=1)[0]
    assert not torch.equal(again, alone), "a new epoch, a new order"
    for x, y in batches.epoch(1, [0, 1]):
        assert x.shape == (2, len(y[0]), 1, 1, 1) and torch.equal(x.view(y.shape).long(), y), "x rows match y rows"


def test_shared_order_is_the_one_it_always_was() -> None:
    """Runs made before per-member existed are reproduced: these orders were recorded from the old code."""
    assert epoch_order(0, 0, 12).tolist() == [6, 3, 5, 0, 2, 8, 7, 10, 4, 1, 11, 9]
    assert epoch_order(0, 1, 12).tolist() == [6, 2, 0, 9, 7, 11, 10, 8, 3, 1, 4, 5]
    assert epoch_order(7, 3, 12).tolist() == [6, 8, 5, 7, 1, 0, 11, 9, 10, 4, 3, 2]
    batches = LocalBatches(torch.zeros(12, 1, 1, 1), torch.arange(12), 5, seed=0, device=CPU)
    assert [y.tolist() for _, y in batches.epoch(0)] == [[6, 3, 5, 0, 2], [8, 7, 10, 4, 1], [11, 9]]


def trained(cfg: RunConfig, strategy: str, **parallel: object) -> tuple[RunConfig, dict[int, np.ndarray]]:
    """Train every member with `strategy` on COMM_SELF; member → its test logits. `local` runs as two ranks
    would under static placement (members 2, 0 on one, 1 on the other), each loading the data itself."""
    cfg = cfg.model_copy(deep=True)
    cfg.parallel.strategy = strategy  # type: ignore[assignment]
    for key, value in parallel.items():
        setattr(cfg.parallel, key, value)
    if strategy == "local":
        outcomes = [local.train_in_turn(rank(cfg), members) for members in ([2, 0], [1])]
    else:
        outcomes = [{"sequential": sequential, "fused": fused}[strategy].run(rank(cfg))]
    logits: dict[int, np.ndarray] = {}
    for outcome in outcomes:
        logits |= {m: sets["test"] for m, sets in outcome.predictions.items()}
    return cfg, logits


def test_a_member_trains_on_its_own_order_whatever_the_strategy_or_placement(
    seen: dict[int, list[torch.Tensor]], float64: object
) -> None:
    """Story: I switch to per-member; member i is then the same model on one process, on ranks, or fused K at
    a time — it saw exactly the batches of (seed, i, epoch) — and no longer the model shared order gave."""
    runs = {"sequential": {}, "local": {}, "fused by 3": {"max_fused": 3}, "fused by 2": {"max_fused": 2}}
    cfg = config("per-member")
    logits = {}
    for name, parallel in runs.items():
        seen.clear()
        _, logits[name] = trained(cfg, name.split()[0], **parallel)
        indices = as_indices(cfg, seen)
        assert sorted(indices) == list(range(MEMBERS)), name
        for member in range(MEMBERS):
            assert indices[member] == planned(cfg, member), f"{name}: member {member} left its own order"
    for name in runs:
        for member in range(MEMBERS):
            np.testing.assert_allclose(logits[name][member], logits["sequential"][member], rtol=1e-6, atol=1e-6)
    assert np.abs(logits["sequential"][0] - logits["sequential"][1]).max() > 1e-3

    seen.clear()
    shared_cfg, shared = trained(config("shared"), "fused", max_fused=3)
    indices = as_indices(shared_cfg, seen)
    assert all(indices[m] == planned(shared_cfg, None) for m in range(MEMBERS)), "shared: one stream for all"
    assert planned(cfg, 0) != planned(shared_cfg, None)
    for member in range(MEMBERS):
        assert np.abs(shared[member] - logits["sequential"][member]).max() > 1e-3, "the order changes the model"


def test_resume_continues_each_members_own_order(
    tmp_path: Path, seen: dict[int, list[torch.Tensor]], float64: object
) -> None:
    """Story: a per-member run is interrupted after epoch 1 and resumed; it ends with the members of a run that
    never stopped, because epoch 2's order is a function of (seed, member, epoch), not of the process."""
    cfg = config("per-member")
    straight = sequential.run(rank(cfg, tmp_path / "straight"))
    first = cfg.model_copy(deep=True)
    first.train.epochs = 1
    sequential.run(rank(first, tmp_path / "resumed"))
    seen.clear()
    resumed = sequential.run(rank(cfg, tmp_path / "resumed"))
    indices = as_indices(cfg, seen)
    for member in range(MEMBERS):
        assert indices[member] == planned(cfg, member, range(1, EPOCHS)), "only epoch 2, in the member's order"
        for name, logits in straight.predictions[member].items():
            np.testing.assert_allclose(resumed.predictions[member][name], logits, rtol=1e-6, atol=1e-6)


class Quiet:
    """Hooks that ask for every step (so a NaN loss is caught at once) and report nowhere."""

    def wants_step(self, member: int) -> bool:
        return True

    def on_member_start(self, member: int) -> None: ...

    def on_step(self, *args: object) -> None: ...

    def on_epoch_end(self, *args: object) -> None: ...

    def on_member_done(self, *args: object) -> None: ...


def test_a_member_that_diverges_leaves_the_others_their_own_batches(float64: object) -> None:
    """Fused members 0, 1, 2 where 1 diverges at the first step: 0 and 2 go on stacked, each still on its own
    batches, and end as they would trained alone."""
    cfg = config("per-member", "fused")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    batches = LocalBatches(x, y, BATCH, cfg.seed, CPU)
    together = [make_member(cfg, (1, 28, 28), 10, i, CPU) for i in range(MEMBERS)]
    with torch.no_grad():
        next(together[1].model.parameters()).fill_(float("nan"))
    Trainer(cfg, batches, Quiet(), stepper=vectorized).train(together)
    assert [m.diverged for m in together] == [False, True, False]
    for i in (0, 2):
        alone = make_member(cfg, (1, 28, 28), 10, i, CPU)
        Trainer(cfg, batches, Quiet()).train([alone])
        for a, b in zip(alone.model.parameters(), together[i].model.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


def test_broadcast_refuses_per_member_before_any_rank_starts(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """Story: broadcast serves every rank one stream, so asking it for per-member orders is a usage error."""
    setup = tmp_path / "broadcast.toml"
    setup.write_text('[train]\ndata_order = "per-member"\n\n[parallel]\nstrategy = "broadcast"\n')
    done = subprocess.run([sys.executable, "-m", "ens_tui", "--run-config", str(setup), "--dry-run"], cwd=REPO,
                          env=cli_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and not done.stdout, done.stdout + done.stderr
    assert "per-member" in lines[0] and "broadcast" in lines[0] and lines[0].startswith("ens-tui: ")
