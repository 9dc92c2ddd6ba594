"""On a live run, `m` controls one member: the dialog refuses what the run cannot do, saying why, and a stop it
accepts reaches the real ranks (the member ends early, marked stopped, and the run finishes)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Label

from engine import events as ev
from engine.report_model import Report
from engine.run_folder import RunFolder
from ens_tui.app import EnsTuiApp
from ens_tui.dialogs.member_control import MemberControl
from ens_tui.screens.report import ReportScreen
from ens_tui.screens.run import RunScreen

from .test_e2e import tiny_toml
from .test_pilot import screen_text, sync, wait_for


@sync
async def test_m_stops_training_members_one_at_a_time_and_refuses_a_restart_of_a_healthy_one(tmp_path: Path) -> None:
    app = EnsTuiApp([tiny_toml(tmp_path, epochs=400, limit=1000)])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        run = app.screen
        assert isinstance(run, RunScreen)
        await wait_for(pilot, lambda: len([m for m in run.state.members.values() if m.rank is not None]) == 2, 60)

        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, MemberControl))
        dialog = app.screen
        dialog.query_one("#member-index", Input).value = "1"
        await pilot.click("#member-restart")
        note = str(dialog.query_one("#member-note", Label).content)
        assert note == "member 1 has not diverged: only a diverged member restarts", note
        dialog.query_one("#member-index", Input).value = "7"
        await pilot.click("#member-stop")
        assert str(dialog.query_one("#member-note", Label).content) == "there is no member 7: members are 0–1"

        for member in (1, 0):
            if member == 0:
                await pilot.press("m")
                await wait_for(pilot, lambda: isinstance(app.screen, MemberControl))
                dialog = app.screen
            dialog.query_one("#member-index", Input).value = str(member)
            await pilot.pause(0.5)  # two clicks at once on one spot would be a double click
            await pilot.click("#member-stop")
            await pilot.pause()
            assert app.screen is run, str(dialog.query_one("#member-note", Label).content)
            await wait_for(pilot, lambda m=member: run.state.members[m].stopped, 30)  # type: ignore[misc]
            assert f"asked the ranks to stop member {member}" in screen_text(app)
        await wait_for(pilot, lambda: not run.state.running, 90)
        assert run.state.done is not None and run.state.done.status == "finished"
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))  # the finished run opens its report
        await wait_for(pilot, lambda: "ensemble of 2" in screen_text(app))
        run_dir = run.run_dir
        await pilot.press("q")
        assert run_dir is not None

    events = [e for e in RunFolder(run_dir).events.read_text().splitlines() if '"member_done"' in e]
    done = {ev.decode(line).member: ev.decode(line) for line in events}  # type: ignore[union-attr]
    assert done[1].stopped and done[0].stopped  # type: ignore[union-attr]
    epochs = [e for e in RunFolder(run_dir).events.read_text().splitlines() if '"type":"epoch"' in e]
    assert 0 < len(epochs) < 2 * 400, "both ended early"
    rows = {r.member: r for r in Report.read(RunFolder(run_dir).report_json).members}
    assert rows[1].stopped and rows[0].stopped and rows[1].accuracy is not None
