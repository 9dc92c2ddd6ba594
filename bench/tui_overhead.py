"""Does watching cost training speed? The same run headless and with the dashboard in a real terminal.

    python -m bench.tui_overhead [--repeats 3] [--members 4] [--epochs 4]

Both modes run the real `ens-tui` in tmux (a real terminal, real rendering), interleaved H, T, H, T…;
throughput is the run's own training window (first `member_start` to last `member_done` in
events.jsonl, see `bench.timing`), so rank start-up and the report do not dilute it. Also times how long
the dashboard takes to show its first screen. Results go to bench/results/tui-overhead-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.record import write_results
from bench.timing import training_window
from engine.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
ENS_TUI = Path(sys.executable).parent / "ens-tui"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def wait_for(predicate, timeout: float, poll: float = 0.05) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(poll)
    raise TimeoutError("gave up waiting")


FRONT_END_CPU: dict[str, list[float]] = {"headless": [], "tui": []}
"""Share of one core the front-end process (Rich display or Textual app, with the launcher) used per run."""


def front_end_process(session: str) -> psutil.Process:
    """The `ens-tui` process running in the tmux session's pane."""
    shell = psutil.Process(int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0]))
    for child in shell.children(recursive=True):
        if any("ens-tui" in part for part in child.cmdline()):
            return child
    raise RuntimeError("ens-tui is not running in the pane")


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return float("nan")
    return times.user + times.system


def run_folders(runs: Path) -> list[Path]:
    """The run folders under `runs` that the launcher has started (config and run.json written)."""
    return [d for d in runs.glob("*") if RunFolder(d).is_run()] if runs.is_dir() else []


def run_once(mode: str, config: Path, out: Path, size: tuple[int, int]) -> float:
    """One run in a fresh tmux session; returns member-epochs per second of training."""
    session = f"bench-{mode}-{time.monotonic_ns()}"
    runs = out / f"{mode}-{time.monotonic_ns()}"
    if mode == "headless":
        command = f"{ENS_TUI} --run-config {config} --output-dir {runs}"
    else:
        command = f"cd {out} && {ENS_TUI} {config}"
    tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command + "; sleep 600")
    try:
        if mode == "tui":
            wait_for(lambda: "Launch" in tmux("capture-pane", "-p", "-t", session), 30)
            tmux("send-keys", "-t", session, "Enter")
            runs = out / "runs"
        front_end = front_end_process(session)
        cpu_start, wall_start = cpu_seconds(front_end), time.perf_counter()
        wait_for(lambda: any(json.loads(RunFolder(d).info.read_text()).get("status") == "finished"
                             for d in run_folders(runs)), 600, poll=0.5)
        cpu_share = (cpu_seconds(front_end) - cpu_start) / (time.perf_counter() - wall_start)
        run_dir = max(run_folders(runs), key=lambda d: RunFolder(d).info.stat().st_mtime)
        window = training_window(run_dir)
        FRONT_END_CPU[mode].append(cpu_share)
        if mode == "tui":
            time.sleep(1.0)  # let the report screen open, as a user would see it
            shutil.move(str(run_dir), str(out / f"tui-{time.monotonic_ns()}"))
        return window.member_epochs_per_s
    finally:
        tmux("kill-session", "-t", session)


def startup_seconds(out: Path, size: tuple[int, int]) -> float:
    """From `ens-tui` starting to its setup screen drawn in the terminal."""
    session = f"bench-start-{time.monotonic_ns()}"
    start = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), f"cd {out} && {ENS_TUI}")
    try:
        wait_for(lambda: "Launch" in tmux("capture-pane", "-p", "-t", session), 60, poll=0.01)
        return time.perf_counter() - start
    except TimeoutError:
        raise TimeoutError("the dashboard never showed its setup screen; the pane reads:\n"
                           + tmux("capture-pane", "-p", "-t", session)) from None
    finally:
        tmux("kill-session", "-t", session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", default="160x48", help="terminal size for the dashboard")
    args = parser.parse_args(argv)
    if not shutil.which("tmux"):
        print("this benchmark drives a real terminal through tmux; install tmux first", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config = out / "bench.toml"
        config.write_text((REPO / "configs/quick-digits.toml").read_text()
                          .replace("members = 4", f"members = {args.members}")
                          .replace("epochs = 8", f"epochs = {args.epochs}")
                          .replace('output_dir = "runs"', f'output_dir = "{out / "runs"}"'))
        rates: dict[str, list[float]] = {"headless": [], "tui": []}
        for i in range(args.repeats):
            for mode in ("headless", "tui"):
                rate = run_once(mode, config, out, size)  # type: ignore[arg-type]
                rates[mode].append(rate)
                print(f"repeat {i + 1}: {mode:8s} {rate:.3f} member-epochs/s", flush=True)
        starts = [startup_seconds(out, size) for _ in range(5)]  # type: ignore[arg-type]
    medians = {m: statistics.median(v) for m, v in rates.items()}
    ratio = medians["tui"] / medians["headless"]
    # This VM's speed drifts between runs; each TUI run against the headless run just before it is steadier.
    paired = statistics.median(t / h for t, h in zip(rates["tui"], rates["headless"], strict=True))
    cpu = {m: statistics.median(v) for m, v in FRONT_END_CPU.items()}
    result = {
        "machine": platform.node(), "cpus": __import__("os").cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "config": f"quick-digits, {args.members} members, {args.epochs} epochs, 2 CPU ranks",
        "terminal": args.size, "repeats": args.repeats, "member_epochs_per_s": rates, "medians": medians,
        "tui_over_headless": ratio, "tui_over_headless_paired_median": paired,
        "front_end_cpu_share": FRONT_END_CPU, "front_end_cpu_share_median": cpu, "startup_seconds": starts, "startup_median": statistics.median(starts),
    }
    path = write_results("tui-overhead", result)
    print(f"front end CPU while training: headless {cpu['headless']:.1%}, TUI {cpu['tui']:.1%} of a core (medians)")
    print(f"TUI attached keeps {ratio:.1%} of headless throughput (medians of {args.repeats}; "
          f"{paired:.1%} as the median of paired runs); "
          f"dashboard start-up {result['startup_median']:.2f} s (median of 5) → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
