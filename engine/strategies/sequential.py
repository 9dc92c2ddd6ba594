"""`sequential` — the seed's "no parallelism": one process trains every member, one after another."""

from __future__ import annotations

from engine.placement import Placement
from engine.rank import Outcome, RankContext
from engine.strategies.local import train_in_turn


def run(ctx: RankContext) -> Outcome:
    if ctx.size != 1:
        raise RuntimeError(f"sequential runs as one process, but was started on {ctx.size} ranks")
    with Placement(ctx) as placement:  # one rank: every member in order, until `stop_when_nll_gain_below` says enough
        return train_in_turn(ctx, (index for chunk in placement.chunks() for index in chunk))
