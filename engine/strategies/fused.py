"""`fused` — a rank trains its members K at a time as one vectorized model (see engine.vectorized).

Members reach the rank in chunks from the placement (static round-robin, or the dynamic queue when
there are several ranks), each chunk at most what memory allows. `parallel.max_fused` sets the size;
left at 0, the rank times a few steps at 1, 2, 4… members and takes the fastest, so on a device where
vectorizing does not pay (a compute-bound CNN on a small CPU) fused trains members one at a time. Combined with
MPI this is ranks × fused members; results match every other strategy up to float noise — exactly, under
`parallel.deterministic`, which trains one member at a time (vectorized kernels add up in another order).
"""

from __future__ import annotations

import math

from engine.batches import LocalBatches
from engine.data import Splits
from engine.models import build_model
from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local
from engine.vectorized import fused_chunk, measured_chunk, vectorized


def chunk_size(ctx: RankContext, splits: Splits, batches: LocalBatches) -> int:
    """Members this rank vectorizes at once: what memory allows, what was asked, and what measurably pays."""
    config = ctx.config
    if config.parallel.deterministic:
        ctx.reporter.log("fused: deterministic run, so members train one at a time (bit-identical to the "
                         "other strategies)", "info")
        return 1
    chunk = fused_chunk(build_model(config.model, splits.shape, splits.num_classes), splits.shape, config,
                        ctx.device)
    if config.parallel.max_fused:
        return chunk
    limit = min(chunk, math.ceil(config.train.members / ctx.size))
    if limit == 1:
        return 1  # one member per rank: nothing to vectorize, so nothing to measure
    # No size asked for: vectorize only as far as it measurably pays on this device.
    chunk, rates = measured_chunk(config, splits.shape, splits.num_classes, batches, ctx.device, limit)
    measured = ", ".join(f"{k}: {r:,.0f}" for k, r in rates.items())
    ctx.reporter.log(f"fused: model-samples/s by members per step on {ctx.device} ({measured}); "
                     f"training {chunk} at a time", "info")
    return chunk


def run(ctx: RankContext) -> Outcome:
    config = ctx.config
    splits, eval_sets = load_local(config)
    batches = LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed, ctx.device)
    trainer = ctx.trainer(batches, splits, stepper=vectorized)
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    with Placement(ctx, chunk_size(ctx, splits, batches)) as placement:
        for indices in placement.chunks():
            members = [ctx.make_member(i, splits) for i in indices]
            if len(members) > 1:
                ctx.reporter.log(f"fused: members {indices} as one model on {ctx.device}", "debug")
            trainer.train(members)
            for m in members:
                outcome.add(m, eval_sets)
    return outcome
