"""Resource use: each rank's process CPU % and memory, the system CPU, and every GPU the ranks use."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ens_tui.run_state import RunState
from ens_tui.widgets._format import bar, megabytes


class UtilizationPanel(Static):
    """Rendered from the latest Util event of each rank; says "no GPU" plainly when none reported one."""

    DEFAULT_CSS = """
    UtilizationPanel { height: auto; }
    """
    _height = 0

    def show(self, state: RunState) -> None:
        """Redraw from the run's latest samples."""
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        for r in sorted(state.ranks.values(), key=lambda r: r.rank):
            u = r.util
            if u is None:
                table.add_row(f"r{r.rank}", Text("waiting…", style="dim"), "", "")
                continue
            table.add_row(f"r{r.rank}", Text(bar(u.cpu_percent / 100), style="green"), f"{u.cpu_percent:.0f}%",
                          megabytes(u.rss_mb))
        for host, cpu in sorted(state.system_cpu.items()):
            label = "system" if len(state.system_cpu) == 1 else host[:8]
            table.add_row(label, Text(bar(cpu / 100), style="blue"), f"{cpu:.0f}%", "")
        lines: list[Table | Text] = [table]
        if not state.gpus:
            lines.append(Text("no GPU", style="dim"))
        else:
            gpus = Table.grid(padding=(0, 1))
            for _ in range(4):
                gpus.add_column(no_wrap=True)
            for (host, index), u in sorted(state.gpus.items()):
                label = f"gpu{index}" if len({h for h, _ in state.gpus}) == 1 else f"{host[:6]}/gpu{index}"
                util = u.gpu_util or 0.0
                mem = f"{megabytes(u.gpu_mem_mb)}/{megabytes(u.gpu_mem_total_mb)}" if u.gpu_mem_total_mb else ""
                gpus.add_row(label, Text(bar(util / 100), style="magenta"), f"{util:.0f}%", mem)
            lines.append(gpus)
        # Re-layout only when the number of lines changes (a rank or GPU appears); otherwise just repaint.
        height = len(state.ranks) + len(state.system_cpu) + max(len(state.gpus), 1)
        self.update(Group(*lines), layout=height != self._height)
        self._height = height
