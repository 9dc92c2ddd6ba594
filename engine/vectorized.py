"""K members of one architecture trained as one vectorized model (torch.func).

The members' parameters are stacked along a new leading dimension (`stack_module_state`), one
`vmap`-ed `functional_call` runs all K forwards on the shared batch (or, under a per-member data order, each
member on its own row of a stacked (K, B, ...) batch), the K per-member mean losses are
summed for one backward (each member's gradient is exactly the gradient of its own loss), and one
optimizer steps every stacked tensor. SGD and Adam are elementwise, so that one step is K independent
steps: the members come out as they would from `engine.trainer.OneByOne`, up to float noise.
Buffers are stacked too: a BatchNorm normalises each member's activations by that member's batch
statistics and updates its own slice of the stacked running statistics in place, exactly as it would
alone (vmap allows in-place updates of batched tensors). Random layers (dropout) draw independently
per member (`randomness="different"`), so such members are not reproducible across strategies.
`StackedMembers` is a stepper of the one training loop (`engine.trainer.Trainer`); at each epoch's end
the stacked weights and optimizer state are written back into each `Member`, so checkpoints, evaluation
and predictions use the ordinary per-member code.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from engine.batches import BatchSource
from engine.config import RunConfig, TrainConfig
from engine.member import Member, make_optimizer, member_layout
from engine.models import build_model
from engine.trainer import OneByOne, Stepper

# --------------------------------------------------------------------------- the stacked model


class StackedMembers:
    """Members' weights and optimizer state as stacked tensors; `step` trains all of them on one batch (a stepper)."""

    def __init__(self, members: Sequence[Member], train: TrainConfig) -> None:
        if not members:
            raise ValueError("StackedMembers needs at least one member")
        self.members = list(members)
        params, buffers = stack_module_state([m.model for m in self.members])  # type: ignore[arg-type]
        # Plain contiguous leaves: channels-last member weights stack into 5-D tensors of no special layout.
        frozen = {name for name, p in self.members[0].model.named_parameters() if not p.requires_grad}
        self.params = {name: p.detach().contiguous().requires_grad_(name not in frozen) for name, p in params.items()}
        self.buffers = {name: b.detach().contiguous() for name, b in buffers.items()}
        # A weightless copy of the architecture: functional_call only needs its forward. Train mode, whatever
        # mode evaluation left the member in: BatchNorm uses and updates batch statistics, dropout drops.
        self.base = copy.deepcopy(self.members[0].model).to("meta").train()
        self.optimizer = make_optimizer(self.params.values(), train)
        self._import_optimizer_state()

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (params, buffers), (x,))

        self._forward = vmap(one, in_dims=(0, 0, None), randomness="different")
        self._forward_each = vmap(one, in_dims=(0, 0, 0), randomness="different")

    @property
    def size(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member on the same inputs: (K, N, classes)."""
        return self._forward(self.params, self.buffers, x)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step for all K members on (x, y), or member k on (x[k], y[k]) when the batch is per
        member (labels (K, B)); returns the K per-member losses (detached)."""
        per_member = y.dim() == 2
        out = self._forward_each(self.params, self.buffers, x) if per_member else self.forward(x)
        k, n = out.shape[:2]
        labels = y.reshape(-1) if per_member else y.repeat(k)
        losses = F.cross_entropy(out.reshape(k * n, -1), labels, reduction="none").view(k, n).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    # --- moving state between the stack and the members ---------------------------------------
    def _import_optimizer_state(self) -> None:
        """Stack the members' optimizer state (a resumed run has some) into the fused optimizer."""
        for name, stacked in self.params.items():
            states = [m.optimizer.state.get(dict(m.model.named_parameters())[name], {}) for m in self.members]
            if not all(states):
                continue
            merged: dict[str, Any] = {}
            for key, first in states[0].items():
                if torch.is_tensor(first) and first.dim() > 0:
                    merged[key] = torch.stack([s[key].to(stacked.device) for s in states]).contiguous()
                else:
                    # Scalars such as Adam's step count agree: stacked members have trained the same steps.
                    merged[key] = first.clone() if torch.is_tensor(first) else first
            self.optimizer.state[stacked] = merged

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy every member's slice of the weights and optimizer state into its own model and optimizer."""
        for k, member in enumerate(self.members):
            named = dict(member.model.named_parameters())
            for name, stacked in self.params.items():
                named[name].copy_(stacked[k])
                state = self.optimizer.state.get(stacked)
                if state:
                    member.optimizer.state[named[name]] = {
                        key: (value[k].clone() if value.dim() > 0 and value.shape == stacked.shape else value.clone())
                        if torch.is_tensor(value) else value
                        for key, value in state.items()
                    }
            named_buffers = dict(member.model.named_buffers())
            for name, stacked in self.buffers.items():
                named_buffers[name].copy_(stacked[k])


def vectorized(members: Sequence[Member], train: TrainConfig) -> Stepper:
    """The fused strategy's stepper: a stack of the members, or the plain path for a lone member
    (a one-member stack would only add vmap's cost)."""
    return StackedMembers(members, train) if len(members) > 1 else OneByOne(members)


# --------------------------------------------------------------------------- how many fit


def activation_bytes_per_sample(model: nn.Module, shape: tuple[int, int, int], device: torch.device) -> int:
    """Bytes autograd keeps for backward per training sample, measured on one sample of `shape`."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    probe = copy.deepcopy(model).to(device).train()
    x = torch.zeros((2, *shape), device=device)  # two samples: a BatchNorm1d refuses to train on one
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(x).sum()
    # Parameters show up among the saved tensors too; they are counted separately.
    params = sum(p.numel() * p.element_size() for p in probe.parameters())
    return max(saved - params, 0) // 2


def member_bytes(model: nn.Module, shape: tuple[int, int, int], batch_size: int, train: TrainConfig,
                 device: torch.device) -> int:
    """Rough peak bytes one extra fused member costs: weights, gradients, optimizer state, activations."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer_copies = 2 if train.optimizer == "adam" else (1 if train.momentum > 0 else 0)
    # Activations twice: saved for backward, then their gradients while backward runs.
    return params * (2 + optimizer_copies) + 2 * batch_size * activation_bytes_per_sample(model, shape, device)


def available_bytes(device: torch.device) -> int:
    """Memory a rank may plan to fill: most of the GPU's free memory, half of the host's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    import psutil

    return int(psutil.virtual_memory().available * 0.5)


def fused_chunk(model: nn.Module, shape: tuple[int, int, int], config: RunConfig, device: torch.device,
                budget: int | None = None) -> int:
    """Members one rank vectorizes at once: what memory allows, capped by `parallel.max_fused` (0 = no cap)."""
    per_member = max(member_bytes(model, shape, config.train.batch_size, config.train, device), 1)
    fit = max(1, (available_bytes(device) if budget is None else budget) // per_member)
    cap = config.parallel.max_fused or config.train.members
    return int(max(1, min(fit, cap, config.train.members)))


def measured_chunk(config: RunConfig, shape: tuple[int, int, int], classes: int, batches: BatchSource,
                   device: torch.device, limit: int, steps: int = 4) -> tuple[int, dict[int, float]]:
    """Vectorize only as far as it pays: time a few training steps at K = 1, 2, 4… up to `limit`.

    K = 1 is the plain per-member path (channels-last where that pays), so `fused` is never slower than
    not fusing. Throwaway models on the first batch (each its own under a per-member data order, as in
    training): members' seeds and the batch order are untouched.
    Returns the best K and the model-samples/s measured for each K tried.
    """
    shared = next(iter(batches.epoch(0))) if config.train.data_order == "shared" else None
    rates: dict[int, float] = {}
    k = 1
    while k <= limit:
        x, y = shared if shared is not None else next(iter(batches.epoch(0, list(range(k)))))  # type: ignore[call-arg]
        with torch.random.fork_rng(devices=[]):
            models = [member_layout(build_model(config.model, shape, classes).to(device), config.model, shape, device)
                      for _ in range(k)]
        members = [Member(i, m, make_optimizer(m.parameters(), config.train)) for i, m in enumerate(models)]
        stepper = vectorized(members, config.train)
        for _ in range(2):  # warm-up: allocator, oneDNN primitive caches, cuDNN autotune
            stepper.step(x, y)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            stepper.step(x, y)
        _sync(device)
        rates[k] = steps * k * y.shape[-1] / max(time.perf_counter() - start, 1e-9)
        if k > 1 and rates[k] < 0.8 * max(rates.values()):
            break  # past the sweet spot: larger stacks only get slower
        k *= 2
    return max(rates, key=lambda kk: rates[kk]), rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
