"""`broadcast` — the seed's "batch broadcasting": rank 0 alone reads the data and `Bcast`s every batch.

The other ranks never open a data file: they receive the evaluation tensors once and each training
batch as a contiguous buffer (capitalised `Bcast`, no pickling), then step all their members on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from mpi4py import MPI

from engine.data import Splits
from engine.evaluation import EvalSets
from engine.rank import Outcome, RankContext, load_local
from engine.seeding import batch_slices, epoch_order
from engine.shift import ShiftSets


def share_tensor(comm: MPI.Comm, tensor: torch.Tensor | None) -> torch.Tensor:
    """Bcast one tensor from rank 0 (shape and dtype first, as a small pickled object)."""
    meta = comm.bcast((tuple(tensor.shape), str(tensor.dtype).removeprefix("torch.")) if tensor is not None else None)
    shape, dtype = meta
    out = tensor.contiguous() if tensor is not None else torch.empty(shape, dtype=getattr(torch, dtype))
    comm.Bcast(out.numpy(), root=0)
    return out


def share_splits(
    comm: MPI.Comm, splits: Splits | None, eval_sets: EvalSets | None
) -> tuple[Splits, EvalSets, int]:
    """Give every rank the validation and evaluation tensors that rank 0 loaded.

    The training split stays on rank 0: the others only ever see it one batch at a time, so they get
    its length alone. The shift sets travel as their recipe (which test images, which corruptions): every
    rank builds the same ones from the test split when it scores.
    """
    shift = eval_sets.shift if eval_sets is not None else None
    info = comm.bcast(
        (splits.name, splits.mean, splits.std, splits.classes, tuple(splits.x_train.shape), list(eval_sets.fixed),
         (shift.index.tolist(), shift.corruptions, shift.severities, shift.seed) if shift is not None else None)
        if splits is not None and eval_sets is not None
        else None
    )
    name, mean, std, classes, train_shape, set_names, recipe = info
    root = splits is not None
    x_val = share_tensor(comm, splits.x_val if root else None)
    y_val = share_tensor(comm, splits.y_val if root else None)
    x_test = share_tensor(comm, splits.x_test if root else None)
    y_test = share_tensor(comm, splits.y_test if root else None)
    own = {"test": x_test, "val": x_val}
    fixed = {n: own[n] if n in own else share_tensor(comm, eval_sets[n] if root else None) for n in set_names}
    if root:
        return splits, eval_sets, train_shape[0]
    empty_train = torch.empty((0, *train_shape[1:]))
    received = Splits(name, empty_train, torch.empty(0, dtype=torch.int64), x_val, y_val, x_test, y_test, mean, std,
                      classes)
    shift_sets = None
    if recipe is not None:
        index, corruptions, severities, seed = recipe
        shift_sets = ShiftSets(x_test, mean, std, torch.tensor(index, dtype=torch.int64), corruptions, severities, seed)
    return received, EvalSets(fixed, shift_sets), train_shape[0]


class BroadcastBatches:
    """Rank 0 slices each batch from its data and broadcasts it; every rank yields it on its device.

    One host buffer receives every batch. On CUDA it is pinned and copied to the device without
    blocking, so the next batch may only overwrite it once that copy has finished: an event recorded
    after the copy is waited on before the buffer is written again (training on the device goes on).
    """

    collective = True

    def __init__(self, comm: MPI.Comm, splits: Splits, n_train: int, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.comm, self.splits, self.seed, self.device = comm, splits, seed, device
        self.n_train = n_train
        self.slices = batch_slices(n_train, batch_size)
        self.steps = len(self.slices)
        shape = (batch_size, *splits.x_val.shape[1:])
        self.x_buf = torch.empty(shape, dtype=splits.x_val.dtype)
        self.y_buf = torch.empty(batch_size, dtype=torch.int64)
        self.copied: torch.cuda.Event | None = None
        if device.type == "cuda":
            self.x_buf, self.y_buf = self.x_buf.pin_memory(), self.y_buf.pin_memory()

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        root = self.comm.Get_rank() == 0
        order = epoch_order(self.seed, epoch, self.n_train) if root else None
        for s in self.slices:
            n = s.stop - s.start
            x, y = self.x_buf[:n], self.y_buf[:n]
            if self.copied is not None:
                self.copied.synchronize()  # the previous batch's copy still reads the buffer
            if root:
                idx = order[s]
                torch.index_select(self.splits.x_train, 0, idx, out=x)
                torch.index_select(self.splits.y_train, 0, idx, out=y)
            self.comm.Bcast(x.numpy(), root=0)
            self.comm.Bcast(y.numpy(), root=0)
            if self.device.type != "cuda":
                yield x, y
                continue
            on_device = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            self.copied = torch.cuda.Event()
            self.copied.record()
            yield on_device


def run(ctx: RankContext) -> Outcome:
    comm, config = ctx.comm, ctx.config
    loaded = load_local(config) if ctx.rank == 0 else (None, None)
    splits, eval_sets, n_train = share_splits(comm, *loaded)
    batches = BroadcastBatches(comm, splits, n_train, config.train.batch_size, config.seed, ctx.device)
    members = [ctx.make_member(i, splits) for i in ctx.static_members()]
    # Ranks share one batch stream, so they must start at the same epoch (after a resume, the earliest).
    first = comm.allreduce(min((m.epochs_done for m in members), default=config.train.epochs), op=MPI.MIN)
    ctx.trainer(batches, splits).train(members, first_epoch=first)
    outcome = Outcome(splits=splits if ctx.rank == 0 else None, eval_sets=eval_sets if ctx.rank == 0 else None)
    for m in members:
        outcome.add(m, eval_sets)
    return outcome
