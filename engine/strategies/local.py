"""`local` — the seed's "parallel, no communication": each rank loads the data and trains its members.

Which members: round-robin up front (`placement = "static"`), or one at a time from rank 0's queue as
the rank frees up (`"dynamic"`, the default), so a fast device takes more members than a slow one.

A trained member is scored on the evaluation sets only once the rank has no more members to train (or once
the members waiting hold `SCORE_AFTER_BYTES` of weights): training never waits for scoring, and scoring the
waiting members set by set builds each shift set once per rank instead of once per member. The logits are the
same either way; only when they are computed moves.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from engine.batches import LocalBatches
from engine.evaluation import EvalSets, members_logits
from engine.member import Member
from engine.placement import Placement
from engine.rank import Outcome, RankContext, load_local

SCORE_AFTER_BYTES = 256 * 2**20
"""Weights (parameters and buffers) of trained members a rank holds back before it scores them: small models
wait for the end of training, large ones are scored a few at a time so memory stays bounded."""


class Unscored:
    """Trained members waiting to be scored, as their models alone (the optimizer and gradients are let go)."""

    def __init__(self, outcome: Outcome, eval_sets: EvalSets, budget: int = SCORE_AFTER_BYTES) -> None:
        self.outcome, self.eval_sets, self.budget = outcome, eval_sets, budget
        self.models: dict[int, nn.Module] = {}
        self.bytes = 0

    def add(self, member: Member) -> None:
        """Hold a trained member back; score everything held once it is more than the budget."""
        member.model.zero_grad(set_to_none=True)
        self.models[member.index] = member.model
        self.outcome.note(member)
        self.bytes += sum(t.numel() * t.element_size() for t in (*member.model.parameters(), *member.model.buffers()))
        if self.bytes > self.budget:
            self.score()

    def score(self) -> None:
        """Score every member held, each evaluation set once for all of them, and let their models go."""
        if self.models:
            self.outcome.predictions.update(members_logits(self.models, self.eval_sets))
        self.models.clear()
        self.bytes = 0


def train_in_turn(ctx: RankContext, members: Iterable[int]) -> Outcome:
    """Load the data here, then train `members` one after another, each to its last epoch; score them after.

    `members` may be a lazy queue: the next index is only asked for once the previous member is done.
    """
    config = ctx.config
    splits, eval_sets = load_local(config)
    trainer = ctx.trainer(LocalBatches(splits.x_train, splits.y_train, config.train.batch_size, config.seed,
                                       ctx.device), splits)
    outcome = Outcome(splits=splits, eval_sets=eval_sets)
    unscored = Unscored(outcome, eval_sets)
    for index in members:
        member = ctx.make_member(index, splits)
        trainer.train([member])
        unscored.add(member)
    unscored.score()
    return outcome


def run(ctx: RankContext) -> Outcome:
    with Placement(ctx) as placement:
        return train_in_turn(ctx, (index for chunk in placement.chunks() for index in chunk))
