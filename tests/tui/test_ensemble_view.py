"""Issue 11 §1–§2, the UI half: the dashboard and the headless display show the ensemble while it trains, and what
one more member is worth; the report says the size law and whether the run stopped early.

Against a run recorded once per session by real mpiexec ranks (the recorded fixtures predate the `ensemble` event),
replayed over a real socket or shown from its folder, rendered by Textual.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.widget import Widget
from textual.widgets import ContentSwitcher

from engine import events as ev
from engine.config import load_config
from engine.report_model import StoppedEarly
from engine.run_folder import RunFolder
from ens_tui import rundir
from ens_tui.app import EnsTuiApp
from ens_tui.headless import HeadlessView, report_summary
from ens_tui.run_state import RunState, ensemble_line, ordinal, signed
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen
from ens_tui.widgets.ensemble_panel import EnsemblePanel
from ens_tui.widgets.ensemble_plot import EnsemblePlot
from tests.conftest import run_launcher, tiny_config

from .conftest import RECORDED_RUN, no_cuda
from .test_pilot import Factory, launch_and_wait_for_ranks, screen_text, sync, wait_for

pytestmark = pytest.mark.mpi

if shutil.which("mpiexec") is None and not (Path(__import__("sys").executable).parent / "mpiexec").exists():
    pytest.skip("needs mpiexec", allow_module_level=True)
pytest.importorskip("torch")
pytest.importorskip("mpi4py")

MEMBERS = 4


@pytest.fixture(scope="session")
def ensemble_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run with `ensemble` events: 4 members, 2 epochs, 2 ranks on digits (a few seconds)."""
    out = tmp_path_factory.mktemp("ensemble-run")
    config = tiny_config(out, train={"members": MEMBERS, "epochs": 2}, data={"val_fraction": 0.25})
    events, launcher = run_launcher(config)
    assert [e.status for e in events if isinstance(e, ev.RunDone)] == ["finished"]
    assert sum(isinstance(e, ev.Ensemble) for e in events) == MEMBERS * 2
    return launcher.run_dir


def frames(run: Path) -> list[ev.Event]:
    """What a replay launcher sends, in order."""
    return [e for e in rundir.read_events(run) if not isinstance(e, ev.RunDone)]


def newest(events: list[ev.Event]) -> ev.Ensemble:
    """The ensemble the rule picks: the latest stamp (read last), of two alike the later to arrive."""
    ensembles = [e for e in events if isinstance(e, ev.Ensemble)]
    return max(reversed(ensembles), key=lambda e: e.t)


def words(widget: Widget, app: EnsTuiApp) -> str:
    """The text of the screen rows a widget's content covers (inside its borders), runs of spaces made one."""
    r = widget.content_region
    rows = [line[r.x:r.right] for line in screen_text(app).splitlines()[r.y:r.bottom]]
    return re.sub(r"\s+", " ", " ".join(rows))


def expected_figures(e: ev.Ensemble) -> list[str]:
    """What the panel must say of ensemble `e`."""
    said = [f"members {e.size} of {MEMBERS}", f"finished {len(e.finished)}", f"val acc {e.val_accuracy:.2%}",
            f"NLL {e.val_nll:.4f}", f"ECE {e.val_ece:.4f}", f"MI {e.mutual_information:.4f}",
            f"disagreement {e.disagreement:.2%}"]
    if e.fit is not None:
        said.append(f"next ≈ {signed(-e.fit.next_gain)}")
        said.append("95 % of the gain reached" if e.fit.gain_95 <= e.fit.sizes
                    else f"95 % of the gain at {e.fit.gain_95} members")
    return said


def finished_grew(ensembles: list[ev.Ensemble]) -> list[ev.Ensemble]:
    """The ensembles that saw more finished members than any before (two may finish between two events)."""
    return [e for i, e in enumerate(ensembles)
            if len(e.finished) > max((len(p.finished) for p in ensembles[:i]), default=0)]


def shown_panel(app: EnsTuiApp) -> EnsemblePanel:
    run = app.screen
    assert isinstance(run, RunScreen)
    side, inline = run.query_one("#ens-side", EnsemblePanel), run.query_one("#ens-inline", EnsemblePanel)
    assert side.display != inline.display, "the panel shows in one place"
    return side if side.display else inline


