"""The fused strategy: K members as one vectorized model give the members the other strategies give.

Most checks run in-process on COMM_SELF (seconds); one runs the real strategy on two mpiexec ranks.
Comparisons of trained weights run in float64, where the different summation order of vectorized and
one-by-one kernels stays far below the tolerance on any CPU (float32 noise grows over epochs).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mpi4py import MPI

from engine import events as ev
from engine.batches import LocalBatches
from engine.checkpoint import load_checkpoint
from engine.config import RunConfig, parse_config
from engine.member import make_member
from engine.models import MODELS, build_model
from engine.rank import RankContext
from engine.reporter import Reporter, Sink
from engine.run_folder import RunFolder
from engine.strategies import fused, sequential
from engine.trainer import OneByOne, Trainer, learning_rate
from engine.vectorized import StackedMembers, fused_chunk, measured_chunk, member_bytes, vectorized

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def config(**train: object) -> RunConfig:
    return parse_config(
        {
            "data": {"dataset": "synthetic", "synthetic_size": 96, "limit": 96, "ood": ["noise"]},
            "train": {"members": 3, "epochs": 2, "batch_size": 16, "optimizer": "sgd", "lr": 0.05, **train},
            "parallel": {"strategy": "fused", "ranks": [{"count": 1, "device": "cpu"}]},
        },
        "test",
    )


class Recorder:
    """Hooks that keep every call, for comparing what two loops reported."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def wants_step(self, member: int) -> bool:
        return True

    def on_member_start(self, member: int) -> None:
        self.calls.append(("start", member))

    def on_step(self, member, epoch, step, steps, loss, samples_per_s, fused) -> None:  # noqa: ANN001
        self.calls.append(("step", member, epoch, step, round(loss, 4), fused))

    def on_epoch_end(self, member, epoch, train_loss, val, seconds) -> None:  # noqa: ANN001
        self.calls.append(("epoch", member, epoch, train_loss))

    def on_member_done(self, member, seconds, checkpoint) -> None:  # noqa: ANN001
        self.calls.append(("done", member.index))


def relative_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    va = torch.cat([p.detach().flatten() for p in a.parameters()])
    vb = torch.cat([p.detach().flatten() for p in b.parameters()])
    return float((va - vb).norm() / va.norm())


def train(cfg: RunConfig, members: list, batches: LocalBatches, hooks: object, stepper=OneByOne) -> None:  # noqa: ANN001
    Trainer(cfg, batches, hooks, stepper=stepper).train(members)


def tensors(shape: tuple[int, int, int], n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn((n, *shape), generator=gen), torch.randint(0, 10, (n,), generator=gen)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "constant"), ("adam", "constant"), ("sgd", "cosine")])
def test_fused_members_equal_one_by_one_members(model: str, optimizer: str, schedule: str, float64: object) -> None:
    """Every zoo model, both optimizers and schedules: same weights and per-member losses as one by one."""
    cfg = config(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.05, weight_decay=1e-3, schedule=schedule)
    cfg.model.name = model  # type: ignore[assignment]
    shape = (3, 16, 16) if model == "resnet8" else (1, 28, 28)
    x, y = tensors(shape)
    batches = LocalBatches(x, y, 16, cfg.seed, CPU)
    one = [make_member(cfg, shape, 10, i, CPU) for i in range(3)]
    many = [make_member(cfg, shape, 10, i, CPU) for i in range(3)]
    by_one, by_many = Recorder(), Recorder()
    train(cfg, one, batches, by_one)
    train(cfg, many, batches, by_many, stepper=vectorized)
    for a, b in zip(one, many, strict=True):
        assert next(b.model.parameters()).dtype == torch.float64
        # Summation order only (one-by-one members may run channels-last kernels, stacked ones never do).
        assert relative_gap(a.model, b.model) < 1e-9, model
        assert a.epochs_done == b.epochs_done == 2
    losses = lambda calls: {c[1:3]: c[3] for c in calls if c[0] == "epoch"}  # noqa: E731
    assert losses(by_one.calls) == pytest.approx(losses(by_many.calls), abs=1e-9)
    steps = [c for c in by_many.calls if c[0] == "step"]
    assert steps and all(c[-1] == 3 for c in steps), "step events say how many members trained at once"


