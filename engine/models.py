"""Every member's architecture: the zoo, a torchvision builder, or your own Module, built from `[model]`.

Every model maps (N, C, H, W) images to class logits. The zoo has no BatchNorm (resnet8 uses GroupNorm),
but yours and torchvision's may: a BatchNorm's running statistics are buffers of each member, which the
fused strategy stacks like the weights, and `vmap` updates each member's slice as one-by-one training
updates its own (same result up to float noise), so every strategy trains and checkpoints them alike.
Problems with your model are found before launch (`check_model`, run by `engine.probe`) and told in one line.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import TORCHVISION, ModelConfig, RunConfig
from engine.seeding import member_seed


class ModelError(Exception):
    """The configured model cannot be imported, built or run; the message is one line naming the problem."""


class SeedCNN(nn.Module):
    """The classic PyTorch MNIST example net the seed used: 2 conv + max-pool, 2 fully connected."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        side = ((size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(20 * side * side, 50)
        self.fc2 = nn.Linear(50, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class MLP(nn.Module):
    """Two hidden layers; the cheapest member, good for large ensembles on CPU."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels * size * size, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeCun et al. 1998, with ReLU and max-pooling."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        side = (size // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(8, cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(8, cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.skip(x))


class ResNet8(nn.Module):
    """A stem and three residual stages (16, 32, 64 channels): the smallest CIFAR ResNet."""

    def __init__(self, channels: int = 3, size: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, 16, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(8, 16)
        self.stages = nn.Sequential(_Block(16, 16, 1), _Block(16, 32, 2), _Block(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.stem(x)))
        x = self.stages(x)
        return self.fc(x.mean(dim=(2, 3)))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "seed-cnn": SeedCNN,
    "mlp": MLP,
    "lenet5": LeNet5,
    "resnet8": ResNet8,
}


def build_model(model: ModelConfig | str, shape: tuple[int, int, int], classes: int) -> nn.Module:
    """An untrained model for images of `shape` (C, H, W); a plain name means a zoo model.

    Raises ModelError when your own model or a torchvision builder cannot be built.
    """
    config = ModelConfig(name=model) if isinstance(model, str) else model
    channels, height, _ = shape
    if config.name in MODELS:
        return MODELS[config.name](channels, height, classes)
    if config.name.startswith(TORCHVISION):
        return _torchvision_model(config, shape, classes)
    return _own_model(config, shape, classes)


def build_member(model: ModelConfig, shape: tuple[int, int, int], classes: int, seed: int, member: int) -> nn.Module:
    """Member `member` of the ensemble: its initial weights depend only on (seed, member)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(member_seed(seed, member))
        return build_model(model, shape, classes)


# --------------------------------------------------------------------------- torchvision builders


def _torchvision_model(config: ModelConfig, shape: tuple[int, int, int], classes: int) -> nn.Module:
    """A torchvision classifier with `num_classes` outputs, random weights (never a download), first conv fitted."""
    import torchvision

    name = config.name.removeprefix(TORCHVISION)
    classifiers = torchvision.models.list_models(module=torchvision.models)
    if name not in classifiers:
        what = "is not an image classifier" if name in torchvision.models.list_models() else "is not a builder"
        close = difflib.get_close_matches(name, classifiers, n=4, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else f"for example {', '.join(sorted(classifiers)[:6])}"
        raise ModelError(f"model {config.name}: {name!r} {what} in torchvision.models; {hint} "
                         "(all of them: torchvision.models.list_models(torchvision.models))")
    if "weights" in config.kwargs:
        raise ModelError(f"model {config.name}: members start from random weights, so [model.kwargs] cannot set "
                         "`weights` (nothing is downloaded); remove it")
    builder = torchvision.models.get_model_builder(name)
    model = _call(config, builder, {"num_classes": classes, **config.kwargs, "weights": None})
    return adapt_first_conv(model, shape[0])


def adapt_first_conv(model: nn.Module, channels: int) -> nn.Module:
    """Rebuild the first Conv2d (in module order) for `channels` input channels, same kernel/stride/padding/bias.

    torchvision's classifiers expect RGB; grey digits (1 channel) need a first layer that takes one.
    """
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if conv.in_channels != channels:
            fitted = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                               conv.dilation, conv.groups if channels % conv.groups == 0 else 1,
                               bias=conv.bias is not None, padding_mode=conv.padding_mode,
                               device=conv.weight.device, dtype=conv.weight.dtype)
            if not name:
                return fitted
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, fitted)
        break
    return model


