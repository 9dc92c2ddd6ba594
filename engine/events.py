"""The wire format between ranks and the launcher: newline-delimited JSON, one typed event per line.

Imported by the engine (to send) and by the UI (to validate and render), so it imports neither torch
nor textual. Every event carries `rank` (None for events the launcher itself produces) and `t`
(seconds since the epoch, stamped by the sender).
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from engine.report_model import SizeLaw, SizePoint

MAX_FRAME_BYTES = 64 * 1024
ENDPOINT_ENV = "ENS_TUI_ENDPOINT"
"""Where ranks connect (`host:port`), set by the launcher in each rank's environment."""
TOKEN_ENV = "ENS_TUI_TOKEN"
"""The per-run secret a rank proves in its hello; passed by environment, never on the command line."""
MULTILINE_FIELDS = frozenset({"message", "traceback", "reason"})
"""Text fields that keep their line breaks and tabs; every other text field is one line."""

_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[\t\n]")


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` without terminal control: escape sequences, C0 controls, DEL and C1 go; line breaks and tabs
    stay where `multiline`, else become spaces."""
    if text.isprintable():
        return text
    text = _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
    return text if multiline else _LINE_BREAK.sub(" ", text)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    rank: int | None = Field(None, ge=0)
    t: float = Field(default_factory=time.time)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any, info: ValidationInfo) -> Any:
        """Every text a peer sends ends up on a terminal (dashboard, headless view, log): none may drive it."""
        return printable(value, multiline=info.field_name in MULTILINE_FIELDS) if isinstance(value, str) else value


class Hello(_Event):
    """First frame of every rank connection: proves the run token and says who the rank is."""

    type: Literal["hello"] = "hello"
    token: str
    size: int = Field(ge=1)
    host: str
    pid: int
    device: str
    strategy: str
    members: list[int] = Field(default_factory=list)
    threads: int = 1


class MemberStart(_Event):
    """A rank begins training a member (placement is visible here, also for dynamic queues)."""

    type: Literal["member_start"] = "member_start"
    member: int = Field(ge=0)
    device: str


class Step(_Event):
    """Throttled training progress of one member (a few per second at most)."""

    type: Literal["step"] = "step"
    member: int = Field(ge=0)
    epoch: int = Field(ge=0)
    step: int = Field(ge=0)
    steps: int = Field(ge=1)
    loss: float
    samples_per_s: float = Field(ge=0)
    fused: int = Field(1, ge=1)
    """How many members this step trained at once (fused strategy); throughput counts each once."""


class Epoch(_Event):
    """End of one epoch of one member, with validation metrics."""

    type: Literal["epoch"] = "epoch"
    member: int = Field(ge=0)
    epoch: int = Field(ge=0)
    epochs: int = Field(ge=1)
    train_loss: float
    val_accuracy: float | None = None
    val_nll: float | None = None
    seconds: float = Field(ge=0)


class Util(_Event):
    """Resource use of one rank's process (and its GPU, when it has one)."""

    type: Literal["util"] = "util"
    cpu_percent: float = Field(ge=0)
    rss_mb: float = Field(ge=0)
    system_cpu_percent: float | None = None
    gpu_index: int | None = None
    gpu_util: float | None = None
    gpu_mem_mb: float | None = None
    gpu_mem_total_mb: float | None = None


class MemberDone(_Event):
    """A member finished training (or diverged and was stopped)."""

    type: Literal["member_done"] = "member_done"
    member: int = Field(ge=0)
    seconds: float = Field(ge=0)
    val_accuracy: float | None = None
    diverged: bool = False
    stopped: bool = False
    """Stopped by the user before its last epoch; it keeps what it learned."""
    checkpoint: str | None = None


class Ensemble(_Event):
    """The ensemble of every member's latest state, scored on the validation split when a member ends an epoch.

    Sent by the rank that ended the epoch (engine.live), stamped (`t`) when it read the members' files.
    Events from different ranks may cross on the way, so the newest ensemble is the one with the latest `t`
    (not the most `member_epochs`: a diverged member leaves, a restarted one starts over). `curve` and `fit`
    cover the finished members only: the value of the next member.
    """

    type: Literal["ensemble"] = "ensemble"
    size: int = Field(ge=1)
    members: list[int] = Field(max_length=1024)
    member_epochs: int = Field(ge=1)
    """Epochs the scored states hold, summed over the members."""
    val_accuracy: float
    val_nll: float
    val_ece: float
    mutual_information: float
    disagreement: float
    finished: list[int] = Field(default_factory=list, max_length=1024)
    curve: list[SizePoint] = Field(default_factory=list, max_length=256)
    """Accuracy and NLL of k of the finished members, k = 1..len(finished), averaged over random orders."""
    fit: SizeLaw | None = None
    """NLL(k) ≈ a + b/k through `curve` (two finished members or more)."""


class Log(_Event):
    """A message for the log pane."""

    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


class Error(_Event):
    """A rank (or the launcher) failed; carries the traceback."""

    type: Literal["error"] = "error"
    message: str
    traceback: str = ""


class PredictionsSaved(_Event):
    """Rank 0 gathered every member's test-set probabilities into one file."""

    type: Literal["predictions_saved"] = "predictions_saved"
    path: str
    members: list[int]


class ReportSaved(_Event):
    """The uncertainty report is on disk; headline numbers ride along for the live views."""

    type: Literal["report_saved"] = "report_saved"
    json_path: str
    md_path: str
    accuracy: float
    nll: float
    ece: float
    mutual_information: float


class Goodbye(_Event):
    """A rank finished its part cleanly; a connection that closes without this one means a dead rank."""

    type: Literal["goodbye"] = "goodbye"


class RankSilent(_Event):
    """The launcher has heard nothing from rank `rank` for `seconds` (a stopped or hung process).

    Made by the launcher, never accepted from a rank; the rank's next event clears it.
    """

    type: Literal["rank_silent"] = "rank_silent"
    seconds: float = Field(ge=0)


class Straggler(_Event):
    """Rank `rank` has trained at under half its peers' median rate for a while (flagged), or has kept up with them
    as long again (cleared).

    Made by the launcher, never accepted from a rank. While flagged, a member queue hands the rank no new members.
    """

    type: Literal["straggler"] = "straggler"
    flagged: bool
    samples_per_s: float = Field(ge=0)
    peers_median: float = Field(ge=0)
    seconds: float = Field(ge=0)
    """How long the rank had been that slow when flagged (that fast again when cleared)."""


class RunDone(_Event):
    """The launcher's last word on a run: how it ended and why."""

    type: Literal["run_done"] = "run_done"
    status: Literal["finished", "failed", "interrupted"]
    reason: str = ""
    returncode: int | None = None
    seconds: float = Field(0.0, ge=0)


Event = Annotated[
    Union[
        Hello, MemberStart, Step, Epoch, Util, MemberDone, Ensemble, Log, Error, PredictionsSaved, ReportSaved, Goodbye,
        RankSilent, Straggler, RunDone,
    ],
    Field(discriminator="type"),
]
EVENT_TYPES = (
    Hello, MemberStart, Step, Epoch, Util, MemberDone, Ensemble, Log, Error, PredictionsSaved, ReportSaved, Goodbye,
    RankSilent, Straggler, RunDone,
)
_adapter: TypeAdapter[Event] = TypeAdapter(Event)


class FrameError(ValueError):
    """A frame that is not a valid event (bad JSON, unknown type, wrong fields, too large)."""


def encode(event: _Event) -> bytes:
    """One frame: compact JSON and a newline."""
    return event.model_dump_json(exclude_defaults=False).encode() + b"\n"


def decode(frame: bytes | str) -> Event:
    """Validate one frame; raises FrameError with a short reason."""
    if len(frame) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as err:
        raise FrameError(f"invalid JSON: {err}") from None
    except RecursionError:
        raise FrameError("invalid JSON: nested too deeply") from None
    return from_dict(data)


def from_dict(data: Any) -> Event:
    """Validate an already-parsed event mapping."""
    try:
        return _adapter.validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "frame"
        raise FrameError(f"{where}: {first['msg']}") from None


def to_dict(event: _Event) -> dict[str, Any]:
    """The event as plain JSON-ready data (what events.jsonl stores)."""
    return event.model_dump(mode="json")