# ---------------------------------------------------------------- the panel, live


@sync
async def test_a_training_run_shows_the_newest_ensemble_and_what_the_next_member_is_worth(
        tmp_path: Path, ensemble_run: Path) -> None:
    sent = frames(ensemble_run)
    two_finished = next(i for i, e in enumerate(sent) if isinstance(e, ev.Ensemble) and len(e.finished) >= 2)
    factory = Factory(ensemble_run, tmp_path, hold_after=two_finished + 1)
    app = EnsTuiApp([RunFolder(ensemble_run).config], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    want = newest(sent[:two_finished + 1])
    assert want.fit is not None, "two finished members: the law is fitted"
    async with app.run_test(size=(100, 30)) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        run = app.screen
        assert isinstance(run, RunScreen)
        await wait_for(pilot, lambda: run.state.ensemble == want)
        panel = run.query_one("#ens-side", EnsemblePanel)
        await wait_for(pilot, lambda: all(f in words(panel, app) for f in expected_figures(want)))
        assert shown_panel(app) is panel, "at 100×30 with two ranks the panel fits under utilization"
        assert "● training" in screen_text(app) and "ensemble (validation)" in screen_text(app)
        text = words(panel, app)
        k = want.curve[-1].size
        gain = want.curve[-1].nll - want.curve[-2].nll
        assert f"{ordinal(k)} member {signed(gain)} NLL" in text, text
        assert "NLL trend" in text, "more than one ensemble so far: its NLL trend"
        # The finished members' worth went to the log once per member that finished, not per epoch.
        logged = [line for line in screen_text(app).splitlines() if "finished member" in line]
        assert any(f"ensemble of {k} finished members: val NLL {want.curve[-1].nll:.4f}" in line
                   for line in logged), logged
        grew = finished_grew([e for e in sent[:two_finished + 1] if isinstance(e, ev.Ensemble)])
        assert [e.text for e in run.state.logs if e.text.startswith("ensemble of")] == [ensemble_line(e)
                                                                                         for e in grew]
        factory.launchers[0].release()
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await pilot.pause(0.5)  # the report screen mounted whole before the app closes


@sync
async def test_before_the_first_ensemble_the_panel_says_when_it_comes(tmp_path: Path, ensemble_run: Path) -> None:
    sent = frames(ensemble_run)
    before = next(i for i, e in enumerate(sent) if isinstance(e, ev.Ensemble))
    factory = Factory(ensemble_run, tmp_path, hold_after=before)
    app = EnsTuiApp([RunFolder(ensemble_run).config], launcher_factory=factory, setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await launch_and_wait_for_ranks(pilot, app)
        panel = shown_panel(app)
        await wait_for(pilot, lambda: "scored on the validation split each time a member ends an epoch"
                       in words(panel, app))
        assert words(panel, app).startswith("—")
        factory.launchers[0].release()
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await pilot.pause(0.5)  # the report screen mounted whole before the app closes


@sync
async def test_a_run_without_live_scoring_says_the_live_ensemble_is_off(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RECORDED_RUN, run)
    config = RunFolder(run).config
    config.write_text(config.read_text().replace("[train]\n", "[train]\nlive_ensemble = false\n"))
    app = EnsTuiApp(show=run, setup_checker=no_cuda)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await wait_for(pilot, lambda: "live ensemble off [train] live_ensemble = false" in words(shown_panel(app), app))


# ---------------------------------------------------------------- crossing events


def crossed(run: Path, out: Path) -> tuple[Path, ev.Ensemble, ev.Ensemble]:
    """A copy of `run` where the last ensemble stamped before the newest arrives after every other one; returns it
    with the newest ensemble."""
    shutil.copytree(run, out)
    lines = RunFolder(out).events.read_text().splitlines()
    events = [ev.from_dict(json.loads(line)) for line in lines]
    at = [i for i, e in enumerate(events) if isinstance(e, ev.Ensemble)]
    latest = max(events[i].t for i in at)
    older = max(i for i in at if events[i].t < latest)
    moved = lines.pop(older)
    lines.insert(at[-1], moved)  # right after the last ensemble (which moved up one)
    RunFolder(out).events.write_text("\n".join(lines) + "\n")
    reordered = [e for e in rundir.read_events(out) if isinstance(e, ev.Ensemble)]
    assert reordered[-1] == events[older]
    return out, newest(reordered), reordered[-1]  # type: ignore[return-value]


def test_an_older_ensemble_arriving_later_never_moves_the_state_back(ensemble_run: Path, tmp_path: Path) -> None:
    run, new, old = crossed(ensemble_run, tmp_path / "crossed")
    assert old.t < new.t and old.member_epochs <= new.member_epochs
    state = RunState(config=load_config(RunFolder(run).config))
    for event in rundir.read_events(run):
        state.apply(event)
    assert state.ensemble == new
    epochs = [p.member_epochs for p in state.ensemble_history]
    assert epochs == sorted(set(epochs)) and epochs[-1] == new.member_epochs
    # Of two ensembles stamped alike, the later to arrive stands.
    tie = new.model_copy(update={"val_nll": new.val_nll + 1.0})
    assert state.apply(tie) == [] and state.ensemble is tie
    assert state.apply(old) == [] and state.ensemble is tie


@sync
async def test_crossing_events_do_not_move_the_panel_backwards(ensemble_run: Path, tmp_path: Path) -> None:
    run, new, old = crossed(ensemble_run, tmp_path / "crossed")
    app = EnsTuiApp(show=run, setup_checker=no_cuda)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause(0.2)
        text = words(shown_panel(app), app)
        assert all(f in text for f in expected_figures(new)), text
        if old.val_nll != new.val_nll:
            assert f"NLL {old.val_nll:.4f}" not in text


# ---------------------------------------------------------------- the ensemble plot (`v`)


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)])
@sync
async def test_v_reaches_the_ensemble_plot_and_every_size_keeps_the_rank_table(
        ensemble_run: Path, size: tuple[int, int]) -> None:
    final = newest(frames(ensemble_run))
    assert final.fit is not None
    app = EnsTuiApp(show=ensemble_run, setup_checker=no_cuda)
    async with app.run_test(size=size) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        run = app.screen
        assert isinstance(run, RunScreen)
        plots = run.query_one("#run-plots", ContentSwitcher)
        for _ in range(4):
            assert plots.current == "loss"
            await pilot.press("v")
        await pilot.pause(0.2)
        assert plots.current == "ens-view"
        text = screen_text(app)
        rows = text.splitlines()
        assert any(re.match(r"\s+0\s+cpu", row) for row in rows) and any(re.match(r"\s+1\s+cpu", row) for row in rows)
        plot = run.query_one(EnsemblePlot)
        drawn = [line[plot.region.x:plot.region.right] for line in rows[plot.region.y:plot.region.bottom]]
        assert "NLL vs members" in drawn[0], drawn[0]
        legend = " ".join(drawn[-2:])
        assert "━━ observed" in legend and "◆ projected" in legend, drawn
        assert sum("◆" in line for line in drawn[1:-2]) >= 1, "the projected sizes are drawn"
        assert any(f"{final.fit.gain_95}" in line for line in drawn), "the axis reaches the projection"
        # The numbers stay in sight beside the plot, whichever place they fit.
        panel = shown_panel(app)
        assert all(f in words(panel, app) for f in expected_figures(final)), words(panel, app)
        assert panel.id == ("ens-inline" if size == (80, 24) else "ens-side")
        await pilot.press("v")
        await pilot.pause(0.2)
        assert plots.current == "loss" and "training loss per member (linear)" in screen_text(app)
        assert "throughput" in screen_text(app), "leaving the ensemble plot gives the side column back"


