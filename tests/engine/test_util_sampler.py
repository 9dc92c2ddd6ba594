"""A rank's utilization thread: a reading that fails is reported once, and training's readings go on."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from engine import events as ev
from engine.reporter import Reporter, Sink, UtilSampler
from engine.utilization import ProcessSampler

pytestmark = pytest.mark.timeout(30)


class NvmlError(Exception):
    """What pynvml raises when the driver goes away mid-run (not an OSError)."""


class FlakyGpuSampler(ProcessSampler):
    """The real process sampler on a 'GPU' whose first `failures` readings fail the way NVML does."""

    def __init__(self, failures: int) -> None:
        super().__init__(gpu_index=None)
        self.gpu = "handle"  # as if NVML had opened a device
        self.failures = failures

    def sample(self) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise NvmlError("NVML_ERROR_GPU_IS_LOST")
        return super().sample()


def frames(stream: io.BytesIO) -> list[ev.Event]:
    return [ev.decode(line) for line in stream.getvalue().splitlines(keepends=True)]


def wait_until(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "the sampler never got there"
        time.sleep(0.01)


def test_a_gpu_reading_that_fails_is_logged_once_and_cpu_readings_go_on() -> None:
    stream = io.BytesIO()
    thread = UtilSampler(Reporter(Sink(stream=stream), rank=1), gpu_index=0, interval=0.01,
                         sampler=FlakyGpuSampler(failures=1))
    thread.start()
    wait_until(lambda: sum(isinstance(f, ev.Util) for f in frames(stream)) >= 3)
    thread.stop()
    thread.join(5)
    assert not thread.is_alive()
    seen = frames(stream)
    assert isinstance(seen[0], ev.Log) and seen[0].level == "warning" and "NVML_ERROR_GPU_IS_LOST" in seen[0].message
    assert all(isinstance(f, ev.Util) and f.rank == 1 and f.gpu_util is None and f.rss_mb > 0 for f in seen[1:])


def test_readings_that_keep_failing_end_the_thread_with_a_second_warning() -> None:
    stream = io.BytesIO()
    thread = UtilSampler(Reporter(Sink(stream=stream), rank=0), gpu_index=0, interval=0.01,
                         sampler=FlakyGpuSampler(failures=10**6))
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "it stops by itself"
    seen = frames(stream)
    assert [(type(f), f.level) for f in seen] == [(ev.Log, "warning"), (ev.Log, "warning")]
    assert "stopped" in seen[1].message
