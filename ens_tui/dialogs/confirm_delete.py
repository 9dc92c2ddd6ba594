"""Asked before a run folder is deleted from disk: y deletes, n or escape keeps it."""

from __future__ import annotations

from ens_tui.dialogs.confirm import Confirm


class ConfirmDelete(Confirm):
    """True: delete. The question names the folder and what it holds; keeping it is the default button."""

    def __init__(self, question: str) -> None:
        super().__init__(f"{question}\nThis cannot be undone.", yes="Delete", no="Keep", danger=True)
