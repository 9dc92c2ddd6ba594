"""Following a run that another ens-tui drives (headless, a batch job, another terminal), by its run folder alone.

`ens-tui show RUN` on a running run attaches: the dashboard reads what events.jsonl holds so far, then tails it
(as `tail -f` does) until the launcher's `run_done`, or until the launcher's lock comes free without one (it
died). A follower only reads: detaching, however it happens, never touches the run, and any number of
viewers cost the ranks nothing but the page cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from engine import events as ev
from engine.run_folder import RunFolder
from ens_tui.rundir import RecordedEvents, decode_lines, is_running, lost_run_done

POLL_S = 0.25
"""How often the file is checked for new lines: four times per second, like a log viewer."""


class RunFollower:
    """The launcher API (start / events / stop) over a run folder another process writes."""

    attached = True

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._offset = 0
        self._pending = b""

    def history(self) -> RecordedEvents:
        """Every event recorded so far (a torn last line waits for its end); `events()` goes on from there."""
        return decode_lines(self._read())

    async def start(self) -> Path:
        return self.run_dir

    async def events(self) -> AsyncIterator[ev.Event]:
        """New events as the launcher appends them, ending with its RunDone (or one that says it was lost)."""
        while True:
            running = is_running(self.run_dir)
            for event in decode_lines(self._read()):
                yield event
                if isinstance(event, ev.RunDone):
                    return
            if not running:
                # The lock came free before a run_done reached the file: the launcher died (or wrote it just now,
                # which the read above, made after the check, would have seen).
                yield lost_run_done(self.run_dir)
                return
            await asyncio.sleep(POLL_S)

    async def stop(self, reason: str = "") -> None:
        """Detaching stops nothing: the run belongs to its own launcher."""

    def _read(self) -> bytes:
        """The complete lines appended since the last read."""
        try:
            with open(RunFolder(self.run_dir).events, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except (FileNotFoundError, IsADirectoryError):
            return b""
        self._offset += len(chunk)
        data, _, self._pending = (self._pending + chunk).rpartition(b"\n")
        return data
