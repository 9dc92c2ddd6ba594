"""Runs that span hosts: two network-namespace "hosts" on a bridge, each with its own address and hostname,
reached by mpich's hydra through its ssh launcher (a script stands in for ssh) — the way a cluster runs.

Needs root and `ip netns` (CI has both); skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine import events as ev
from engine.config import RunConfig
from engine.predictions import load_predictions
from engine.run_folder import RunFolder
from tests.conftest import run_launcher, tiny_config

pytestmark = [pytest.mark.mpi, pytest.mark.multihost, pytest.mark.timeout(240)]

NSEXEC = """#!/bin/sh
# hydra's ssh launcher runs: THIS [ssh options…] HOST COMMAND; like ssh, run COMMAND through a shell on HOST,
# here inside HOST's network namespace with HOST as its hostname.
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
host=$1; shift
case "$host" in
{cases}
  *) echo "no such host: $host" >&2; exit 255 ;;
esac
"""


@dataclass
class Hosts:
    """Two namespace hosts on one bridge; `mpiexec_args` + `hostfile` + `bind` run a config across them."""

    names: tuple[str, str]
    namespaces: dict[str, str]
    bridge: str
    address: str
    hostfile: Path
    mpiexec_args: list[str]

    def config(self, tmp_path: Path, **sections: object) -> RunConfig:
        parallel = {"mpiexec_args": self.mpiexec_args, **sections.pop("parallel", {})}  # type: ignore[dict-item]
        return tiny_config(tmp_path, parallel=parallel, **sections)  # type: ignore[arg-type]

    def pids(self, host: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.namespaces[host]], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def veth_tx_bytes(self, host: str) -> int:
        """Bytes the bridge sent towards `host` (its veth's peer, on this side)."""
        return int(Path(f"/sys/class/net/{self._veth(host)}/statistics/tx_bytes").read_text())

    def _veth(self, host: str) -> str:
        return f"{self.bridge}v{self.names.index(host)}"


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def make_hosts(tmp_path: Path, *, blind: str | None = None) -> Iterator[Hosts]:
    """Build the hosts (names unique to this test, so parallel runs never collide) and tear them down always.

    `blind`: a host whose ranks see an empty tmpfs where the run folders are (no shared file system).
    """
    if os.geteuid() != 0:
        pytest.skip("network-namespace hosts need root (CI runs as root)")
    if not (shutil.which("ip") and shutil.which("unshare")):
        pytest.skip("needs iproute2's `ip netns` and util-linux's `unshare`")
    tag = secrets.token_hex(3)
    bridge = f"eb{tag}"
    net = f"10.{100 + int(tag[:2], 16) % 100}.{int(tag[2:4], 16)}"
    names = ("h1", "h2")
    namespaces = {h: f"ens-{tag}-{h}" for h in names}
    hosts = Hosts(names, namespaces, bridge, f"{net}.1", tmp_path / "hostfile", [])
    made: list[str] = []
    try:
        try:
            _sh("ip", "link", "add", bridge, "type", "bridge")
        except subprocess.CalledProcessError as err:
            pytest.skip(f"cannot create a bridge here: {err.stderr.decode().strip()}")
        _sh("ip", "addr", "add", f"{hosts.address}/24", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        cases = []
        for i, host in enumerate(names):
            ns = namespaces[host]
            _sh("ip", "netns", "add", ns)
            made.append(ns)
            _sh("ip", "link", "add", hosts._veth(host), "type", "veth", "peer", "name", "eth0", "netns", ns)
            _sh("ip", "link", "set", hosts._veth(host), "master", bridge, "up")
            _sh("ip", "-n", ns, "addr", "add", f"{net}.{11 + i}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Own hostname, own /dev/shm and System V IPC: nothing but the bridge joins two hosts (MPI would
            # otherwise pass messages through shared memory, the same machine underneath).
            hide = f" && mount -t tmpfs tmpfs {tmp_path / 'runs'}" if host == blind else ""
            cases.append(f'  {host}) exec ip netns exec {ns} unshare --uts --ipc --mount sh -c '
                         f'"mount -t tmpfs tmpfs /dev/shm{hide} && hostname {host} && exec $*" ;;')
        script = tmp_path / "nsexec"
        script.write_text(NSEXEC.format(cases="\n".join(cases)))
        script.chmod(0o755)
        hosts.hostfile.write_text("".join(f"{h}:1\n" for h in names))
        hosts.mpiexec_args = ["-launcher", "ssh", "-launcher-exec", str(script), "-iface", bridge]
        (tmp_path / "runs").mkdir(exist_ok=True)
        yield hosts
    finally:
        for ns in made:
            for pid in hosts.pids(next(h for h, n in namespaces.items() if n == ns)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    yield from make_hosts(tmp_path)


@pytest.fixture
def hosts_without_shared_runs(tmp_path: Path) -> Iterator[Hosts]:
    yield from make_hosts(tmp_path, blind="h2")


def across(hosts: Hosts, config: RunConfig, on_event: object = None) -> tuple[list[ev.Event], object]:
    return run_launcher(config, on_event=on_event, bind=hosts.address, hostfile=str(hosts.hostfile))


def leftover(hosts: Hosts) -> list[int]:
    return hosts.pids("h1") + hosts.pids("h2")


@pytest.mark.parametrize("strategy", ["local", "broadcast"])
def test_a_run_spans_two_hosts_and_equals_the_one_host_run(hosts: Hosts, tmp_path: Path, strategy: str) -> None:
    # Two threads per rank: each host has one rank and two cores, so nothing is clamped there, while one
    # host running both ranks must clamp them to one thread each (per-host clamping).
    sections = {"parallel": {"strategy": strategy, "threads_per_rank": 2}, "data": {"limit": 640}}
    forged: list[int] = []

    async def forge_from_the_other_host(event: ev.Event, launcher) -> None:  # noqa: ANN001
        if isinstance(event, ev.Step) and not forged:
            # Someone on host h2 without the token: a hello with a made-up one.
            hello = ev.Hello(token="0" * 64, size=2, rank=0, host="h2", pid=1, device="cpu", strategy=strategy)
            port = int(json.loads(RunFolder(launcher.run_dir).info.read_text())["endpoint"].rpartition(":")[2])
            code = (f"import socket; s = socket.create_connection(({hosts.address!r}, {port}), timeout=5); "
                    f"s.sendall({ev.encode(hello)!r}); s.recv(1)")
            forged.append(subprocess.run(["ip", "netns", "exec", hosts.namespaces["h2"], sys.executable, "-c", code],
                                         capture_output=True, timeout=30).returncode)

    before = hosts.veth_tx_bytes("h2")
    events, launcher = across(hosts, hosts.config(tmp_path / "two", **sections), forge_from_the_other_host)
    crossed = hosts.veth_tx_bytes("h2") - before
    assert launcher.status == "finished", launcher.reason
    assert sorted(e.host for e in events if isinstance(e, ev.Hello)) == ["h1", "h2"], "one rank on each host"
    assert forged and launcher.server.dropped["bad token"] == 1, "the tokenless connection was dropped"
    if strategy == "broadcast":
        # Rank 1 never reads the data: every batch it trained on crossed the bridge.
        train_bytes = int(640 * 0.8 * 0.9) * 28 * 28 * 4
        assert crossed > train_bytes, f"only {crossed} bytes reached h2"

    assert {e.threads for e in events if isinstance(e, ev.Hello)} == {2}
    one_host, alone = run_launcher(tiny_config(tmp_path / "one", **sections))
    assert alone.status == "finished"
    assert {e.threads for e in one_host if isinstance(e, ev.Hello)} == {1}
    ours = load_predictions(RunFolder(launcher.run_dir).predictions)["sets"]["test"]
    reference = load_predictions(RunFolder(alone.run_dir).predictions)["sets"]["test"]
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert leftover(hosts) == [], "no process outlives the run on either host"


def test_losing_a_host_fails_the_run_naming_it(hosts: Hosts, tmp_path: Path) -> None:
    killed_at: list[float] = []

    async def pull_the_plug_on_h2(event: ev.Event, launcher) -> None:  # noqa: ANN001
        if isinstance(event, ev.Step) and not killed_at:
            for pid in hosts.pids("h2"):
                os.kill(pid, signal.SIGKILL)
            killed_at.append(time.monotonic())

    config = hosts.config(tmp_path, data={"limit": 1400}, train={"epochs": 400})
    events, launcher = across(hosts, config, pull_the_plug_on_h2)
    assert killed_at, f"the run ended before it trained: {launcher.status} {launcher.reason}"
    assert time.monotonic() - killed_at[0] < 10 + 3, "failed within 10 s (plus the clean-up grace)"
    assert launcher.status == "failed"
    assert "on h2" in launcher.reason, launcher.reason
    deadline = time.monotonic() + 10
    while leftover(hosts) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover(hosts) == [], "no process left in either namespace"


def test_a_host_that_cannot_see_the_run_folder_fails_at_once_with_the_reason(
        hosts_without_shared_runs: Hosts, tmp_path: Path) -> None:
    hosts = hosts_without_shared_runs
    started = time.monotonic()
    _, launcher = across(hosts, hosts.config(tmp_path))
    assert launcher.status == "failed"
    assert time.monotonic() - started < 60, "it failed, it did not hang"
    assert "h2 cannot see the run folder" in launcher.reason and "share" in launcher.reason, launcher.reason
