"""`local` — the seed's "parallel, no communication": each rank loads the data and trains its members.

Which members: round-robin up front (`placement = "static"`), or one at a time from rank 0's queue as
the rank frees up (`"dynamic"`, the default), so a fast device takes more members than a slow one.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.batches import LocalBatches
from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local


def train_in_turn(ctx: RankContext, members: Iterable[int]) -> Outcome:
    """Load the data here, then train `members` one after another, each to its last epoch.

    `members` may be a lazy queue: the next index is only asked for once the previous member is done.
    """
    config = ctx.config
    splits, eval_sets = load_local(config)
    trainer = ctx.trainer(LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed,
                                       ctx.device), splits)
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    for index in members:
        member = ctx.make_member(index, splits)
        trainer.train([member])
        outcome.add(member, eval_sets)
    return outcome


def run(ctx: RankContext) -> Outcome:
    with Placement(ctx) as placement:
        return train_in_turn(ctx, (index for chunk in placement.chunks() for index in chunk))