def test_cosine_schedule_decays_from_lr_to_zero_and_depends_on_position_only() -> None:
    train = config(schedule="cosine", lr=0.1, epochs=4).train
    steps = 10
    rates = [learning_rate(train, e, s, steps) for e in range(4) for s in range(steps)]
    assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.1 * 0.01
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)), "never rises"
    assert learning_rate(train, 2, 0, steps) == pytest.approx(0.05), "half way through, half the rate"
    assert learning_rate(config(lr=0.1).train, 3, 9, steps) == 0.1, "constant by default"


def test_write_back_gives_checkpointable_optimizer_state() -> None:
    """After fused training each member's optimizer resumes exactly as the per-member optimizer would."""
    cfg = config(optimizer="adam", lr=0.01)
    x, y = tensors((1, 28, 28), 32)
    members = [make_member(cfg, (1, 28, 28), 10, i, CPU) for i in range(2)]
    stack = StackedMembers(members, cfg.train)
    stack.step(x[:16], y[:16])
    stack.write_back()
    restacked = StackedMembers(members, cfg.train)  # imports what write_back exported
    for name, p in stack.params.items():
        a, b = stack.optimizer.state[p], restacked.optimizer.state[restacked.params[name]]
        assert set(a) == set(b) == {"step", "exp_avg", "exp_avg_sq"}
        assert all(torch.equal(a[k], b[k]) for k in a)
    state = members[1].optimizer.state_dict()
    assert state["state"][0]["exp_avg"].shape == members[1].model.conv1.weight.shape


def test_memory_guard_splits_members_into_chunks() -> None:
    cfg = config()
    cfg.train.members = 8
    model = build_model("seed-cnn", (1, 28, 28), 10)
    per = member_bytes(model, (1, 28, 28), 16, cfg.train, CPU)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert per > 3 * params, "weights, gradients, momentum and activations are all counted"
    assert fused_chunk(model, (1, 28, 28), cfg, CPU, budget=3 * per) == 3
    assert fused_chunk(model, (1, 28, 28), cfg, CPU, budget=1) == 1
    assert fused_chunk(model, (1, 28, 28), cfg, CPU, budget=100 * per) == 8
    cfg.parallel.max_fused = 5
    assert fused_chunk(model, (1, 28, 28), cfg, CPU, budget=100 * per) == 5


