"""Do viewers slow a run? The same headless run watched by 0 and by N attached dashboards (`ens-tui show RUN`).

    python -m bench.attach_viewers [--viewers 3] [--repeats 3] [--members 4] [--epochs 6]

The run is the real `ens-tui --run-config` in one tmux session; each viewer is the real dashboard in its own
tmux session (a real terminal, real rendering), attached as soon as the run folder exists. Runs alternate
0, N, 0, N…; throughput is the run's own training window (`bench.timing`). Results go to
bench/results/attach-viewers-<machine>-<date>.json with the load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.record import write_results
from bench.timing import training_window
from bench.tui_overhead import ENS_TUI, REPO, cpu_seconds, front_end_process, run_folders, tmux, wait_for
from engine.run_folder import RunFolder


def run_once(viewers: int, config: Path, out: Path, size: tuple[int, int], overrides: str) -> tuple[float, float]:
    """One watched run; returns (member-epochs per second of training, viewers' CPU share of one core)."""
    stamp = time.monotonic_ns()
    runs = out / f"runs-{viewers}-{stamp}"
    session = f"bench-run-{stamp}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30",
         f"{ENS_TUI} --run-config {config} {overrides} --output-dir {runs}; sleep 600")
    watchers = [f"bench-view-{stamp}-{i}" for i in range(viewers)]
    try:
        wait_for(lambda: run_folders(runs) and RunFolder(run_folders(runs)[0]).events.exists(), 60)
        run_dir = run_folders(runs)[0]
        for name in watchers:
            tmux("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
                 f"{ENS_TUI} show {run_dir}; sleep 600")
        procs = [front_end_process(name) for name in watchers]
        cpu_start, wall_start = sum(cpu_seconds(p) for p in procs), time.perf_counter()
        wait_for(lambda: json.loads(RunFolder(run_dir).info.read_text()).get("status") == "finished", 600, poll=0.5)
        share = (sum(cpu_seconds(p) for p in procs) - cpu_start) / (time.perf_counter() - wall_start)
        return training_window(run_dir).member_epochs_per_s, share
    finally:
        for name in [session, *watchers]:
            tmux("kill-session", "-t", name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", default="120x36", help="each viewer's terminal size")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    rates: dict[str, list[float]] = {"0": [], str(args.viewers): []}
    cpu: list[float] = []
    loads: list[float] = []
    config = REPO / "configs/quick-digits.toml"
    overrides = f"--members {args.members} --epochs {args.epochs}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for i in range(args.repeats):
            for viewers in (0, args.viewers):
                loads.append(os.getloadavg()[0])
                rate, share = run_once(viewers, config, out, size, overrides)  # type: ignore[arg-type]
                rates[str(viewers)].append(rate)
                if viewers:
                    cpu.append(share)
                print(f"repeat {i + 1}: {viewers} viewer(s) {rate:.3f} member-epochs/s"
                      + (f", viewers used {share:.1%} of a core" if viewers else ""), flush=True)
    paired = statistics.median(w / a for w, a in zip(rates[str(args.viewers)], rates["0"], strict=True))
    result = {
        "machine": platform.node(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "config": f"quick-digits, {args.members} members, {args.epochs} epochs, 2 CPU ranks",
        "viewers": args.viewers, "terminal": args.size, "member_epochs_per_s": rates,
        "watched_over_unwatched_paired_median": paired, "viewers_cpu_share": cpu, "load_average_1m": loads,
    }
    path = write_results("attach-viewers", result)
    print(f"{args.viewers} attached viewers keep {paired:.1%} of the unwatched run's throughput (median of "
          f"{args.repeats} pairs); together they used {statistics.median(cpu):.1%} of a core → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
