"""The `ens-tui` command.

    ens-tui [CONFIG.toml …]                 the dashboard; the configs given are listed first
    ens-tui --run-config CONFIG.toml        the same run headless (Rich live display), exit code = outcome
    ens-tui --resume runs/<run-id>          continue an interrupted or failed run (where and how it runs, and
                                            more epochs, may change; what the saved members mean may not)
    ens-tui extend runs/<run-id> --members N  train more members of a finished run (N = the new total); the
                                            report is rewritten for all N, the trained members kept as they are
    ens-tui show runs/<run-id>              replay a finished or failed run and its report; follow a running one
    ens-tui runs [DIR]                      every run under DIR (default ./runs): sort, compare, replay, delete
    ens-tui predict RUN INPUT…              the trained ensemble's answer, with its uncertainty, for new inputs
    ens-tui export RUN --format torchscript one self-contained module: raw images in, probabilities out
    ens-tui cache clear                     remove decoded image folders kept to start the next run fast
    ens-tui bench [options]                 the seed's benchmark table (see `ens-tui bench --help`)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from engine.config import OVERRIDES, ConfigError, RunConfig, load_config, resume_overrides, with_overrides
from engine.run_folder import RunFolder, is_run_dir
from engine.usage import EXIT_USAGE, OneLineParser


def _presets_epilog(width: int | None = None) -> str:
    """The setups the dashboard lists (built-ins, then ./configs/), one line each: name and what it is."""
    from ens_tui.presets import discover

    presets = discover()
    width = width or shutil.get_terminal_size().columns
    subcommands = textwrap.fill("Subcommands: ens-tui show RUN_DIR replays a run; ens-tui runs [DIR] browses runs; "
                                "ens-tui extend RUN_DIR --members N grows a finished ensemble; "
                                "ens-tui bench --help benchmarks.", width - 2)
    if not presets:
        return subcommands
    column = max(len(p.name) for p in presets)
    lines = ["presets (the setup screen lists them; the overrides above apply to each):"]
    for preset in presets:
        mark = "  (./configs)" if preset.source == "local" else ""
        room = max(width - column - 6 - len(mark), 20)
        lines.append(f"  {preset.name:<{column}}  {textwrap.shorten(preset.description, room, placeholder=' …')}{mark}")
    return "\n".join(lines) + "\n\n" + subcommands


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ens-tui", description="Train a deep ensemble on MPI ranks and watch it live.",
        epilog=_presets_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("configs", nargs="*", type=Path, help="config files to list first in the dashboard")
    parser.add_argument("--run-config", type=Path, metavar="TOML", help="run this config headless (no dashboard)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --run-config or --resume: validate and show the plan, launch nothing")
    honoured = ", ".join(o.flag for o in OVERRIDES if o.resume == "honour")
    grown = ", ".join(f"a larger {o.flag}" for o in OVERRIDES if o.resume == "grow")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted or failed run from each member's last completed epoch "
                             f"({honoured}, {grown} and the MPI options apply; other overrides are refused)")
    over = parser.add_argument_group("overrides (applied to the config)")
    for o in OVERRIDES:
        if o.type is bool:
            over.add_argument(o.flag, action="store_true", default=None, help=o.help)
            continue
        choices = o.choices()
        # Choices are checked by the config (one line naming the field), argparse only lists them.
        metavar = "{" + ",".join(choices) + "}" if choices else None
        over.add_argument(o.flag, type=o.type, metavar=metavar, help=o.help)
    mpi = parser.add_argument_group("MPI")
    mpi.add_argument("--mpiexec", help="mpiexec to use (default: $ENS_TUI_MPIEXEC, the mpich wheel's, PATH)")
    mpi.add_argument("--bind", default="127.0.0.1",
                     help="address the progress socket listens on (default loopback; see README before changing)")
    mpi.add_argument("--hostfile", help="hostfile passed to mpiexec to spread ranks over nodes")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides given on the command line, by keyword (absent ones left out)."""
    given = {o.dest: getattr(args, o.dest) for o in OVERRIDES}
    return {key: value for key, value in given.items() if value is not None}