# --------------------------------------------------------------------------- your own model


def _own_model(config: ModelConfig, shape: tuple[int, int, int], classes: int) -> nn.Module:
    """Your `package.module:attr` called with [model.kwargs] plus the sizes its signature takes."""
    target = resolve(config)
    return _call(config, target, _arguments(config, target, shape, classes))


def resolve(config: ModelConfig) -> Callable[..., Any]:
    """The class or factory `config.name` points at, imported with `config.path` first on the import path."""
    module_name, _, attr = config.name.partition(":")
    for folder in reversed(config.path):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            where = ", ".join(config.path) + " and the Python path" if config.path else "the Python path"
            raise ModelError(f"model {config.name}: no module named {missing!r} in {where}") from None
        raise ModelError(f"model {config.name}: importing {module_name} failed: {_one_line(err, config)}") from None
    except Exception as err:
        raise ModelError(f"model {config.name}: importing {module_name} failed: {_one_line(err, config)}") from None
    target: Any = module
    for depth, part in enumerate(attr.split(".")):
        if not hasattr(target, part):
            missing = ".".join(attr.split(".")[: depth + 1])
            raise ModelError(f"model {config.name}: {module_name} has no attribute {missing!r}; {_hint(module, part)}")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        raise ModelError(f"model {config.name}: {attr} is a Module instance, but every member needs fresh weights; "
                         f"name its class ({type(target).__name__}) or a function that builds one")
    if inspect.isclass(target) and not issubclass(target, nn.Module):
        raise ModelError(f"model {config.name}: class {attr} is not a torch.nn.Module subclass")
    if not callable(target):
        raise ModelError(f"model {config.name}: {attr} is a value of type {type(target).__name__}, not a "
                         "torch.nn.Module subclass or a function returning one")
    return target  # type: ignore[no-any-return]


def _hint(module: Any, wanted: str) -> str:
    """The Module classes and functions a module defines, closest to `wanted` first."""
    defined = sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        and (inspect.isfunction(value) or (inspect.isclass(value) and issubclass(value, nn.Module)))
    )
    if not defined:
        return "it defines no torch.nn.Module class or function"
    close = difflib.get_close_matches(wanted, defined, n=3, cutoff=0.5)
    return f"it defines: {', '.join((close + [d for d in defined if d not in close])[:10])}"


def _arguments(config: ModelConfig, target: Callable[..., Any], shape: tuple[int, int, int],
               classes: int) -> dict[str, Any]:
    """[model.kwargs] plus num_classes / in_channels / image_size (H, W) where the signature takes them."""
    sizes: dict[str, Any] = {"num_classes": classes, "in_channels": shape[0], "image_size": (shape[1], shape[2])}
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return dict(config.kwargs)  # no signature to read (a builtin): pass only what was asked for
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [key for key in config.kwargs if key not in names]
        if unknown:
            raise ModelError(f"model {config.name}: [model.kwargs] sets {unknown[0]!r}, which it does not take "
                             f"(its arguments: {', '.join(names) or 'none'})")
        sizes = {key: value for key, value in sizes.items() if key in names}
    return {**sizes, **config.kwargs}