# ---------------------------------------------------------------- the headless display and the report


def test_the_headless_display_prints_the_value_of_each_finished_member_once(ensemble_run: Path) -> None:
    out = io.StringIO()
    view = HeadlessView(load_config(RunFolder(ensemble_run).config), Console(file=out, width=120, color_system=None))
    events = rundir.read_events(ensemble_run)
    for event in events:
        view.handle(event)
    lines = [line for line in out.getvalue().splitlines() if ": ensemble of " in line]
    ensembles = [e for e in events if isinstance(e, ev.Ensemble)]
    grew = finished_grew(ensembles)
    assert 2 <= len(lines) == len(grew) < len(ensembles), "a line when more members finished, not every epoch"
    assert [line.split(": ", 1)[1] for line in lines] == [ensemble_line(e) for e in grew]
    first = len(grew[0].finished)
    assert f"ensemble of {first} finished member{'s' * (first > 1)}: val NLL {grew[0].curve[-1].nll:.4f}" in lines[0]
    last = grew[-1]
    assert last.fit is not None and len(last.finished) == MEMBERS
    assert f"ensemble of {MEMBERS} finished members: val NLL {last.curve[-1].nll:.4f}" in lines[-1]
    assert f"next member ≈ {signed(-last.fit.next_gain)}" in lines[-1]
    # On a terminal the overall bar carries the newest ensemble's validation NLL.
    live = HeadlessView(load_config(RunFolder(ensemble_run).config),
                        Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None))
    for event in events[:events.index(grew[0]) + 1]:
        live.handle(event)
    bars = Console(file=io.StringIO(), width=160, color_system=None)
    bars.print(live.progress)
    assert f"val NLL {newest(events[:events.index(grew[0]) + 1]).val_nll:.3f}" in bars.file.getvalue()  # type: ignore[attr-defined]


