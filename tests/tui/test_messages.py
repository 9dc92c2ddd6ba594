"""Every wire event reaches the run screen as a message; high-rate progress merges only with its own kind."""

from __future__ import annotations

from engine import events as ev
from ens_tui import messages as msg


def test_every_event_type_has_a_message() -> None:
    samples = {
        ev.Hello: dict(token="", size=1, host="h", pid=1, device="cpu", strategy="local"),
        ev.MemberStart: dict(member=0, device="cpu"),
        ev.Step: dict(member=0, epoch=0, step=0, steps=1, loss=1.0, samples_per_s=1.0),
        ev.Epoch: dict(member=0, epoch=0, epochs=1, train_loss=1.0, seconds=1.0),
        ev.Util: dict(cpu_percent=1.0, rss_mb=1.0),
        ev.MemberDone: dict(member=0, seconds=1.0),
        ev.Log: dict(message="hi"),
        ev.Error: dict(message="boom"),
        ev.PredictionsSaved: dict(path="p", members=[0]),
        ev.ReportSaved: dict(json_path="j", md_path="m", accuracy=1, nll=0, ece=0, mutual_information=0),
        ev.Goodbye: {},
        ev.RankSilent: dict(seconds=10.0),
        ev.Straggler: dict(flagged=True, samples_per_s=1.0, peers_median=3.0, seconds=30.0),
        ev.Ensemble: dict(size=1, members=[0], member_epochs=1, val_accuracy=1.0, val_nll=0.1, val_ece=0.0,
                          mutual_information=0.0, disagreement=0.0),
        ev.RunDone: dict(status="finished"),
    }
    assert set(samples) == set(ev.EVENT_TYPES)
    for kind, fields in samples.items():
        event = kind(rank=0, **fields)
        message = msg.message_for(event)
        assert isinstance(message, msg.RunEvent) and message.event is event
    # The run screen's one handler takes RunEvent; these three are told apart (merging, the end of the run).
    assert isinstance(msg.message_for(ev.Step(member=0, epoch=0, step=0, steps=1, loss=1, samples_per_s=1)),
                      msg.StepProgress)
    assert isinstance(msg.message_for(ev.Util(cpu_percent=1, rss_mb=1)), msg.UtilSample)
    assert isinstance(msg.message_for(ev.RunDone(status="finished")), msg.RunFinished)


def step(rank: int, member: int) -> msg.StepProgress:
    return msg.StepProgress(ev.Step(rank=rank, member=member, epoch=0, step=0, steps=1, loss=1, samples_per_s=1))


def test_steps_merge_per_rank_and_member() -> None:
    assert step(0, 1).can_replace(step(0, 1))
    assert not step(0, 1).can_replace(step(0, 2))
    assert not step(0, 1).can_replace(step(1, 1))
    util = msg.UtilSample(ev.Util(rank=0, cpu_percent=1, rss_mb=1))
    assert util.can_replace(msg.UtilSample(ev.Util(rank=0, cpu_percent=2, rss_mb=1)))
    assert not util.can_replace(msg.UtilSample(ev.Util(rank=1, cpu_percent=2, rss_mb=1)))
    assert not step(0, 1).can_replace(util)
    done = msg.message_for(ev.MemberDone(rank=0, member=1, seconds=1))
    assert not done.can_replace(done)