def _call(config: ModelConfig, target: Callable[..., Any], kwargs: dict[str, Any]) -> nn.Module:
    """`target(**kwargs)`, which must return a Module; anything else is a one-line ModelError."""
    shown = f"{getattr(target, '__name__', config.name)}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        model = target(**kwargs)
    except Exception as err:
        raise ModelError(f"model {config.name}: {shown} raised {_one_line(err, config)}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {config.name}: {shown} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _one_line(err: BaseException, config: ModelConfig | None = None) -> str:
    """`Type: first line of the message`, with the innermost file:line in your model's folders when there is one."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    folders = [Path(f) for f in (config.path if config is not None else [])]
    frames = [f for f in traceback.extract_tb(err.__traceback__) if any(Path(f.filename).is_relative_to(d)
                                                                       for d in folders)]
    if frames and not isinstance(err, SyntaxError):  # a SyntaxError's message names its line already
        text += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


# --------------------------------------------------------------------------- the check before launch


def check_model(config: RunConfig, shape: tuple[int, int, int], classes: int, train_size: int = 0) -> str:
    """Build member 0 as the ranks will and run 2 images through it; raise ModelError on the first problem.

    Both modes are tried (eval, then train: BatchNorm and auxiliary heads answer differently), and under
    the fused strategy two members are also run and stepped as one vectorized model and compared with
    themselves run one by one. Returns a note for the log ("" when there is nothing to say).
    """
    name = config.model.name
    model = build_member(config.model, shape, classes, config.seed, 0)
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mode in ("eval", "train"):
            model.train(mode == "train")
            _check_logits(config.model, _forward(config.model, model, x, mode), classes, mode)
        random = _draws_random_numbers(model, x)
    batch = config.train.batch_size
    if train_size % batch == 1 and not _trains_on_one_image(model, x[:1]):
        raise ModelError(f"model {name} cannot train on one image (BatchNorm over a single value?), but the last batch "
                         f"of each epoch holds 1 ({train_size} training images, batch_size {batch}); pick another "
                         "batch_size")
    notes = []
    if random:
        notes.append(f"model {name} draws random numbers while training (dropout or the like): its members are "
                     "not reproducible across strategies and rank counts")
    if _may_vectorize(config):
        _check_vectorized(config, model, shape, classes, x, compare=not random)
    return "; ".join(notes)


def _trains_on_one_image(model: nn.Module, x: torch.Tensor) -> bool:
    model.train()
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - any failure here means the last batch would fail on every rank
        return False
    return True


def _forward(config: ModelConfig, model: nn.Module, x: torch.Tensor, mode: str) -> object:
    """The model's answer to `x`; its exception becomes a one-line ModelError."""
    try:
        return model(x)
    except Exception as err:
        raise ModelError(f"model {config.name} fails on 2 images of shape {tuple(x.shape[1:])} in {mode} mode: "
                         f"{_one_line(err, config)}") from None


def _check_logits(config: ModelConfig, out: object, classes: int, mode: str) -> None:
    """The forward's answer must be (2, classes) floating logits."""
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"model {config.name} returns a {type(out).__name__} in {mode} mode for 2 images; "
                         f"expected a (2, {classes}) tensor of logits")
    if tuple(out.shape) != (2, classes):
        hint = (f"pool and flatten the feature maps before the last layer, which must give {classes} values per image"
                if out.ndim > 2 else
                f"take `num_classes` as an argument (it is passed when the signature has it) or set num_classes = "
                f"{classes} in [model.kwargs]")
        raise ModelError(f"model {config.name} returns {tuple(out.shape)} for 2 images in {mode} mode; expected "
                         f"(2, {classes}) logits — {hint}")
    if not out.is_floating_point():
        raise ModelError(f"model {config.name} returns {out.dtype} values; expected floating-point logits")


def _draws_random_numbers(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two train-mode forwards under different seeds disagree (dropout, stochastic depth…)."""
    model.train()
    outs = []
    for seed in (1, 2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            outs.append(model(x))
    return not torch.equal(outs[0], outs[1])


def _may_vectorize(config: RunConfig) -> bool:
    """Whether the fused strategy might stack members of this run into one vmap-ed model."""
    p = config.parallel
    return p.strategy == "fused" and not p.deterministic and config.train.members > 1 and p.max_fused != 1


def _check_vectorized(config: RunConfig, first: nn.Module, shape: tuple[int, int, int], classes: int,
                      x: torch.Tensor, compare: bool) -> None:
    """Two members as one stacked model must answer as they do one by one, and take a training step."""
    from engine.member import Member, make_optimizer
    from engine.vectorized import StackedMembers

    # In float64, where the two ways' different summation order stays far below the tolerance.
    models = [first.double(), build_member(config.model, shape, classes, config.seed, 1).double()]
    members = [Member(i, m.train(), make_optimizer(m.parameters(), config.train)) for i, m in enumerate(models)]
    x = x.double()
    refuse = (f"model {config.model.name} cannot be trained by the fused strategy (torch.func.vmap over stacked "
              "members)")
    alone = "; use strategy local, broadcast or sequential"
    try:
        stack = StackedMembers(members, config.train)
        with torch.no_grad():
            stacked = stack.forward(x)
            separate = torch.stack([m(x) for m in models])
        stack.step(x, torch.zeros(len(x), dtype=torch.long))
    except Exception as err:
        raise ModelError(f"{refuse}: {_one_line(err, config.model)}{alone}") from None
    if compare and not torch.allclose(stacked, separate, rtol=1e-6, atol=1e-8):
        gap = float((stacked - separate).abs().max())
        raise ModelError(f"{refuse}: stacked, its members answer differently than one by one (max gap {gap:.3g})"
                         f"{alone}")
