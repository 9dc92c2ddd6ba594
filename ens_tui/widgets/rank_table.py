"""One row per rank: where it runs, what it trains, how fast, and whether it is still alive."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from ens_tui.run_state import BUSY, RankState
from ens_tui.widgets import _format as fmt

STATE_STYLE = {
    "starting": ("◌ starting", "dim"),
    "training": ("● training", "green"),
    "scoring": ("◐ scoring", "cyan"),
    "done": ("✓ done", "bold blue"),
    "failed": ("✗ failed", "bold red"),
    "stopped": ("■ stopped", "yellow"),
}
COLUMNS = (
    ("rank", "rank"), ("device", "device"), ("host:pid", "where"), ("member", "member"), ("epoch", "epoch"),
    ("step", "step"), ("loss", "loss"), ("samples/s", "rate"), ("state", "state"),
)


@dataclass(frozen=True)
class RankRow:
    """The display strings of one rank (frozen, so unchanged rows compare equal and skip a repaint)."""

    rank: int
    device: str
    where: str
    member: str
    epoch: str
    step: str
    loss: str
    rate: str
    state: str
    straggler: bool = False

    @classmethod
    def of(cls, r: RankState) -> RankRow:
        """Format a rank's state for the table."""
        host = r.host if len(r.host) <= 12 else r.host[:11] + "…"
        # Members finished on this rank (out of its share, when placement is static and the share is known).
        done = f"{r.members_done}/{len(r.members)}" if r.members else f"{r.members_done}✓"
        return cls(
            rank=r.rank,
            device=r.device,
            where=f"{host}:{r.pid}" if r.pid is not None else "…",
            member=f"{fmt.members(r.current)} ({done})" if r.current else "–",
            epoch="–" if r.epoch is None else fmt.position(r.epoch, r.epochs),
            step="–" if r.step is None else fmt.position(r.step, r.steps),
            loss=fmt.loss(r.loss),
            rate=fmt.rate(r.samples_per_s) if r.status == "training" else "–",
            state=f"silent {r.silent_s:.0f}s" if r.silent_s is not None and r.status in BUSY else r.status,
            straggler=r.straggler and r.status in BUSY,
        )


class RankTable(DataTable[Text]):
    """The live rank table; set `ranks` and only the cells that changed are redrawn."""

    DEFAULT_CSS = """
    RankTable { height: auto; max-height: 12; }
    """

    ranks: reactive[tuple[RankRow, ...]] = reactive(())

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's own name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, show_cursor=False)
        for label, key in COLUMNS:
            self.add_column(label, key=key)

    def watch_ranks(self, old: tuple[RankRow, ...], new: tuple[RankRow, ...]) -> None:
        before = {row.rank: row for row in old}
        for row in sorted(new, key=lambda r: r.rank):
            key = str(row.rank)
            if key not in self.rows:
                self.add_row(*self._cells(row), key=key)
            elif before.get(row.rank) != row:
                for (_, column), cell in zip(COLUMNS, self._cells(row), strict=True):
                    # Growing a column re-lays the table out; only pay for that when a cell no longer fits.
                    wider = cell.cell_len > self.columns[column].content_width
                    self.update_cell(key, column, cell, update_width=wider)
        if len(new) != len(old):
            self.sort("rank", key=lambda cell: int(cell.plain))

    @staticmethod
    def _cells(row: RankRow) -> list[Text]:
        label, state_style = STATE_STYLE.get(row.state, (f"⏸ {row.state}", "bold yellow"))
        row_style = {"failed": "red", "silent": "yellow"}.get(row.state.split()[0], "red" if row.straggler else "")
        if row.straggler:
            label, state_style = f"{label} ⚑ straggler", "bold red"
        plain = [str(row.rank), row.device, row.where, row.member, row.epoch, row.step, row.loss, row.rate]
        right = {0, 4, 5, 6, 7}
        cells = [
            Text(value, style=row_style, justify="right" if i in right else "left") for i, value in enumerate(plain)
        ]
        cells.append(Text(label, style=state_style))
        return cells
