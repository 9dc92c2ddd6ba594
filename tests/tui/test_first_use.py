"""The dashboard as a first-time user met it (issue 14): throughput under broadcast and load, what a finished
rank and a scoring run show, one clock in the log, lines at the terminal's real width.

Driven through the app against recorded runs replayed over a real socket (tests/tui/conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Sparkline

from engine import events as ev
from engine.config import load_config
from ens_tui import rundir
from ens_tui.app import EnsTuiApp
from ens_tui.run_state import RunState
from ens_tui.widgets.log_pane import LogPane
from ens_tui.widgets.rank_table import RankRow

from .conftest import FIXTURES, no_cuda
from .test_pilot import Factory, run_screen, screen_text, sync, wait_for

BROADCAST = FIXTURES / "broadcast-under-load"
"""A real `broadcast` run recorded while two `python -c "while True: pass"` processes held both cores: 2 ranks
with 2 members each, 3 epochs on digits (batch 16), `ens-tui --run-config` on the launcher; checkpoints,
predictions and report left out."""
EVENTS = rundir.read_events(BROADCAST)
FRAMES = [e for e in EVENTS if not isinstance(e, ev.RunDone)]
"""What the replay launcher sends, in order (`hold_after` counts these)."""


def first(kind: type, **fields: object) -> int:
    """Index in FRAMES of the first event of `kind` with these fields."""
    return next(i for i, e in enumerate(FRAMES) if isinstance(e, kind) and all(getattr(e, k) == v
                                                                                for k, v in fields.items()))


def last(kind: type) -> int:
    return max(i for i, e in enumerate(FRAMES) if isinstance(e, kind))


def rate_value(text: str) -> float:
    """A rate as the dashboard writes it (950, 3.1k, 12k, 1.2M) back to a number."""
    scale = {"k": 1e3, "M": 1e6}.get(text[-1], 1.0)
    return float(text.rstrip("kM")) * scale


def log_lines(app: EnsTuiApp) -> list[str]:
    """Every line the log pane holds, scrolled into view or not."""
    run = run_screen(app)
    assert run is not None
    return [strip.text for strip in run.query_one(LogPane).lines]


def region_text(app: EnsTuiApp, widget: Widget) -> list[str]:
    """The rows of the screen a widget covers."""
    r = widget.region
    return [line[r.x:r.right] for line in screen_text(app).splitlines()[r.y:r.bottom]]


async def held_dashboard(pilot, app: EnsTuiApp, ready) -> None:  # noqa: ANN001
    """Launch the listed setup and wait until the held replay shows what `ready` looks for."""
    await pilot.press("enter")
    await wait_for(pilot, lambda: run_screen(app) is not None)
    await wait_for(pilot, lambda: ready(screen_text(app)))


# ---------------------------------------------------------------- throughput (item 1)


def test_under_broadcast_and_load_every_training_rank_has_a_rate_and_the_total_is_their_sum() -> None:
    """From its first step report to its last member done a rank trains: its rate is above 0 all along, the
    total is the sum of the ranks' rates, and the member column shows the members the rank holds."""
    state = RunState(config=load_config(BROADCAST / "config.toml"))
    trains = {rank: (first(ev.Step, rank=rank), max(i for i, e in enumerate(FRAMES)
                                                       if isinstance(e, ev.MemberDone) and e.rank == rank))
              for rank in (0, 1)}
    held = {0: "m0, m2", 1: "m1, m3"}
    for i, event in enumerate(FRAMES):
        state.apply(event)
        rates = []
        for r in state.ranks.values():
            row = RankRow.of(r)
            start, end = trains[r.rank]
            if start <= i < end:
                assert row.state == "training" and rate_value(row.rate) > 0, (i, event, row)
                assert r.samples_per_s is not None and r.samples_per_s > 0
                assert row.member.startswith(f"{held[r.rank]} ("), "a rank training two members shows both"
                rates.append(r.samples_per_s)
            elif i >= end:
                assert row.state != "training" and row.rate == "–", (i, event, row)
        assert state.total_samples_per_s == pytest.approx(sum(rates))
        if all(start <= i < end for start, end in trains.values()):
            assert len(rates) == 2 and state.total_samples_per_s > max(rates)


