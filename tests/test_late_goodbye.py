"""A clean run whose last goodbyes reach the launcher only after mpiexec's exit is still a clean run.

mpiexec can exit (and be reaped) a moment before the kernel hands the launcher the ranks' last frames.
Here a small stand-in for mpiexec, a real executable, starts real rank clients (the engine's own
Reporter over real TCP, with the run's token) that say hello, then wait until the launcher has reaped
mpiexec before they say goodbye and hang up.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import psutil
import pytest

from engine import events as ev
from tests.conftest import REPO, assert_no_process_left, run_launcher, run_pids, tiny_config

pytestmark = pytest.mark.timeout(60)

CLIENT = f"""
import os, sys, time
sys.path.insert(0, {str(REPO)!r})
import psutil
from engine import events as ev
from engine.events import ENDPOINT_ENV, TOKEN_ENV
from engine.reporter import Reporter, connect_sink, hello

rank, size, mpiexec = map(int, sys.argv[1:4])
reporter = Reporter(connect_sink(os.environ[ENDPOINT_ENV]), rank)
hello(reporter, os.environ[TOKEN_ENV], size, "cpu", "local", [rank], 1)
print("said hello", flush=True)
while psutil.pid_exists(mpiexec):  # a zombie still exists: this waits until the launcher has reaped it
    time.sleep(0.005)
time.sleep(0.2)
reporter.send(ev.Goodbye())
reporter.sink.close()
"""

FAKE_MPIEXEC = """#!{python}
import os, subprocess, sys, time
size = int(sys.argv[sys.argv.index("-n") + 1])
ranks = [subprocess.Popen([sys.executable, {client!r}, str(rank), str(size), str(os.getpid())],
                          stdout=subprocess.PIPE, text=True) for rank in range(size)]
for rank in ranks:
    assert rank.stdout.readline() == "said hello\\n"
time.sleep(1.5)  # the launcher checks each hello came from a process below mpiexec while mpiexec still runs
sys.exit(0)  # every rank is still connected, its goodbye not yet sent
"""


def test_goodbyes_that_arrive_after_mpiexec_exited_still_finish_the_run(tmp_path: Path) -> None:
    client = tmp_path / "rank_client.py"
    client.write_text(CLIENT)
    mpiexec = tmp_path / "mpiexec"
    mpiexec.write_text(FAKE_MPIEXEC.format(python=sys.executable, client=str(client)))
    mpiexec.chmod(0o755)

    events, launcher = run_launcher(tiny_config(tmp_path), mpiexec=str(mpiexec))

    assert launcher.returncode == 0
    assert launcher.status == "finished", launcher.reason
    assert [e.type for e in events].count("hello") == 2
    assert sorted(e.rank for e in events if isinstance(e, ev.Goodbye)) == [0, 1]
    assert isinstance(events[-1], ev.RunDone) and events[-1].status == "finished"
    # The ranks outlived the stand-in mpiexec; the launcher's SIGKILL to its process group lands asynchronously.
    ranks = []
    for pid in run_pids(events):
        with contextlib.suppress(psutil.NoSuchProcess):
            ranks.append(psutil.Process(pid))
    psutil.wait_procs(ranks, timeout=10)
    assert_no_process_left(run_pids(events))
