"""`fused` — a rank trains its members K at a time as one vectorized model (see engine.vectorized).

Members reach the rank in chunks from the placement (static round-robin, or the dynamic queue when
there are several ranks), each chunk at most what memory allows and `parallel.max_fused`. Combined with
MPI this is ranks × fused members; results match every other strategy up to float noise.
"""

from __future__ import annotations

from engine.models import build_model
from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local, member_args
from engine.trainer import LocalBatches, make_member, member_predictions, place
from engine.vectorized import fused_chunk, train_fused


def run(ctx: RankContext) -> Outcome:
    config = ctx.config
    splits, eval_sets = load_local(config)
    batches = LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed, ctx.device)
    val = (place(splits.x_val, ctx.device), place(splits.y_val, ctx.device))
    chunk = fused_chunk(build_model(config.model.name, splits.shape, splits.num_classes), splits.shape, config,
                        ctx.device)
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    with Placement(ctx, chunk) as placement:
        for indices in placement.chunks():
            members = [make_member(index=i, **member_args(ctx, splits)) for i in indices]
            ctx.reporter.log(f"fused: members {indices} as one model on {ctx.device}", "debug")
            train_fused(members, batches, val, config.train.epochs, ctx.reporter, ctx.checkpoint_dir, config)
            for m in members:
                outcome.predictions[m.index] = member_predictions(m.model, eval_sets)
                outcome.diverged[m.index] = m.diverged
    return outcome
