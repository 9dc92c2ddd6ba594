"""RunState folds events into what the dashboard shows; plain Python, no Textual."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.config import load_config
from ens_tui import rundir
from ens_tui.run_state import RunState


def replay(run_dir: Path) -> RunState:
    state = RunState(config=load_config(run_dir / "config.toml"))
    for event in rundir.read_events(run_dir):
        state.apply(event)
    return state


def test_a_finished_run_folds_to_every_rank_done(recorded_run: Path) -> None:
    state = replay(recorded_run)
    assert state.done is not None and state.done.status == "finished"
    assert sorted(state.ranks) == [0, 1]
    assert {r.status for r in state.ranks.values()} == {"done"}
    assert state.progress == 1.0
    assert state.members_done() == state.total_members
    assert state.report is not None
    assert state.total_samples_per_s == 0.0
    assert len(state.total_history) >= 2 and max(state.total_history) > 0
    assert all(m.losses for m in state.members.values())


def test_a_rank_error_turns_only_that_rank_failed() -> None:
    state = RunState()
    for rank in (0, 1):
        state.apply(ev.Hello(rank=rank, token="", size=2, host="h", pid=10 + rank, device="cpu", strategy="local"))
        state.apply(ev.MemberStart(rank=rank, member=rank, device="cpu"))
    logs = state.apply(ev.Error(rank=1, message="boom", traceback="Traceback …\nValueError: boom"))
    assert state.ranks[1].status == "failed" and state.ranks[0].status == "training"
    assert logs[0].level == "error" and "ValueError" in logs[0].text
    state.apply(ev.RunDone(status="failed", reason="rank 1: boom"))
    assert state.ranks[0].status == "failed" and not state.running


def test_interrupted_ranks_read_stopped() -> None:
    state = RunState()
    state.apply(ev.Hello(rank=0, token="", size=1, host="h", pid=1, device="cpu", strategy="sequential"))
    state.apply(ev.Step(rank=0, member=0, epoch=0, step=3, steps=10, loss=1.0, samples_per_s=100.0))
    assert state.total_samples_per_s == 100.0
    state.apply(ev.RunDone(status="interrupted"))
    assert state.ranks[0].status == "stopped" and state.total_samples_per_s == 0.0


def test_eta_extrapolates_progress() -> None:
    state = RunState()
    state.apply(ev.Step(rank=0, t=100.0, member=0, epoch=0, step=0, steps=10, loss=1.0, samples_per_s=1.0))
    state.apply(ev.Step(rank=0, t=110.0, member=0, epoch=0, step=5, steps=10, loss=1.0, samples_per_s=1.0))
    # one member, epochs unknown (no config): half of epoch 1 of 1 is done after 10 s
    assert state.progress == 0.5
    assert state.eta(state.elapsed) == 10.0


events_strategy = st.one_of(
    st.builds(ev.Step, rank=st.integers(0, 3), member=st.integers(0, 7), epoch=st.integers(0, 5),
              step=st.integers(0, 50), steps=st.integers(1, 50), loss=st.floats(0, 10),
              samples_per_s=st.floats(0, 1e6), t=st.floats(0, 1e3)),
    st.builds(ev.Epoch, rank=st.integers(0, 3), member=st.integers(0, 7), epoch=st.integers(0, 5),
              epochs=st.integers(1, 6), train_loss=st.floats(0, 10), seconds=st.floats(0, 10), t=st.floats(0, 1e3)),
    st.builds(ev.MemberDone, rank=st.integers(0, 3), member=st.integers(0, 7), seconds=st.floats(0, 10),
              t=st.floats(0, 1e3)),
    st.builds(ev.Util, rank=st.integers(0, 3), cpu_percent=st.floats(0, 800), rss_mb=st.floats(0, 1e5),
              gpu_index=st.none() | st.integers(0, 1), t=st.floats(0, 1e3)),
    st.builds(ev.Goodbye, rank=st.integers(0, 3), t=st.floats(0, 1e3)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events_strategy, max_size=60))
def test_any_event_order_keeps_the_numbers_sane(events: list[ev.Event]) -> None:
    state = RunState()
    for event in events:
        state.apply(event)
        assert 0.0 <= state.progress <= 1.0
        assert state.total_samples_per_s >= 0.0
        eta = state.eta(state.elapsed)
        assert eta is None or eta >= 0.0


def test_a_long_silence_costs_one_history_not_one_sample_per_second() -> None:
    state = RunState()
    state.apply(ev.Step(rank=0, t=1.0, member=0, epoch=0, step=0, steps=10, loss=1.0, samples_per_s=5.0))
    state.apply(ev.RunDone(status="interrupted", t=1e9))  # a clock far ahead: must not loop a billion times
    assert len(state.total_history) <= state.total_history.maxlen  # type: ignore[operator]


def test_a_silent_rank_is_flagged_in_its_row_until_it_speaks_again() -> None:
    from ens_tui.widgets.rank_table import RankRow

    state = RunState()
    for rank in (0, 1):
        state.apply(ev.Hello(rank=rank, token="", size=2, host="h", pid=10 + rank, device="cpu", strategy="local"))
        state.apply(ev.MemberStart(rank=rank, member=rank, device="cpu"))
    logged = state.apply(ev.RankSilent(rank=1, seconds=10))
    assert [e.text for e in logged] == ["rank 1 silent for 10 s (stopped or hung?)"]
    assert state.apply(ev.RankSilent(rank=1, seconds=20)) == [], "said once, the row keeps counting"
    assert RankRow.of(state.ranks[1]).state == "silent 20s"
    assert RankRow.of(state.ranks[0]).state == "training"
    state.apply(ev.Util(rank=1, cpu_percent=50, rss_mb=100))
    assert RankRow.of(state.ranks[1]).state == "training"


def test_a_rank_scores_between_members_and_the_run_scores_before_its_report() -> None:
    """A local rank: member, scoring it, next member; the run reads scoring once every member is trained."""
    from ens_tui.widgets.rank_table import RankRow

    state = RunState()
    state.apply(ev.Hello(rank=0, t=0.0, token="", size=1, host="h", pid=1, device="cpu", strategy="local"))
    for member, t in ((0, 1.0), (2, 5.0)):
        state.apply(ev.MemberStart(rank=0, t=t, member=member, device="cpu"))
        row = RankRow.of(state.ranks[0])
        assert (row.member, row.epoch, row.step, row.rate, row.state) == (
            f"m{member} ({member // 2}✓)", "–", "–", "–", "training"), "a new member starts from nothing"
        state.apply(ev.Step(rank=0, t=t + 1, member=member, epoch=0, step=3, steps=10, loss=1.0, samples_per_s=50.0))
        assert state.total_samples_per_s == 50.0 and state.phase == "training"
        state.apply(ev.Epoch(rank=0, t=t + 2, member=member, epoch=0, epochs=1, train_loss=0.5, seconds=2.0))
        state.apply(ev.MemberDone(rank=0, t=t + 2, member=member, seconds=2.0, val_accuracy=0.9))
        row = RankRow.of(state.ranks[0])
        assert (row.epoch, row.step, row.rate, row.state) == ("1/1", "10/10", "–", "scoring")
        assert state.total_samples_per_s == 0.0
    assert state.phase == "scoring" and state.eta(10.0) is None
    state.apply(ev.ReportSaved(rank=0, t=9.0, json_path="r.json", md_path="r.md", accuracy=0.9, nll=0.3, ece=0.01,
                               mutual_information=0.02))
    assert state.phase == "finishing"
    logged = state.apply(ev.RunDone(t=10.0, status="failed", reason="boom", seconds=14.0))
    assert state.phase == "failed" and state.eta(state.elapsed) is None
    assert logged[0].text == "run failed after 10.0 s (14.0 s since launch: the ranks took 4.0 s to start): boom"