def rank_context(cfg: RunConfig, run_dir: Path) -> tuple[RankContext, io.BytesIO]:
    """A rank on COMM_SELF with a run folder as the launcher leaves it (ranks never create one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stream = io.BytesIO()
    return RankContext(MPI.COMM_SELF, cfg, CPU, Reporter(Sink(stream=stream), 0), run_dir), stream


def test_fused_strategy_matches_sequential_strategy_in_chunks(tmp_path: Path, float64: object) -> None:
    """The strategy end to end on COMM_SELF: chunks of 2 (max_fused), checkpoints, predictions, events."""
    cfg = config()
    cfg.parallel.max_fused = 2
    ctx, stream = rank_context(cfg, tmp_path / "fused")
    got = fused.run(ctx)
    seq_cfg = cfg.model_copy(deep=True)
    seq_cfg.parallel.strategy = "sequential"
    ref = sequential.run(rank_context(seq_cfg, tmp_path / "sequential")[0])
    assert sorted(got.predictions) == [0, 1, 2]
    for member, sets in ref.predictions.items():
        assert got.predictions[member].keys() == sets.keys()
        for name, probs in sets.items():
            assert abs(got.predictions[member][name] - probs).max() < 1e-6
    for member in range(3):
        a = load_checkpoint(RunFolder(tmp_path / "fused").checkpoint(member))
        b = load_checkpoint(RunFolder(tmp_path / "sequential").checkpoint(member))
        assert a.keys() == b.keys() and a["epoch"] == b["epoch"] == 2
        assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
        for key in a["model"]:
            torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-9, atol=1e-12)
    events = [ev.decode(line) for line in stream.getvalue().splitlines()]
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert {s.fused for s in steps} <= {1, 2} and max(s.fused for s in steps) == 2
    assert [e.member for e in events if isinstance(e, ev.MemberStart)] == [0, 1, 2]


def test_fused_resumes_from_checkpoints(tmp_path: Path) -> None:
    """A member already trained for its epochs is loaded, not retrained; the rest continue."""
    cfg = config()
    cfg.train.epochs = 1
    ctx, _ = rank_context(cfg, tmp_path)
    first = fused.run(ctx)
    cfg.train.epochs = 2
    ctx, stream = rank_context(cfg, tmp_path)
    second = fused.run(ctx)
    epochs = [e for e in map(ev.decode, stream.getvalue().splitlines()) if isinstance(e, ev.Epoch)]
    assert {e.epoch for e in epochs} == {1}, "only the missing epoch is trained"
    assert load_checkpoint(RunFolder(tmp_path).checkpoint(0))["epoch"] == 2
    assert not all((first.predictions[0][k] == second.predictions[0][k]).all() for k in first.predictions[0])


def test_without_max_fused_the_rank_measures_how_far_vectorizing_pays(tmp_path: Path, float64: object) -> None:
    """max_fused = 0: a few timed steps at K = 1, 2, 4… pick the chunk; results stay those of sequential."""
    cfg = config()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    batches = LocalBatches(x, y, 16, cfg.seed, CPU)
    best, rates = measured_chunk(cfg, (1, 28, 28), 10, batches, CPU, limit=4)
    assert 1 in rates and set(rates) <= {1, 2, 4}
    assert best == max(rates, key=rates.get) and all(r > 0 for r in rates.values())

    ctx, stream = rank_context(cfg, tmp_path / "fused")
    got = fused.run(ctx)
    events = [ev.decode(line) for line in stream.getvalue().splitlines()]
    chosen = [e.message for e in events if isinstance(e, ev.Log) and "model-samples/s by members per step" in e.message]
    assert len(chosen) == 1 and "at a time" in chosen[0]
    seq_cfg = cfg.model_copy(deep=True)
    seq_cfg.parallel.strategy = "sequential"
    ref = sequential.run(rank_context(seq_cfg, tmp_path / "sequential")[0])
    for member, sets in ref.predictions.items():
        assert abs(got.predictions[member]["test"] - sets["test"]).max() < 1e-6


@pytest.mark.mpi
def test_fused_on_two_real_ranks(tmp_path: Path) -> None:
    """ranks × fused members: the real worker on two mpiexec ranks, dynamic chunks, every member trained once."""
    cfg = config()
    cfg.train.members, cfg.train.epochs = 5, 1
    cfg.parallel.ranks[0].count = 2
    cfg.parallel.max_fused = 2
    cfg.parallel.threads_per_rank = 64  # more than two ranks may use on this host: clamped, with a warning
    cfg.output_dir = str(tmp_path)
    (tmp_path / "config.toml").write_text(cfg.to_toml())
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mpiexec"), "-n", "2", sys.executable, "-m", "mpi4py", "-m",
         "engine.worker", "--run-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = [ev.decode(line) for line in done.stdout.splitlines() if line.startswith("{")]
    hellos = [e for e in events if isinstance(e, ev.Hello)]
    assert [h.members for h in hellos] == [[], []], "under dynamic placement the queue decides"
    starts = [e for e in events if isinstance(e, ev.MemberStart)]
    assert sorted(e.member for e in starts) == [0, 1, 2, 3, 4], "MemberStart shows where each member went"
    assert {e.rank for e in starts} == {0, 1}
    warnings = [e.message for e in events if isinstance(e, ev.Log) and e.level == "warning"]
    if (os.cpu_count() or 1) < 128:
        assert any("threads_per_rank = 64" in w for w in warnings)
        assert all(h.threads < 64 for h in hellos), "hello reports the threads really used"
    saved = next(e for e in events if isinstance(e, ev.PredictionsSaved))
    assert saved.members == [0, 1, 2, 3, 4]
    assert json.loads((tmp_path / "report.json").read_text())["ensemble"]["accuracy"] >= 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", MODELS)
def test_fused_on_cuda_matches_cpu(model: str) -> None:
    cfg = config(epochs=1)
    cfg.model.name = model  # type: ignore[assignment]
    shape = (3, 16, 16) if model == "resnet8" else (1, 28, 28)
    x, y = tensors(shape, 32)
    cuda = torch.device("cuda")
    results = []
    for device in (CPU, cuda):
        members = [make_member(cfg, shape, 10, i, device) for i in range(3)]
        train(cfg, members, LocalBatches(x, y, 16, cfg.seed, device), Recorder(), stepper=vectorized)
        results.append([torch.cat([p.detach().cpu().flatten() for p in m.model.parameters()]) for m in members])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
