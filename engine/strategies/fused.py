"""`fused` — a rank trains its members K at a time as one vectorized model (see engine.vectorized).

Members reach the rank in chunks from the placement (static round-robin, or the dynamic queue when
there are several ranks), each chunk at most what memory allows. `parallel.max_fused` sets the size;
left at 0, the rank times a few steps at 1, 2, 4… members and takes the fastest, so on a device where
vectorizing does not pay (a compute-bound CNN on a small CPU) fused trains members one at a time. Combined with
MPI this is ranks × fused members; results match every other strategy up to float noise.
"""

from __future__ import annotations

import math

from engine.models import build_model
from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local, member_args
from engine.trainer import LocalBatches, make_member, member_predictions, place, train_members
from engine.vectorized import fused_chunk, measured_chunk, train_fused


def run(ctx: RankContext) -> Outcome:
    config = ctx.config
    splits, eval_sets = load_local(config)
    batches = LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed, ctx.device)
    val = (place(splits.x_val, ctx.device), place(splits.y_val, ctx.device))
    chunk = fused_chunk(build_model(config.model.name, splits.shape, splits.num_classes), splits.shape, config,
                        ctx.device)
    if not config.parallel.max_fused:
        # No size asked for: vectorize only as far as it measurably pays on this device.
        share = math.ceil(config.train.members / ctx.size)
        chunk, rates = measured_chunk(config, splits.shape, splits.num_classes, batches, ctx.device,
                                      min(chunk, share))
        measured = ", ".join(f"{k}: {r:,.0f}" for k, r in rates.items())
        ctx.reporter.log(f"fused: model-samples/s by members per step on {ctx.device} ({measured}); "
                         f"training {chunk} at a time", "info")
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    with Placement(ctx, chunk) as placement:
        for indices in placement.chunks():
            members = [make_member(index=i, **member_args(ctx, splits)) for i in indices]
            if len(members) == 1:
                # A lone member trains on the plain path: a one-member stack would only add vmap's cost.
                train_members(members, batches, val, config.train.epochs, ctx.reporter, ctx.checkpoint_dir, config)
            else:
                ctx.reporter.log(f"fused: members {indices} as one model on {ctx.device}", "debug")
                train_fused(members, batches, val, config.train.epochs, ctx.reporter, ctx.checkpoint_dir, config)
            for m in members:
                outcome.predictions[m.index] = member_predictions(m.model, eval_sets)
                outcome.diverged[m.index] = m.diverged
    return outcome
