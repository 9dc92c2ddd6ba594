"""`local` — the seed's "parallel, no communication": each rank loads the data and trains its members.

Which members: round-robin up front (`placement = "static"`), or one at a time from rank 0's queue as
the rank frees up (`"dynamic"`, the default), so a fast device takes more members than a slow one.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local, member_args
from engine.trainer import LocalBatches, make_member, member_predictions, place, train_members


def train_in_turn(ctx: RankContext, members: Iterable[int]) -> Outcome:
    """Load the data here, then train `members` one after another, each to its last epoch.

    `members` may be a lazy queue: the next index is only asked for once the previous member is done.
    """
    config = ctx.config
    splits, eval_sets = load_local(config)
    batches = LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed, ctx.device)
    val = (place(splits.x_val, ctx.device), place(splits.y_val, ctx.device))
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    for index in members:
        member = make_member(index=index, **member_args(ctx, splits))
        train_members([member], batches, val, config.train.epochs, ctx.reporter, ctx.checkpoint_dir, config)
        outcome.predictions[index] = member_predictions(member.model, eval_sets)
        outcome.diverged[index] = member.diverged
    return outcome


def run(ctx: RankContext) -> Outcome:
    with Placement(ctx) as placement:
        return train_in_turn(ctx, (index for chunk in placement.chunks() for index in chunk))
