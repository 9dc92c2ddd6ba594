"""When the event stream breaks mid-run, the dashboard says so: a failed run with the reason, never a silent hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from engine import events as ev
from ens_tui.app import EnsTuiApp
from ens_tui.screens.run import RunScreen

from .conftest import RECORDED_RUN, ReplayLauncher, no_cuda
from .test_pilot import SIZE, my_config, screen_text, sync, wait_for


class BreakingLauncher(ReplayLauncher):
    """The recorded run over a real socket, until the launcher's stream fails after a few events."""

    async def events(self) -> AsyncIterator[ev.Event]:
        seen = 0
        async for event in super().events():
            yield event
            seen += 1
            if seen == 5:
                raise ConnectionResetError("progress socket reset by peer")


@sync
async def test_a_broken_event_stream_fails_the_run_visibly(tmp_path: Path) -> None:
    app = EnsTuiApp([my_config(tmp_path)], launcher_factory=lambda c: BreakingLauncher(RECORDED_RUN, tmp_path / "run"),
                    setup_checker=no_cuda, cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and not app.screen.state.running)
        run = app.screen
        assert isinstance(run, RunScreen)
        assert run.state.done is not None and run.state.done.status == "failed"
        assert run.state.done.reason == "progress socket reset by peer"
        await pilot.pause()
        text = screen_text(app)
        assert "event reader failed: progress socket reset by peer" in text and "failed" in text
        assert not run.live, "nothing left to stop"
