"""`sequential` — the seed's "no parallelism": one process trains every member, one after another."""

from __future__ import annotations

from engine.rank import Outcome, RankContext
from engine.strategies.local import train_in_turn


def run(ctx: RankContext) -> Outcome:
    if ctx.size != 1:
        raise RuntimeError(f"sequential runs as one process, but was started on {ctx.size} ranks")
    return train_in_turn(ctx, list(range(ctx.config.train.members)))
