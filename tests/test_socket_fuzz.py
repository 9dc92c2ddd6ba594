"""Property-based abuse of the progress socket: random and mutated frames never crash it or reach the run."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.predictions import load_predictions
from engine.run_folder import RunFolder
from ens_tui.server import Disconnected, EventServer
from tests.conftest import run_launcher, tiny_config

TOKEN = "t" * 64
STOLEN = "<the run's token>"
"""Stands in for the real token in frames drawn before the run, which has none yet."""
GENUINE = [
    ev.to_dict(ev.Step(rank=0, member=0, epoch=0, step=3, steps=10, loss=0.5, samples_per_s=100.0)),
    ev.to_dict(ev.Epoch(rank=0, member=1, epoch=0, epochs=2, train_loss=0.4, val_accuracy=0.9, seconds=1.0)),
    ev.to_dict(ev.Util(rank=0, cpu_percent=99.0, rss_mb=300.0)),
    ev.to_dict(ev.Log(rank=0, level="info", message="hi")),
    ev.to_dict(ev.Hello(rank=0, token=TOKEN, size=2, host="h", pid=1, device="cpu", strategy="local", members=[0])),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A genuine-looking event with one field changed, dropped or added, or its type swapped."""
    event: dict[str, Any] = dict(draw(st.sampled_from(GENUINE)))
    key = draw(st.sampled_from([*event, "extra", "type", "rank", "member"]))
    action = draw(st.sampled_from(["set", "drop"]))
    if action == "drop":
        event.pop(key, None)
    else:
        event[key] = draw(json_values | st.sampled_from(["step", "hello", "run_done", 10**9, -1, "NaN"]))
    try:
        return json.dumps(event).encode() + b"\n"
    except ValueError:
        return b"{}\n"


frames = st.one_of(
    mutated(),
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode() + b"\n"),
    st.just(b"x" * (ev.MAX_FRAME_BYTES + 100) + b"\n"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=40))
def test_after_a_valid_hello_only_valid_in_range_events_come_through(batch: list[bytes]) -> None:
    async def scenario() -> list[object]:
        server = EventServer(TOKEN, size=2, members=2)
        endpoint = await server.start()
        host, _, port = endpoint.rpartition(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(json.dumps(GENUINE[-1]).encode() + b"\n" + b"".join(batch))
        await writer.drain()
        writer.close()
        out: list[object] = []
        while not (out and isinstance(out[-1], Disconnected)):
            out.append(await asyncio.wait_for(server.queue.get(), 5))
        await server.close()
        return out

    out = asyncio.run(scenario())
    events = out[:-1]
    assert isinstance(events[0], ev.Hello)
    for event in events[1:]:
        assert not isinstance(event, ev.Hello | ev.RunDone)
        assert event.rank == 0
        assert getattr(event, "member", 0) < 2


@pytest.mark.mpi
def test_five_thousand_hostile_frames_during_a_real_run_change_nothing(tmp_path: Path) -> None:
    sections = {"data": {"limit": None}, "train": {"epochs": 2}, "model": {"name": "lenet5"}}
    # Hypothesis draws the hostile traffic up front, so none of its work competes with the live window.
    batches: list[bytes] = []
    sent: list[int] = []
    openers = {"none": b"", "forged": json.dumps({**GENUINE[-1], "token": "0" * 64}).encode() + b"\n",
               "stolen": json.dumps({**GENUINE[-1], "token": STOLEN}).encode() + b"\n"}

    @settings(max_examples=125, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(frames, min_size=40, max_size=40), st.sampled_from(sorted(openers)))
    def draw(batch: list[bytes], opener: str) -> None:
        # Strangers open with a hello for a genuine rank number, with a wrong token or with the real one
        # (read from mpiexec's environment, as its user can), or skip it.
        batches.append(openers[opener] + b"".join(batch))
        sent.append(len(batch))

    draw()
    assert sum(sent) >= 5000
    stolen = sum(b.startswith(openers["stolen"]) for b in batches)
    assert stolen > 0

    _, quiet = run_launcher(tiny_config(tmp_path / "quiet", **sections))
    config = tiny_config(tmp_path / "noisy", **sections)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(zip(("events", "launcher"), run_launcher(config), strict=True)))
    worker.start()
    runs = Path(config.output_dir)
    endpoint = None
    deadline = time.monotonic() + 60
    while endpoint is None and time.monotonic() < deadline:
        for folder in map(RunFolder, runs.glob("*")):
            if folder.is_run() and folder.events.exists() and folder.events.read_text().count('"hello"') == 2:
                info = json.loads(folder.info.read_text())
                endpoint, token = info["endpoint"], psutil.Process(info["pid"]).environ()[ev.TOKEN_ENV]
        time.sleep(0.05)
    assert endpoint, "the run never started"
    host, _, port = endpoint.rpartition(":")
    for payload in batches:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            try:
                conn.sendall(payload.replace(STOLEN.encode(), token.encode(), 1))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server hung up on us, as it should
    last_sent = time.time()
    worker.join(timeout=120)
    events, noisy = result["events"], result["launcher"]
    assert noisy.status == "finished", noisy.reason
    assert events[-1].t > last_sent, "the noise must land while the ranks train"
    assert sum(noisy.server.dropped.values()) > 0
    assert noisy.server.dropped["not a rank process"] == stolen, noisy.server.dropped
    assert noisy.server.dropped["duplicate hello"] == 0
    assert sum(isinstance(e, ev.Hello) for e in events) == 2
    np.testing.assert_allclose(
        load_predictions(RunFolder(noisy.run_dir).predictions)["sets"]["test"],
        load_predictions(RunFolder(quiet.run_dir).predictions)["sets"]["test"], atol=1e-5,
    )
    recorded = RunFolder(noisy.run_dir).events.read_text().splitlines()
    assert len(recorded) == len(events)
