"""How a rank tells the launcher what it is doing: typed events over its own TCP connection.

The reporter is one implementation of the trainer's hooks; the loop never prints. Step and util
events are throttled to a few per second so reporting never slows training.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from engine import events as ev

if TYPE_CHECKING:
    from engine.member import Member
    from engine.utilization import ProcessSampler

STEP_INTERVAL_S = 0.25


class Sink:
    """Where encoded frames go: a socket to the launcher, or a stream when run without one."""

    def __init__(self, sock: socket.socket | None = None, stream: IO[bytes] | None = None) -> None:
        self.sock, self.stream = sock, stream
        self.lock = threading.Lock()

    def write(self, frame: bytes) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.sendall(frame)
            elif self.stream is not None:
                self.stream.write(frame)
                self.stream.flush()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.sock.close()


def connect_sink(endpoint: str | None, timeout: float = 10.0) -> Sink:
    """Connect to `host:port`; without an endpoint, frames go to stdout (for a user's own mpiexec)."""
    if not endpoint:
        return Sink(stream=sys.stdout.buffer)
    host, _, port = endpoint.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return Sink(sock=sock)


class Reporter:
    """Sends one rank's events; also the trainer's `Hooks`."""

    def __init__(self, sink: Sink, rank: int, device: str = "cpu", epochs: int = 1) -> None:
        self.sink, self.rank, self.device, self.epochs = sink, rank, device, epochs
        self.greeted = False
        self._last_step: dict[int, float] = {}

    def send(self, event: ev._Event) -> None:
        event = event.model_copy(update={"rank": self.rank})
        self.sink.write(ev.encode(event))

    def log(self, message: str, level: str = "info") -> None:
        self.send(ev.Log(level=level, message=message))  # type: ignore[arg-type]

    # --- Hooks -------------------------------------------------------------------------------
    def wants_step(self, member: int) -> bool:
        now = time.monotonic()
        if now - self._last_step.get(member, 0.0) >= STEP_INTERVAL_S:
            self._last_step[member] = now
            return True
        return False

    def on_member_start(self, member: int, device: str = "") -> None:
        self.send(ev.MemberStart(member=member, device=device or self.device))

    def on_step(
        self, member: int, epoch: int, step: int, steps: int, loss: float, samples_per_s: float, fused: int
    ) -> None:
        self.send(
            ev.Step(
                member=member, epoch=epoch, step=step, steps=steps, loss=loss, samples_per_s=samples_per_s,
                fused=fused,
            )
        )

    def on_epoch_end(
        self, member: int, epoch: int, train_loss: float, val: tuple[float, float] | None, seconds: float
    ) -> None:
        self.send(
            ev.Epoch(
                member=member, epoch=epoch, epochs=self.epochs, train_loss=train_loss,
                val_accuracy=val[0] if val else None, val_nll=val[1] if val else None, seconds=seconds,
            )
        )
        if not math.isfinite(train_loss):
            self.log(f"member {member} diverged in epoch {epoch + 1} (loss {train_loss}); it is stopped", "warning")

    def on_member_done(self, member: Member, seconds: float, checkpoint: Path | None) -> None:
        self.send(
            ev.MemberDone(
                member=member.index, seconds=seconds, val_accuracy=member.last_val[0] if member.last_val else None,
                diverged=member.diverged, stopped=member.stopped, checkpoint=str(checkpoint) if checkpoint else None,
            )
        )


def hello(reporter: Reporter, token: str, size: int, device: str, strategy: str, members: list[int], threads: int) -> None:
    """The first frame: proves the token, says who this rank is."""
    reporter.greeted = True
    reporter.send(
        ev.Hello(
            token=token, size=size, host=socket.gethostname(), pid=os.getpid(), device=device, strategy=strategy,
            members=members, threads=threads,
        )
    )


class UtilSampler(threading.Thread):
    """Samples this process's CPU and memory (and its GPU via NVML) about once a second.

    A reading that fails (an NVML error, a psutil one) is reported once as a warning and sampling goes
    on without the GPU part; only a second failure without it, or a closed socket, ends the thread.
    """

    def __init__(
        self, reporter: Reporter, gpu_index: int | None, interval: float = 1.0, sampler: ProcessSampler | None = None,
    ) -> None:
        super().__init__(name="util-sampler", daemon=True)
        self.reporter, self.gpu_index, self.interval = reporter, gpu_index, interval
        self.sampler = sampler
        self.stopped = threading.Event()

    def run(self) -> None:
        from engine.utilization import ProcessSampler

        sampler = self.sampler or ProcessSampler(self.gpu_index)
        try:
            while not self.stopped.wait(self.interval):
                try:
                    reading = sampler.sample()
                except Exception as err:  # noqa: BLE001 - any reading error is reported, never fatal to training
                    if sampler.gpu is None:
                        self.reporter.log(f"utilization sampling stopped: {err!r}", "warning")
                        return
                    sampler.gpu = None
                    self.reporter.log(f"GPU utilization sampling failed ({err!r}); going on with CPU and memory only",
                                      "warning")
                    continue
                self.reporter.send(ev.Util(**reading))
        except OSError:
            return  # the launcher's socket is gone: nobody is listening any more

    def stop(self) -> None:
        self.stopped.set()