def test_the_report_summary_states_the_size_law_and_an_early_stop(ensemble_run: Path) -> None:
    report = rundir.read_report(ensemble_run)
    assert report is not None and report.size_law is not None and report.stopped_early is None
    law = report.size_law

    def printed(r: object) -> str:
        console = Console(file=io.StringIO(), width=80, color_system=None)
        console.print(report_summary(r))  # type: ignore[arg-type]
        return console.file.getvalue()  # type: ignore[attr-defined]

    text = printed(report)
    assert f"size law: NLL(k) ≈ {law.a:.4f} + {law.b:.4f}/k through sizes 1–{law.sizes}" in text, text
    assert f"next member ≈ {signed(-law.next_gain)} NLL" in text
    assert "projected NLL: " + " · ".join(f"{p.size} → {p.nll:.4f}" for p in law.projected) in text
    assert "stopped early" not in text
    reason = "growing the ensemble to 3 and then 4 members lowered the validation NLL by 0.0010 and 0.0005, " \
             "each less than 0.002"
    stopped = printed(report.model_copy(update={"stopped_early": StoppedEarly(members=4, reason=reason)}))
    assert "stopped early: 4 members — growing the ensemble" in stopped
    assert "each less than 0.002" in stopped and all(len(line) <= 80 for line in stopped.splitlines())


@sync
async def test_the_report_shows_the_size_law_under_the_size_curve_and_an_early_stop_at_the_top(
        ensemble_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "stopped"
    shutil.copytree(ensemble_run, run)
    report_json = RunFolder(run).report_json
    data = json.loads(report_json.read_text())
    data["stopped_early"] = {"members": MEMBERS, "reason": "each of the last two sizes gained less than 0.002"}
    report_json.write_text(json.dumps(data))
    law = rundir.read_report(run).size_law  # type: ignore[union-attr]
    assert law is not None
    app = EnsTuiApp(show=run, setup_checker=no_cuda)
    async with app.run_test(size=(100, 50)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
        await pilot.pause(0.2)
        rows = screen_text(app).splitlines()
        assert "stopped early" in rows[2] and f"{MEMBERS} members — each of the last two sizes" in rows[2], rows[:4]
        text = "\n".join(rows)
        assert f"NLL(k) ≈ {law.a:.4f} + {law.b:.4f}/k" in text, text
        assert "·· NLL fit a + b/k" in text, "the fit drawn over the size curve"
        curve = app.screen.query_one("#size-curve")
        below = [i for i, row in enumerate(rows) if "the value of more members" in row]
        assert below and below[0] >= curve.region.bottom, "the law is under the curve"
