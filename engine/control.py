"""Requests from the launcher to the ranks while a run trains: stop a member, restart a diverged one with a
lower learning rate, and which ranks are stragglers.

The socket carries events one way (ranks → launcher), so requests travel the other way as lines appended
to `control.jsonl` in the run folder: one writer (the launcher), any number of readers, each remembering how
far it has read, and a file a resume or a replay can still read to see what was asked. Ranks look at it
when they report a step (a `stat` a few times a second); rank 0's member queue looks at it before each grant.

Torch-free: the launcher (ens_tui) writes it, the ranks (engine) read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.run_folder import RunFolder

MIN_LR_FACTOR = 1e-4


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StopMember(_Request):
    """End member `member`'s training after the step in progress; it keeps what it has learned."""

    action: Literal["stop"] = "stop"
    member: int = Field(ge=0)


class RestartMember(_Request):
    """Train diverged member `member` again from its initial weights, at `lr_factor` × the run's learning rate."""

    action: Literal["restart"] = "restart"
    member: int = Field(ge=0)
    lr_factor: float = Field(gt=MIN_LR_FACTOR, lt=1.0)


class Stragglers(_Request):
    """The ranks flagged as stragglers now (the whole set: an empty list clears every flag)."""

    action: Literal["stragglers"] = "stragglers"
    ranks: list[int] = Field(default_factory=list)


Request = StopMember | RestartMember | Stragglers
_adapter: TypeAdapter[Request] = TypeAdapter(Request)


def append(folder: RunFolder, request: Request) -> None:
    """Add one request (the launcher is the only writer; one `write` of one line, so a reader never sees half)."""
    line = (request.model_dump_json() + "\n").encode()
    fd = os.open(folder.control, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@dataclass
class ControlReader:
    """One reader's view of the requests: what has been asked so far, read incrementally."""

    folder: RunFolder
    offset: int = 0
    stops: set[int] = field(default_factory=set)
    restarts: dict[int, float] = field(default_factory=dict)
    """Member → learning-rate factor, for every restart asked for (the latest one per member)."""
    stragglers: set[int] = field(default_factory=set)
    _size: int = -1

    def poll(self) -> list[Request]:
        """The requests appended since the last poll (none without a `read` when the file has not grown)."""
        try:
            size = os.stat(self.folder.control).st_size
        except OSError:
            return []
        if size == self._size:
            return []
        self._size = size
        with open(self.folder.control, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = [r for line in data[:end].splitlines() if (r := parse(line)) is not None]
        for request in new:
            self._fold(request)
        return new

    def _fold(self, request: Request) -> None:
        if isinstance(request, StopMember):
            self.stops.add(request.member)
        elif isinstance(request, RestartMember):
            self.restarts[request.member] = request.lr_factor
            self.stops.discard(request.member)
        else:
            self.stragglers = set(request.ranks)


def parse(line: bytes | str) -> Request | None:
    """One request line; None for anything else (a reader never fails on the file)."""
    try:
        data: Any = json.loads(line)
        return _adapter.validate_python(data)
    except (ValueError, ValidationError):
        return None
