"""The ensemble while it trains: the newest live ensemble's validation scores and what one more member is worth.

Answers the question an ensemble trainer has (is the ensemble getting better, how many members are enough) from
the ranks' `ensemble` events, folded by RunState. Lines of labelled figures wrap at the width the panel gets, so
one panel reads in a side column and above a plot alike; `lines` says how many rows it takes at a width.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual.widgets import Static

from engine import events as ev
from ens_tui.run_state import RunState, last_gain, ordinal, signed
from ens_tui.widgets import _format as fmt

DASH = "—"
TREND_CHARS = "▁▂▃▄▅▆▇█"
TREND_LEN = 10
"""The NLL trend shows this many of the latest ensembles."""
HELPS, HURTS = "green", "yellow"

Item = Text
Group = list[Item]


def figure(label: str, value: str, style: str = "bold") -> Item:
    """A dim label and its value."""
    return Text.assemble((label, "dim"), " ", (value, style))


def trend(values: list[float], width: int = TREND_LEN) -> str:
    """The last `width` values as bars scaled min to max (a small NLL change still shows), lowest ▁."""
    tail = values[-width:]
    if len(tail) < 2:
        return ""
    low, high = min(tail), max(tail)
    top = len(TREND_CHARS) - 1
    return "".join(TREND_CHARS[round((v - low) / (high - low) * top) if high > low else 0] for v in tail)


def groups(state: RunState) -> list[Group]:
    """The panel's lines before wrapping: a hint where there is no ensemble to show."""
    off = state.live_ensemble_off
    if off is not None:
        return [[Text.assemble(("live ensemble off", "bold"), "  ", (off, "dim"))]]
    e = state.ensemble
    if e is None:
        hint = ("scored on the validation split each time a member ends an epoch" if state.running
                else "no live ensemble scores in this run")
        return [[Text.assemble((DASH, "bold"), "  ", (hint, "dim"))]]
    return [
        [figure("members", f"{e.size} of {state.total_members}"), figure("finished", str(len(e.finished))),
         *([figure("NLL trend", t, "cyan")] if (t := trend([p.val_nll for p in state.ensemble_history])) else [])],
        [figure("val acc", fmt.accuracy(e.val_accuracy)), figure("NLL", fmt.score(e.val_nll)),
         figure("ECE", fmt.score(e.val_ece))],
        [figure("MI", fmt.score(e.mutual_information)), figure("disagreement", fmt.accuracy(e.disagreement))],
        *value_of_members(e),
    ]


def value_of_members(e: ev.Ensemble) -> list[Group]:
    """The finished members' worth: the last one's NLL change, the next one's expected, members for 95 %."""
    if e.fit is None or not e.curve:
        return [[figure("next member", DASH), Text("(from 2 finished members)", style="dim")]]
    k = e.curve[-1].size
    gain = last_gain(e)
    last = figure(f"{ordinal(k)} member", DASH) if gain is None else figure(
        f"{ordinal(k)} member", f"{signed(gain)} NLL", f"bold {HELPS if gain < 0 else HURTS}")
    fit = e.fit
    enough = (figure("95 % of the gain", "reached") if fit.gain_95 <= fit.sizes
              else figure("95 % of the gain at", f"{fit.gain_95} members"))
    return [[last, figure("next", f"≈ {signed(-fit.next_gain)}")], [enough]]


def wrap(lines: list[Group], width: int) -> list[Text]:
    """Each group on a line of its own, its items two spaces apart; an item that does not fit starts a new line,
    and one wider than a line breaks at its last space that fits."""
    out: list[Text] = []
    for items in lines:
        line = Text()
        for item in items:
            if line and len(line) + 2 + len(item) > width:
                out.append(line)
                line = Text()
            while not line and len(item) > width and (cut := item.plain.rfind(" ", 0, width + 1)) > 0:
                out.append(item[:cut])
                item = item[cut + 1:]
            if line:
                line.append("  ")
            line.append_text(item)
        out.append(line)
    for text in out:
        text.truncate(max(width, 1), overflow="ellipsis")
    return out


class Lines:
    """The groups wrapped at the width the panel is drawn at (a replay fills the panel before its first layout)."""

    def __init__(self, lines: list[Group]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n").join(wrap(self.lines, options.max_width))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


class EnsemblePanel(Static):
    """Fed by `show(state)` on the run screen's redraw; repaints only when the ensemble (or the run's end) changed."""

    DEFAULT_CSS = """
    EnsemblePanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._groups: list[Group] = []
        self._signature: object = None

    def show(self, state: RunState) -> None:
        """Take the run's newest ensemble."""
        signature = (state.ensemble, len(state.ensemble_history), state.total_members, state.running,
                     state.live_ensemble_off)
        if signature == self._signature:
            return
        self._signature = signature
        self._groups = groups(state)
        self.update(Lines(self._groups))

    def lines(self, width: int) -> int:
        """Rows the figures take at `width` columns, borders and padding left out."""
        return len(wrap(self._groups, width))