@sync
async def test_mid_training_the_dashboard_shows_each_ranks_rate_and_their_total(tmp_path: Path) -> None:
    hold = first(ev.Step, epoch=1) + 6
    factory = Factory(BROADCAST, tmp_path, hold_after=hold)
    app = EnsTuiApp([BROADCAST / "config.toml"], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await held_dashboard(pilot, app, lambda text: "r1 cpu" in text and re.search(r"r1 cpu [\d.]+k?/s", text))
        text = screen_text(app)
        total = rate_value(re.search(r"total ([\d.]+[kM]?)/s", text).group(1))  # type: ignore[union-attr]
        ranks = [rate_value(re.search(rf"r{r} cpu ([\d.]+[kM]?)/s", text).group(1))  # type: ignore[union-attr]
                 for r in (0, 1)]
        assert all(rate > 0 for rate in ranks) and total > 0, text
        assert total == pytest.approx(sum(ranks), rel=0.1), "the total is the ranks' sum (as rounded for display)"
        assert "m0, m2 (0/2)" in text and "m1, m3 (0/2)" in text and "● training" in text
        factory.launchers[0].release()


@sync
async def test_an_idle_start_draws_the_throughput_sparkline_at_its_floor(tmp_path: Path) -> None:
    """Textual's sparkline drew one zero sample as full bars: the dashboard looked busiest before any step."""
    factory = Factory(BROADCAST, tmp_path, hold_after=first(ev.Util) + 1)  # a second in: one sample, of 0
    app = EnsTuiApp([BROADCAST / "config.toml"], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await held_dashboard(pilot, app, lambda text: "r1 cpu" in text)
        run = run_screen(app)
        assert run is not None
        await wait_for(pilot, lambda: list(run.state.total_history) == [0.0])
        await pilot.pause(1.2)  # one redraw
        spark = run.query_one("#tp-spark", Sparkline)
        bars = "".join(region_text(app, spark))
        assert "█" not in bars and "▁" in bars, bars
        factory.launchers[0].release()


# ---------------------------------------------------------------- a finished rank, a scoring run (item 2)


@sync
async def test_once_every_member_is_trained_the_run_reads_scoring_and_each_rank_its_final_step(
    tmp_path: Path,
) -> None:
    factory = Factory(BROADCAST, tmp_path, hold_after=last(ev.MemberDone) + 1)
    app = EnsTuiApp([BROADCAST / "config.toml"], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        def rows(text: str) -> list[str]:
            return [line for line in text.splitlines() if "(2/2)" in line and "scoring" in line]

        await held_dashboard(pilot, app, lambda text: "● scoring" in text and len(rows(text)) == 2)
        run = run_screen(app)
        assert run is not None
        steps = run.state.ranks[0].steps
        text = screen_text(app)
        for members in ("m0, m2", "m1, m3"):
            row = next(line for line in rows(text) if f"{members} (2/2)" in line)
            assert re.search(rf"\b3/3\s+{steps}/{steps}\b", row), row
            assert "scoring" in row and "training" not in row
        assert "ETA –" in text and "ETA 0s" not in text
        factory.launchers[0].release()
        await wait_for(pilot, lambda: not run.state.running)
        text = screen_text(app)
        assert "■ finished" in text and "ETA done" in text
        assert text.count(f"3/3  {steps}/{steps}") == 2 and text.count("✓ done") == 2


@sync
async def test_an_interrupted_run_shows_no_eta(tmp_path: Path, recorded_run: Path) -> None:
    factory = Factory(recorded_run, tmp_path, hold_after=20)
    app = EnsTuiApp([recorded_run / "config.toml"], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await held_dashboard(pilot, app, lambda text: "● training" in text)
        run = run_screen(app)
        assert run is not None
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not run.state.running)
        await wait_for(pilot, lambda: "■ interrupted" in screen_text(app))
        text = screen_text(app)
        assert "ETA –" in text and "ETA 0s" not in text, text


# ---------------------------------------------------------------- the log: one clock, the real width (items 2, 14)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
@sync
async def test_the_log_keeps_one_clock_and_its_lines_whole(recorded_run: Path, size: tuple[int, int]) -> None:
    events = rundir.read_events(recorded_run)
    done = events[-1]
    assert isinstance(done, ev.RunDone)
    end = done.t - events[0].t
    app = EnsTuiApp(show=recorded_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.press("escape")
        text = screen_text(app)
        lines = log_lines(app)
        # The last line's stamp, its own words and the elapsed clock tell one time.
        assert f"{end:7.1f}s • launcher run finished after {end:.1f} s" in text, text
        assert f"{done.seconds:.1f} s since launch" in text.replace("\n", " ")
        assert f"elapsed {round(end)}s" in text
        if size[0] >= 200:
            # Wide: one line per entry, whatever its length.
            assert any("report saved: accuracy 92.48%, NLL 0.2299, ECE 0.0352, MI 0.0328" in line for line in lines)
        # Never a number cut from its name, nor a line carried on under the stamp column.
        assert not any(re.match(r"^\s*[\d.]+%?,?\s*$|^\s{20}\d", line) for line in lines), lines


@sync
async def test_the_dashboard_names_members_epochs_and_accuracies_as_the_report_does(tmp_path: Path) -> None:
    app = EnsTuiApp(show=BROADCAST, setup_checker=no_cuda)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        text = "\n".join(log_lines(app))
        assert "members m0, m2" in text and "m0 done in" in text
        assert re.search(r"val acc \d+\.\d\d%", text), text
        assert "member 0" not in text and "#0" not in text
