"""The `ens-tui` command.

    ens-tui [CONFIG.toml …]                 the dashboard; the configs given are listed first
    ens-tui --run-config CONFIG.toml        the same run headless (Rich live display), exit code = outcome
    ens-tui --resume runs/<run-id>          continue an interrupted or failed run
    ens-tui show runs/<run-id>              replay a finished or failed run and its report
    ens-tui bench [options]                 the seed's benchmark table (see `ens-tui bench --help`)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from engine.config import STRATEGIES, ConfigError, RunConfig, load_config, with_overrides

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ens-tui", description="Train a deep ensemble on MPI ranks and watch it live.",
        epilog="Subcommands: `ens-tui show RUN_DIR` replays a run; `ens-tui bench --help` benchmarks.",
    )
    parser.add_argument("configs", nargs="*", type=Path, help="config files to list first in the dashboard")
    parser.add_argument("--run-config", type=Path, metavar="TOML", help="run this config headless (no dashboard)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --run-config: validate and show the plan (ranks, devices, command), launch nothing")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted or failed run from each member's last completed epoch")
    over = parser.add_argument_group("overrides (applied to the config)")
    over.add_argument("--ranks", help="N (CPU ranks) or device:count[,…], e.g. cpu:2,cuda:1")
    over.add_argument("--members", type=int)
    over.add_argument("--epochs", type=int)
    over.add_argument("--batch-size", type=int)
    over.add_argument("--strategy", choices=STRATEGIES)
    over.add_argument("--dataset")
    over.add_argument("--data-root", help="torchvision root of the file-backed datasets")
    over.add_argument("--limit", type=int, help="use at most this many training samples")
    over.add_argument("--output-dir", help="where run folders go (default: the config's output_dir)")
    over.add_argument("--seed", type=int)
    mpi = parser.add_argument_group("MPI")
    mpi.add_argument("--mpiexec", help="mpiexec to use (default: $ENS_TUI_MPIEXEC, the mpich wheel's, PATH)")
    mpi.add_argument("--bind", default="127.0.0.1",
                     help="address the progress socket listens on (default loopback; see README before changing)")
    mpi.add_argument("--hostfile", help="hostfile passed to mpiexec to spread ranks over nodes")
    return parser


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace, path: Path | None) -> RunConfig:
    config = load_config(path) if path is not None else RunConfig()
    return with_overrides(
        config, ranks=args.ranks, members=args.members, epochs=args.epochs, batch_size=args.batch_size,
        strategy=args.strategy, dataset=args.dataset, data_root=args.data_root, limit=args.limit,
        output_dir=args.output_dir, seed=args.seed,
    )


def _error(message: str) -> int:
    print(f"ens-tui: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The benchmark imports torch, so it runs in the engine's own process.
        return subprocess.call([sys.executable, "-m", "engine.bench", *argv[1:]])
    if argv[:1] == ["show"]:
        return _show(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            from ens_tui.headless import run_headless
            from ens_tui.rundir import RunDirError, check_resumable

            try:
                check_resumable(args.resume)
            except RunDirError as err:
                return _error(str(err))
            config = load_config(args.resume / "config.toml")
            return run_headless(config, mpiexec=args.mpiexec, bind=args.bind, hostfile=args.hostfile,
                                resume=args.resume)
        if args.run_config is not None:
            config = _config(parser, args, args.run_config)
            if args.dry_run:
                return _dry_run(config, args.mpiexec)
            from ens_tui.headless import run_headless

            return run_headless(config, mpiexec=args.mpiexec, bind=args.bind, hostfile=args.hostfile)
        for path in args.configs:
            load_config(path)  # fail fast, before the screen takes over
    except ConfigError as err:
        return _error(str(err))
    from ens_tui.app import run_app

    return run_app(list(args.configs), mpiexec=args.mpiexec, show=None)


def _dry_run(config: RunConfig, mpiexec: str | None) -> int:
    """Everything a launch would check and do, short of starting ranks."""
    from ens_tui.launcher import LaunchError, find_mpiexec, setup_problem

    problem = setup_problem(config)
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
          f"{p.threads_per_rank} thread(s) each")
    print(f"would run: {found} -n {p.world_size} {sys.executable} -m mpi4py -m engine.worker --run-dir "
          f"{config.output_dir}/<run-id>")
    return 0


def _show(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ens-tui show", description="Replay a finished or failed run.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    from ens_tui.rundir import is_run_dir

    if not is_run_dir(args.run_dir):
        return _error(f"{args.run_dir}: not a run folder (expected run.json and config.toml inside)")
    from ens_tui.app import run_app

    return run_app([], mpiexec=None, show=args.run_dir)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
