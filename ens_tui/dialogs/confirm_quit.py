"""Asked before quitting (or stopping) while ranks are still training: it stops every one of them."""

from __future__ import annotations

from ens_tui.dialogs.confirm import Confirm


class ConfirmQuit(Confirm):
    """True: stop the run (and quit, when `quitting`)."""

    def __init__(self, message: str = "Training is still running.", *, quitting: bool = True) -> None:
        then = "Stop every rank and quit?" if quitting else "Stop every rank?"
        super().__init__(f"{message}\n{then} The run will be marked interrupted.",
                         yes="Stop & quit" if quitting else "Stop", no="Keep training")
