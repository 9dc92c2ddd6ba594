"""One MPI rank of a run: `mpiexec -n N python -m mpi4py -m engine.worker --run-dir runs/<id>`.

Reads the run's resolved config, trains its share of the members with the configured strategy,
reports over its own socket (ENS_TUI_ENDPOINT / ENS_TUI_TOKEN from the environment; without them,
events go to stdout), and on rank 0 gathers every member's predictions into the report.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import numpy as np

from engine import events as ev
from engine.checkpoint import CheckpointError
from engine.config import ConfigError, RunConfig, load_config
from engine.control import ControlReader
from engine.events import ENDPOINT_ENV, TOKEN_ENV
from engine.placement import announced_members, placement_warning, ranks_on_host
from engine.predictions import predictions_payload, save_predictions
from engine.rank import Outcome, RankContext, resolve_device
from engine.report import NoEnsemble, publish
from engine.reporter import Reporter, UtilSampler, connect_sink, hello
from engine.run_folder import RunFolder
from engine.threads import set_compute_mode

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOENT, errno.EACCES)
"""A full, read-only, vanished or forbidden run folder: the machine's state, not a bug, so no traceback."""


def run_strategy(ctx: RankContext) -> Outcome:
    """Look the strategy module up by name and run it on this rank."""
    module = importlib.import_module(f"engine.strategies.{ctx.config.parallel.strategy}")
    return module.run(ctx)


def finish(ctx: RankContext, outcome: Outcome) -> None:
    """Gather every member's logits on rank 0, save them with the labels they are scored against, write the report."""
    gathered = ctx.comm.gather((outcome.predictions, outcome.diverged, outcome.marks), root=0)
    if ctx.rank != 0 or ctx.run_dir is None:
        return
    per_member: dict[int, dict[str, np.ndarray]] = {}
    diverged: list[int] = []
    marks: dict[int, dict[str, object]] = {}
    for logits, div, marked in gathered:
        per_member.update(logits)
        diverged += [m for m, d in div.items() if d]
        marks.update(marked)
    splits, eval_sets = outcome.splits, outcome.eval_sets
    assert splits is not None and eval_sets is not None, "rank 0 always holds the data"
    payload = predictions_payload(per_member, diverged, splits, eval_sets)
    members = payload["members"]
    if ctx.stopped_early:
        payload["stopped_early"] = {"members": len(members), "reason": ctx.stopped_early}
    if marks:
        payload["marks"] = {m: marks[m] for m in sorted(marks)}
    folder = RunFolder(ctx.run_dir)
    save_predictions(folder.predictions, payload)
    ctx.reporter.send(ev.PredictionsSaved(path=str(folder.predictions), members=members))
    report = publish(folder, payload, ctx.config.report)
    ctx.reporter.send(
        ev.ReportSaved(
            json_path=str(folder.report_json), md_path=str(folder.report_md), accuracy=report.ensemble.accuracy,
            nll=report.ensemble.nll, ece=report.ensemble.ece,
            mutual_information=report.uncertainty.mutual_information,
        )
    )


def run_rank(comm: object, config: RunConfig, run_dir: Path | None, reporter: Reporter, token: str = "") -> Outcome:
    """Everything one rank does, given its communicator (COMM_WORLD under mpiexec, COMM_SELF in tests)."""
    rank, size = comm.Get_rank(), comm.Get_size()  # type: ignore[attr-defined]
    if size != config.parallel.world_size:
        raise RuntimeError(f"config asks for {config.parallel.world_size} rank(s) but mpiexec started {size}")
    devices = config.parallel.rank_devices()
    device = resolve_device(devices[rank], devices, rank)
    reporter.device, reporter.epochs = str(device), config.train.epochs
    ctx = RankContext(comm, config, device, reporter, run_dir)  # type: ignore[arg-type]
    ctx.control = ControlReader(ctx.folder) if ctx.folder is not None else None
    placed = announced_members(ctx)
    # Set threads before hello so it reports the threads really used; warnings can only follow the hello.
    warnings: list[str] = []
    threads = set_compute_mode(config.parallel, ranks_on_host(comm), warnings.append if rank == 0 else None)
    hello(reporter, token, size, str(device), config.parallel.strategy, placed, threads)
    if rank == 0 and (why := placement_warning(ctx)):
        warnings.append(why)
    for message in warnings:
        reporter.log(message, "warning")
    sampler = UtilSampler(reporter, device.index if device.type == "cuda" else None)
    sampler.start()
    try:
        outcome = run_strategy(ctx)
        finish(ctx, outcome)
    finally:
        sampler.stop()
    reporter.send(ev.Goodbye())
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpi4py -m engine.worker", description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder holding config.toml")
    args = parser.parse_args(argv)

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    sink = connect_sink(os.environ.get(ENDPOINT_ENV))
    reporter = Reporter(sink, comm.Get_rank())
    try:
        config = load_config(args.run_dir / "config.toml")
    except ConfigError as err:
        # Most often a host that does not share the run folder's file system: say so, rather than abort mutely.
        hello(reporter, os.environ.get(TOKEN_ENV, ""), comm.Get_size(), "?", "?", [], 1)
        seen = "cannot see the run folder" if not args.run_dir.is_dir() else "cannot read the run's config"
        reporter.send(ev.Error(message=f"{socket.gethostname()} {seen} {args.run_dir} ({err}); every host must "
                                       "share the output folder's file system (see README, Clusters)"))
        sink.close()
        raise
    try:
        run_rank(comm, config, args.run_dir, reporter, os.environ.get(TOKEN_ENV, ""))
    except BaseException as err:
        # Tell the launcher why before `-m mpi4py` turns the exception into MPI_Abort for every rank.
        try:
            if not reporter.greeted:
                devices = config.parallel.rank_devices()
                hello(reporter, os.environ.get(TOKEN_ENV, ""), comm.Get_size(), devices[comm.Get_rank() % len(devices)],
                      config.parallel.strategy, [], config.parallel.threads_per_rank)
            if isinstance(err, NoEnsemble | CheckpointError):  # the run's outcome, not a bug: one line, no traceback
                reporter.send(ev.Error(message=str(err)))
            elif isinstance(err, OSError) and err.errno in DISK_ERRORS:
                where = f" {err.filename}" if err.filename else ""
                reporter.send(ev.Error(message=f"cannot write{where}: {err.strerror}"))
            else:
                reporter.send(ev.Error(message=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()))
        except OSError:
            pass
        raise
    finally:
        sink.close()
    return 0


def exit_now(code: int) -> NoReturn:
    """End a rank whose work is all written and said: finalize MPI, then skip the interpreter's teardown.

    Unloading torch and the rest module by module took about a second per rank (report saved → run done);
    nothing is left to flush but the standard streams. Called by the program's own exit only, never by `main`,
    which also runs in-process. A failure never gets here: `-m mpi4py` turns it into MPI_Abort for every rank.
    """
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
