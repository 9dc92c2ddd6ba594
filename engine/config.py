"""The run configuration: one TOML schema, validated before any rank starts.

Both sides import this module (the launcher validates, every rank re-reads the resolved copy),
so it must stay free of torch and textual.
"""

from __future__ import annotations

import difflib
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import tomli_w
from annotated_types import Ge, Gt, Le, Lt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

# The allowed values, each spelled once; tuples that code needs are derived from them.
Dataset = Literal["digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "synthetic"]
OodShift = Literal["noise", "rotate", "invert"]
ModelName = Literal["seed-cnn", "mlp", "lenet5", "resnet8"]
Strategy = Literal["sequential", "local", "broadcast", "fused"]
DATASETS: tuple[str, ...] = get_args(Dataset)
OOD_SHIFTS: tuple[str, ...] = get_args(OodShift)
ZOO: tuple[str, ...] = get_args(ModelName)
Corruption = Literal["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "motion_blur", "contrast",
                     "brightness", "rotation", "translation", "elastic"]
OodScore = Literal["msp", "entropy", "mutual_information", "energy"]
CORRUPTIONS: tuple[str, ...] = get_args(Corruption)
OOD_SCORES: tuple[str, ...] = get_args(OodScore)
FILE_KINDS = ("imagefolder", "npz")
"""Your own data, read from `root` (a folder of class folders, or one .npz file)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
"""What an image folder and `ens-tui predict` read as images (any case)."""
TORCHVISION = "torchvision:"
"""Prefix of a torchvision dataset class (`torchvision:SVHN`) or model builder (`torchvision:resnet18`)."""
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TORCHVISION_NAME = re.compile(rf"^torchvision:{_IDENT}$")
_IMPORT_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
DATASET_CHOICES = ", ".join(DATASETS) + ", imagefolder (root = DIR), npz (root = FILE.npz) or torchvision:NAME"
OOD_CHOICES = ", ".join(OOD_SHIFTS + DATASETS) + ", imagefolder:DIR, npz:FILE or torchvision:NAME"
MODEL_CHOICES = ", ".join(ZOO) + ", torchvision:BUILDER (e.g. torchvision:resnet18) or package.module:attr"


def is_import_path(name: str) -> bool:
    """`package.module:attr`, the way a user names their own model (torchvision: names are not)."""
    return not name.startswith(TORCHVISION) and bool(_IMPORT_PATH.match(name))


def split_source(spec: str) -> tuple[str, str]:
    """`kind:argument` of an OOD or data source (`npz:x.npz` → ("npz", "x.npz")); ("noise", "") for plain names."""
    kind, sep, arg = spec.partition(":")
    if kind == "torchvision":
        return kind, arg
    return (kind, arg) if sep and kind in FILE_KINDS else (spec, "")


class ConfigError(ValueError):
    """A config that cannot run: one line per problem, meant for the user (all of a file's at once)."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines: tuple[str, ...] = lines


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL byte (\\0)")
    return value


PathText = Annotated[str, AfterValidator(_no_nul)]
"""A file or folder name: the OS refuses NUL bytes, so the config does first (one line, not a traceback)."""


class _Section(BaseModel):
    # Strict: TOML is typed, so `members = true` or `"4"` is a mistake to name, not a value to coerce
    # (an int is still a valid float); no inf or nan either.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True, strict=True,
                              allow_inf_nan=False)


class DataConfig(_Section):
    dataset: str = "digits"
    """Training data: a named set (`digits` is scikit-learn's bundled set and needs no download), your own
    `imagefolder` or `npz` at `root`, or any `torchvision:NAME` dataset class."""
    root: PathText = "data"
    """torchvision root holding `<Dataset>/raw/…`; for imagefolder the folder holding `train/<class>/…`
    (and optionally `test/<class>/…`); for npz the .npz file."""
    image_size: list[int] | None = Field(None, min_length=2, max_length=2)
    """[H, W] every image is resized to (any source; unset: the data's own size, and an image folder of mixed
    sizes is refused)."""
    channels: Literal[1, 3] | None = None
    """1 (grayscale) or 3 (RGB), any source; unset: the data's own (an image folder: 1 when every image is gray)."""
    cache: bool = True
    """Keep decoded image folders in the cache folder ($ENS_TUI_CACHE, else ~/.cache/ens-tui), so the next run
    of the same files starts in about a second; false decodes every time and removes the folder's entry."""
    download: bool = False
    """Let torchvision download a missing dataset into `root`."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of the training split held out for per-epoch validation."""
    synthetic_size: int = Field(60000, ge=16)
    """Number of samples when `dataset = "synthetic"` (MNIST-shaped, seeded)."""
    ood: list[PathText] = Field(default_factory=lambda: ["noise", "rotate"])
    """Out-of-distribution sets for the report: built-in shifts (noise, rotate, invert), dataset names,
    `imagefolder:DIR`, `npz:FILE` or `torchvision:NAME` (converted to the training images' channels and size)."""
    limit: int | None = Field(None, ge=16)
    """Use at most this many training samples (quick experiments and tests)."""

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value in DATASETS or value in FILE_KINDS or _TORCHVISION_NAME.match(value):
            return value
        raise ValueError(f"must be one of {DATASET_CHOICES}")

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not all(4 <= side <= 4096 for side in value):
            raise ValueError("must be [H, W] with each side from 4 to 4096 pixels")
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _gray_or_rgb(cls, value: Any) -> Any:
        # Before: a Literal compares by ==, so it would take `true` or 1.0 for 1.
        if value is not None and (type(value) is not int or value not in (1, 3)):
            raise ValueError("must be 1 (grayscale) or 3 (RGB)")
        return value

    @field_validator("ood")
    @classmethod
    def _known_ood(cls, value: list[str]) -> list[str]:
        for name in value:
            kind, arg = split_source(name)
            if name in OOD_SHIFTS + DATASETS or (kind in FILE_KINDS and arg) or _TORCHVISION_NAME.match(name):
                continue
            raise ValueError(f"unknown OOD set {name!r}; allowed: {OOD_CHOICES}")
        return value


class ModelConfig(_Section):
    name: str = "seed-cnn"
    """Architecture of every member: the zoo (seed-cnn, mlp, lenet5; resnet8 for 3-channel data such as
    cifar10), `torchvision:BUILDER` (any torchvision.models builder, first conv adapted to the channels), or your
    own `package.module:attr` (a Module class or a factory; the config file's folder is on the import path)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for a torchvision builder or your own model (`num_classes`, `in_channels` and
    `image_size` are passed too where its signature takes them)."""
    path: list[PathText] = Field(default_factory=list)
    """Folders searched first when importing your own model; the config file's folder is added when it is read."""

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value in ZOO or _TORCHVISION_NAME.match(value) or is_import_path(value):
            return value
        raise ValueError(f"must be one of {MODEL_CHOICES}")

    @model_validator(mode="after")
    def _kwargs_need_a_builder(self) -> ModelConfig:
        if self.kwargs and self.name in ZOO:
            raise ValueError(f"the zoo model {self.name!r} takes no [model.kwargs]; they are for torchvision:BUILDER "
                             "or your own package.module:attr")
        return self


class TrainConfig(_Section):
    members: int = Field(2, ge=1, le=1024)
    """Number of independently initialised ensemble members."""
    epochs: int = Field(2, ge=1, le=10000)
    """Passes over the training split per member."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Samples per optimizer step; every member sees the same batches."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """Optimizer of each member."""
    lr: float = Field(0.01, gt=0.0, le=10.0)
    """Learning rate."""
    momentum: float = Field(0.5, ge=0.0, lt=1.0)
    """SGD momentum (ignored by adam)."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """L2 penalty."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate over training: constant, or cosine decay from `lr` to 0 by the last step (steadier
    members at the end, so the ensemble gains more from each)."""
    data_order: Literal["shared", "per-member"] = "shared"
    """Batch order: one stream of (seed, epoch) every member sees, or member i's own order from (seed, i, epoch)
    as in the deep-ensembles recipe (local, sequential, fused; broadcast serves one shared stream)."""
    live_ensemble: bool = True
    """Score the ensemble of the members' latest states on the validation split whenever a member ends an
    epoch (the `ensemble` event: the dashboard's ensemble panel and size curve)."""
    stop_when_nll_gain_below: float = Field(0.0, ge=0.0, le=10.0)
    """Stop handing out members once each of the last two ensemble sizes gained less validation NLL than this
    (e.g. 0.002; 0 = train every member). Needs a member queue: dynamic placement, or one rank."""


class RankGroup(_Section):
    count: int = Field(1, ge=1, le=256)
    """Number of MPI ranks in this group."""
    device: str = "cpu"
    """cpu | cuda | cuda:N | auto (cuda when present, else cpu)."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("cpu", "cuda", "auto"):
            return value
        if value.startswith("cuda:") and value[5:].isdigit():
            return value
        raise ValueError(f"unknown device {value!r}; allowed: cpu, cuda, cuda:N, auto")


class ParallelConfig(_Section):
    strategy: Strategy = "local"
    """sequential (one process, members in turn) | local (each rank loads its data) |
    broadcast (rank 0 loads and broadcasts each batch) | fused (a rank's members as one vectorized model)."""
    ranks: list[RankGroup] = Field(default_factory=lambda: [RankGroup(count=2, device="cpu")], min_length=1)
    """Groups of MPI ranks and the device each group trains on."""
    threads_per_rank: int = Field(1, ge=1, le=1024)
    """torch intra-op threads per rank."""
    max_fused: int = Field(0, ge=0)
    """fused: most members vectorized at once per rank (0 = as many as memory allows)."""
    placement: Literal["static", "dynamic"] = "dynamic"
    """How members reach ranks: round-robin up front, or from a queue as ranks free up (local, fused)."""
    deterministic: bool = False
    """Every strategy uses the same per-member thread count and deterministic kernels, so members are
    bit-identical across strategies (slower where it lowers threads)."""
    stall_timeout_s: float = Field(120.0, ge=5.0, le=86400.0)
    """A rank that sends nothing (steps and resource samples arrive every second or so) for this long is
    declared stalled, and the run fails instead of hanging."""
    straggler_after_s: float = Field(30.0, ge=1.0, le=86400.0)
    """A rank training at under half its peers' median rate for this long is flagged as a straggler (its row turns
    red) and, with a member queue, gets no new members while flagged."""
    mpiexec_args: list[str] = Field(default_factory=list)
    """Extra arguments placed right after `mpiexec`, e.g. ["-launcher", "ssh", "-iface", "eth1", "-bind-to",
    "core"] (mpich's hydra; see README "Clusters")."""

    @property
    def world_size(self) -> int:
        """Ranks the strategy actually launches (sequential is always one process)."""
        return 1 if self.strategy == "sequential" else sum(g.count for g in self.ranks)

    def rank_devices(self) -> list[str]:
        """The device of every launched rank, in rank order."""
        flat = [g.device for g in self.ranks for _ in range(g.count)]
        if self.strategy == "sequential":
            # One process: it takes the fastest device the setup names.
            return [next((d for d in flat if d != "cpu"), flat[0])]
        return flat


class ReportConfig(_Section):
    shift: bool = True
    """Score the test split under corruptions at five severities (calibration under shift, as in MNIST-C)."""
    shift_size: int = Field(1000, ge=16, le=1_000_000)
    """Test images (a seeded sample) each corruption and severity is applied to: bounds the cost of `shift`."""
    corruptions: list[Corruption] = Field(default_factory=lambda: list(CORRUPTIONS), min_length=1)
    """Which corruptions `shift` applies."""
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    """Which of the severities 1–5 `shift` applies."""
    ood_scores: list[OodScore] = Field(default_factory=lambda: list(OOD_SCORES), min_length=1)
    """Scores that rank inputs as OOD (higher = more OOD; msp enters negated): msp | entropy |
    mutual_information | energy."""
    figures: bool = True
    """Draw runs/<id>/figures/*.png and report.html (matplotlib)."""

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: list[int]) -> list[int]:
        if not all(1 <= s <= 5 for s in value) or len(set(value)) != len(value):
            raise ValueError("must be distinct severities from 1 to 5")
        return sorted(value)


class RunConfig(_Section):
    name: str = Field("run", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._-]+$")
    """Label of the run; part of its folder name."""
    seed: int = Field(0, ge=0, lt=2**32)
    """Seeds member initialisation (with the member index) and batch order (with the epoch)."""
    output_dir: PathText = "runs"
    """Where run folders are created."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _policies_fit_the_strategy(self) -> RunConfig:
        parallel, train = self.parallel, self.train
        if train.data_order == "per-member" and parallel.strategy == "broadcast":
            raise ValueError("train.data_order = 'per-member' cannot run under broadcast, which serves every rank "
                             "one shared batch stream; use strategy local, sequential or fused, or data_order = "
                             "'shared'")
        if train.stop_when_nll_gain_below > 0:
            queued = parallel.placement == "dynamic" and parallel.strategy in ("local", "fused")
            if not (queued or parallel.world_size == 1):
                raise ValueError("train.stop_when_nll_gain_below needs members handed out from a queue: "
                                 "placement = 'dynamic' with strategy local or fused, or a single rank")
            if self.data.val_fraction == 0:
                raise ValueError("train.stop_when_nll_gain_below judges the gain on the validation split; "
                                 "set data.val_fraction above 0")
        return self

    def to_toml(self) -> str:
        """The resolved config, every default spelled out, as TOML."""
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


# --------------------------------------------------------------------------- loading


def _walk(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The section holding the last named field of `loc` (list indices skipped), and that field."""
    section: type[BaseModel] | None = RunConfig
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = section.model_fields.get(str(part)) if section else None
        if field is None:
            return None, None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or ()
        nested = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        section = nested[0] if nested else None
    return section, field


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` (the parent of an unknown key)."""
    section = _walk(loc)[0]
    return sorted(section.model_fields) if section else []


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _allowed_range(loc: tuple[Any, ...]) -> str:
    """`0 < lr ≤ 10`: the bounds the field at `loc` declares, spelled once there (empty when it has none)."""
    if not loc or isinstance(loc[-1], int):
        return ""
    field = _walk(loc)[1]
    lower = upper = ""
    for bound in field.metadata if field else ():
        if isinstance(bound, Gt | Ge):
            limit = _number(bound.gt if isinstance(bound, Gt) else bound.ge)
            lower = f"{limit} {'<' if isinstance(bound, Gt) else '≤'} "
        elif isinstance(bound, Lt | Le):
            limit = _number(bound.lt if isinstance(bound, Lt) else bound.le)
            upper = f" {'<' if isinstance(bound, Lt) else '≤'} {limit}"
    return f"{lower}{loc[-1]}{upper}" if lower or upper else ""


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
MAX_ERRORS = 20
"""A file with more problems lists this many and counts the rest."""


def _dotted(loc: tuple[Any, ...]) -> str:
    """`parallel.ranks[0].count`, as the user would point at it."""
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def _describe(error: Any, source: str) -> str:
    """One pydantic error as one line: file, field, what is wrong and what is allowed."""
    loc = tuple(error["loc"])
    field = _dotted(loc)
    if error["type"] == "extra_forbidden":
        parent = loc[:-1]
        keys = _known_keys(parent)
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = _dotted(parent) or "top level"
        return f"{source}: unknown key {field!r}{hint}; keys allowed in {where}: {', '.join(keys)}"
    message = error["msg"]
    if error["type"] == "literal_error":
        message = "must be one of " + message.removeprefix("Input should be ").replace("'", "")
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    allowed = _allowed_range(loc)
    if allowed:
        message += f"; allowed: {allowed}"
    got = error.get("input")
    kind = _TOML_TYPES.get(type(got), type(got).__name__)
    if isinstance(got, dict | list):
        shown = f" (got a TOML {kind})" if error["type"].endswith("_type") else ""
    elif got is None:
        shown = ""
    else:
        value = str(got).lower() if isinstance(got, bool) else repr(got)
        shown = f" (got {kind} {value})" if error["type"].endswith("_type") else f" (got {value})"
    return f"{source}: {field or 'config'}: {message}{shown}"


def describe_errors(err: ValidationError, source: str) -> list[str]:
    """Every problem pydantic found, one line each, so one run names all of a file's mistakes."""
    errors = err.errors()
    lines = [_describe(e, source) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(f"{source}: … and {len(errors) - MAX_ERRORS} more problem(s)")
    return lines


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a config mapping, raising ConfigError with one line per problem."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(*describe_errors(err, source)) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a .toml config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected TOML)") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    config = parse_config(data, str(path))
    if is_import_path(config.model.name):
        # Like pytest's rootdir: a `mymodels.py` beside the config imports; ranks and `predict` read the
        # absolute folder from the run's resolved config, wherever they run.
        folders = [str((path.parent / p).resolve()) for p in config.model.path]
        here = str(path.parent.resolve())
        config.model.path = folders + [here] * (here not in folders)
    return config


def parse_ranks(spec: str) -> list[RankGroup]:
    """`--ranks` syntax: `N` (N CPU ranks) or `device:count[,device:count…]`."""
    groups: list[RankGroup] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        device, _, count = part.rpartition(":") if not part.isdigit() else ("cpu", "", part)
        if device.startswith("cuda") and not count.isdigit():
            device, count = part, "1"
        if not count.isdigit() or not device:
            raise ConfigError(f"--ranks: cannot read {part!r}; use N or device:count, e.g. cpu:2,cuda:1")
        try:
            groups.append(RankGroup(count=int(count), device=device))
        except ValidationError as err:
            raise ConfigError(*describe_errors(err, "--ranks")) from None
    if not groups:
        raise ConfigError("--ranks: empty; use N or device:count, e.g. cpu:2,cuda:1")
    return groups


# --------------------------------------------------------------------------- command-line overrides


@dataclass(frozen=True)
class Override:
    """One `--flag` that sets one config field; the CLI's options and `with_overrides` both come from it."""

    flag: str
    """The option, e.g. `--batch-size`; its keyword (`batch_size`) is what `with_overrides` takes."""
    path: tuple[str, ...]
    """Where it lands in the config, e.g. ("train", "batch_size")."""
    type: type
    """int, str, or bool (a switch that only turns the field on)."""
    help: str
    resume: Literal["honour", "grow", "refuse"] = "honour"
    """On `--resume`: honoured, honoured only when not below the run's value, or refused."""
    why: str = ""
    """Why a refused (or grow-only) override cannot change on `--resume`: the message names it."""
    parse: Callable[[Any], Any] | None = None
    """Turns the command-line value into the config's (`--ranks` syntax); None = as given."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values when the field is a Literal (so `--help` lists them)."""
        section: type[BaseModel] = RunConfig
        for part in self.path[:-1]:
            section = section.model_fields[part].annotation  # type: ignore[assignment]
        annotation = section.model_fields[self.path[-1]].annotation
        return get_args(annotation) if get_origin(annotation) is Literal else None


def _ranks(value: Any) -> list[dict[str, Any]]:
    groups = parse_ranks(value) if isinstance(value, str) else value
    return [g.model_dump() for g in groups]


_CHANGES_MEMBERS = "the saved members were trained with it, so a resume keeps it"
OVERRIDES: tuple[Override, ...] = (
    Override("--ranks", ("parallel", "ranks"), str, "N (CPU ranks) or device:count[,…], e.g. cpu:2,cuda:1",
             parse=_ranks),
    Override("--members", ("train", "members"), int, "number of ensemble members", "refuse",
             "the run's checkpoints are its members; start a new run for a different ensemble"),
    Override("--epochs", ("train", "epochs"), int, "passes over the training split per member", "grow",
             "on --resume it can only grow (train further), never undo finished epochs"),
    Override("--batch-size", ("train", "batch_size"), int, "samples per optimizer step", "refuse",
             _CHANGES_MEMBERS),
    Override("--strategy", ("parallel", "strategy"), str,
             "how members map onto ranks; members are identical across strategies at equal threads per member, "
             "else equal up to float noise (--deterministic makes them bit-identical)"),
    Override("--deterministic", ("parallel", "deterministic"), bool,
             "same per-member threads and deterministic kernels in every strategy (bit-identical members)"),
    Override("--dataset", ("data", "dataset"), str, "training data", "refuse", _CHANGES_MEMBERS),
    Override("--mpiexec-args", ("parallel", "mpiexec_args"), str,
             "extra mpiexec arguments as one shell-quoted string, e.g. \"-iface eth1 -bind-to core\"",
             parse=shlex.split),
    Override("--data-root", ("data", "root"), str,
             "torchvision root of the file-backed datasets, or your image folder / .npz file"),
    Override("--limit", ("data", "limit"), int, "use at most this many training samples", "refuse",
             _CHANGES_MEMBERS),
    Override("--output-dir", ("output_dir",), str, "where run folders go (default: the config's output_dir)",
             "refuse", "a resumed run stays in its own folder"),
    Override("--seed", ("seed",), int, "seeds member initialisation and batch order", "refuse",
             "members are seeded by (seed, index), so a new seed means new members"),
)
OVERRIDE_BY_DEST = {o.dest: o for o in OVERRIDES}


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def with_overrides(config: RunConfig, **overrides: Any) -> RunConfig:
    """Apply command-line overrides by keyword (`batch_size=…`; None or False = keep), re-validating the result."""
    data = config.model_dump(mode="json")
    for key, value in overrides.items():
        if value is None or value is False:
            continue
        override = OVERRIDE_BY_DEST[key]
        *parents, field = override.path
        _get(data, tuple(parents))[field] = override.parse(value) if override.parse else value
    return parse_config(data, "command line")


def resume_overrides(saved: RunConfig, **overrides: Any) -> RunConfig:
    """The saved run's config with the overrides a resume may honour; ConfigError names the first refused one."""
    for key, value in overrides.items():
        if value is None or value is False:
            continue
        override = OVERRIDE_BY_DEST[key]
        if override.resume == "refuse":
            raise ConfigError(f"{override.flag} cannot change on --resume: {override.why}")
        if override.resume == "grow" and value < (current := _get(saved.model_dump(), override.path)):
            raise ConfigError(f"{override.flag} {value} is below the run's {current}: {override.why}")
    return with_overrides(saved, **overrides)