def _error(message: str) -> int:
    """Each line of `message` (a config names all its problems at once) as its own `ens-tui:` line; exit 2."""
    for line in message.splitlines() or [""]:
        print(f"ens-tui: {line}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The benchmark imports torch, so it runs in the engine's own process.
        return subprocess.call([sys.executable, "-m", "bench.seed_workload", *argv[1:]])
    if argv[:1] in (["predict"], ["export"]):
        # Both load the members (torch), so they too run in an engine process.
        return subprocess.call([sys.executable, "-m", f"engine.{argv[0]}", *argv[1:]])
    if argv[:1] == ["cache"]:
        return _cache(argv[1:])
    if argv[:1] == ["show"]:
        return _show(argv[1:])
    if argv[:1] == ["runs"]:
        return _runs(argv[1:])
    if argv[:1] == ["extend"]:
        return _extend(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            return _resume(args)
        if args.run_config is not None:
            config = with_overrides(load_config(args.run_config), **_overrides(args))
            if args.dry_run:
                return _dry_run(config, args.mpiexec, hostfile=args.hostfile)
            from ens_tui.headless import run_headless

            return run_headless(config, mpiexec=args.mpiexec, bind=args.bind, hostfile=args.hostfile)
        if args.dry_run:
            return _error("--dry-run needs --run-config TOML or --resume RUN_DIR (the dashboard checks a setup "
                          "when it launches)")
        overrides = _overrides(args)
        # Fail fast, before the screen takes over: the configs given, each with the overrides every listed
        # setup gets (with none given, the defaults show whether the overrides are valid at all).
        configs = [load_config(path) for path in args.configs]
        for config in configs or [RunConfig()]:
            with_overrides(config, **overrides)
    except ConfigError as err:
        return _error(str(err))
    from ens_tui.app import run_app

    return run_app(list(args.configs), mpiexec=args.mpiexec, show=None, overrides=overrides)


def _resume(args: argparse.Namespace) -> int:
    """Continue a run folder with the overrides a resume can honour; anything else is refused, the folder untouched.

    The ranks read the folder's config.toml, so the launcher rewrites it (atomically, just before it starts
    them) when an honoured override changed it; a refusal or a dry run writes nothing. A config.toml edited
    since the members were trained, or a checkpoint that would not load, is refused before launch.
    """
    from engine.fingerprint import resume_problem
    from ens_tui.rundir import RunDirError, check_resumable, run_status

    if args.run_config is not None or args.configs:
        return _error("--resume continues a run with its own config.toml; drop --run-config and config paths")
    folder = RunFolder(args.resume)
    try:
        info = check_resumable(folder.path)
        saved = load_config(folder.config)
        config = resume_overrides(saved, **_overrides(args))
    except (RunDirError, ConfigError) as err:
        return _error(str(err))
    if problem := resume_problem(folder.path, config):
        return _error(problem)
    if args.dry_run:
        changes = _changes(saved, config)
        status, reason = run_status(folder.path, info)
        print(f"would resume {folder.path} ({status}{f': {reason}' if reason else ''}); "
              + (f"config.toml changes: {'; '.join(changes)}" if changes else "config.toml unchanged"))
        return _dry_run(config, args.mpiexec, run_dir=folder.path, hostfile=args.hostfile)
    from ens_tui.headless import run_headless

    return run_headless(config, mpiexec=args.mpiexec, bind=args.bind, hostfile=args.hostfile, resume=folder.path)


def _extend(argv: list[str]) -> int:
    """`ens-tui extend RUN --members N`: a finished run grows to N members, launched as a resume is.

    Every check comes first (rundir.plan_extension), so a refusal or a dry run writes nothing; the launcher then
    raises `train.members` in config.toml and records the extension in run.json as it starts the ranks.
    """
    from ens_tui.rundir import RunDirError, plan_extension

    parser = OneLineParser(
        prog="ens-tui extend",
        description="Train members M … N−1 of a finished run of M, each exactly the member a fresh run of N would "
                    "train; the trained members' checkpoints are kept as they are and the report is rewritten for all N.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder (runs/<run-id>)")
    parser.add_argument("--members", type=int, required=True, metavar="N", help="the new total number of members")
    parser.add_argument("--dry-run", action="store_true", help="check and show the plan, launch nothing")
    parser.add_argument("--mpiexec", help="mpiexec to use (default: $ENS_TUI_MPIEXEC, the mpich wheel's, PATH)")
    parser.add_argument("--bind", default="127.0.0.1", help="address the progress socket listens on")
    parser.add_argument("--hostfile", help="hostfile passed to mpiexec to spread ranks over nodes")
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    try:
        plan = plan_extension(folder.path, args.members)
    except RunDirError as err:
        return _error(str(err))
    if args.dry_run:
        first, last = plan.members, plan.config.train.members - 1
        trains = f"member {first}" if first == last else f"members {first} … {last}"
        print(f"would extend {folder.path} from {plan.members} to {args.members} members: train {trains}, keep the "
              f"{plan.members} trained as they are, rewrite the report for all {args.members}; config.toml changes: "
              + "; ".join(_changes(plan.saved, plan.config)))
        return _dry_run(plan.config, args.mpiexec, run_dir=folder.path, hostfile=args.hostfile)
    from ens_tui.headless import run_headless

    return run_headless(plan.config, mpiexec=args.mpiexec, bind=args.bind, hostfile=args.hostfile, resume=folder.path,
                        extend=True)


def _changes(before: RunConfig, after: RunConfig) -> list[str]:
    """`section.field old → new` for every top-level field of each section that differs."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    out = []
    for key in new:
        if isinstance(new[key], dict):
            out += [f"{key}.{f} {old[key][f]!r} → {v!r}" for f, v in new[key].items() if old[key][f] != v]
        elif old[key] != new[key]:
            out.append(f"{key} {old[key]!r} → {new[key]!r}")
    return out


def _dry_run(config: RunConfig, mpiexec: str | None, run_dir: Path | None = None, hostfile: str | None = None) -> int:
    """Everything a launch would check and do, short of starting ranks (or writing anything)."""
    from engine.estimate import estimate_line
    from engine.preflight import oversubscription
    from ens_tui.launcher import LaunchError, find_mpiexec, mpiexec_command, setup_problem
    from ens_tui.rundir import output_dir_problem

    problem = setup_problem(config, probe=True, progress=lambda line: print(line, file=sys.stderr), hostfile=hostfile)
    if run_dir is None:
        problem = problem or output_dir_problem(Path(config.output_dir))
    if problem:
        return _error(problem)
    try:
        found = find_mpiexec(mpiexec)
    except LaunchError as err:
        return _error(str(err))
    p, t = config.parallel, config.train
    print(f"{config.name}: {t.members} × {config.model.name} on {config.data.dataset}, {t.epochs} epoch(s), "
          f"batch {t.batch_size}, {t.optimizer} lr {t.lr}")
    print(f"strategy {p.strategy}, placement {p.placement}, {p.world_size} rank(s): {', '.join(p.rank_devices())}, "
          f"{p.threads_per_rank} thread(s) each" + (", deterministic" if p.deterministic else ""))
    print(f"estimated wall time: {estimate_line(config, allow_probe=True)}")
    if (crowded := oversubscription(config, hostfile)) is not None:
        print(f"warning: {crowded}")
    target = run_dir if run_dir is not None else f"{config.output_dir}/<run-id>"
    print(f"would run: {shlex.join(mpiexec_command(found, config, target, hostfile))}")
    return 0


def _cache(argv: list[str]) -> int:
    """`ens-tui cache clear`: the decoded image folders go; the next run of each decodes it again."""
    from engine.image_cache import cache_dir, clear_cache

    parser = OneLineParser(prog="ens-tui cache", description=f"Decoded image folders kept under {cache_dir()}.")
    parser.add_argument("action", choices=["clear"], help="clear: remove every cached image folder")
    parser.parse_args(argv)
    count, size = clear_cache()
    print(f"removed {count} cached image folder(s), {size / 2**20:.1f} MiB, from {cache_dir()}")
    return 0


def _show(argv: list[str]) -> int:
    parser = OneLineParser(prog="ens-tui show", description="Replay a finished or failed run.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    folder = RunFolder(args.run_dir)
    if not is_run_dir(folder.path):
        return _error(f"{folder.path}: not a run folder (expected {folder.info.name} and {folder.config.name} inside)")
    if folder.events.exists() and not folder.events.is_file():
        return _error(f"{folder.events}: not a file, nothing to replay")
    if not folder.events.is_file():
        return _error(f"{folder.path}: no {folder.events.name} to replay (its ranks never started); "
                      f"see {folder.info.name} and {folder.mpiexec_log.name}")
    from ens_tui.app import run_app

    return run_app([], mpiexec=None, show=args.run_dir)


def _runs(argv: list[str]) -> int:
    """`ens-tui runs [DIR]`: the runs browser; `--list` prints the same rows as a plain table, one line per run."""
    parser = OneLineParser(prog="ens-tui runs", description="Browse the run folders under an output dir.")
    parser.add_argument("where", nargs="?", type=Path, default=Path("runs"), metavar="DIR",
                        help="a folder of runs, or a config .toml whose output_dir to browse (default: ./runs)")
    parser.add_argument("--list", action="store_true", help="print the runs as a table instead of opening the app")
    args = parser.parse_args(argv)
    output_dir = args.where
    if output_dir.suffix == ".toml" and output_dir.is_file():
        try:
            output_dir = Path(load_config(output_dir).output_dir)
        except ConfigError as err:
            return _error(str(err))
    from ens_tui import runs_index

    if problem := runs_index.output_dir_problem(output_dir):
        return _error(problem)
    if not args.list:
        from ens_tui.app import run_app

        return run_app([], mpiexec=None, show=None, runs=output_dir)
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("status", no_wrap=True)
    table.add_column("run", no_wrap=True)
    for column in runs_index.COLUMNS[1:]:
        table.add_column(column.label, no_wrap=True, justify="right" if column.numeric else "left")
    table.add_column("note", no_wrap=True)
    for run in runs_index.scan(output_dir):
        table.add_row(run.shown_status, run.id, *(run.cell(c.key) for c in runs_index.COLUMNS[1:]), run.note)
    # As wide as the rows need (a script reads one line per run, never a wrapped or cut one), no colours.
    console = Console(width=100_000, color_system=None)
    with console.capture() as captured:
        console.print(table)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
