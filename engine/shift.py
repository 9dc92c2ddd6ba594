"""The test split under corruption: does the ensemble stay calibrated as the data shift (Ovadia et al. 2019)?

Ten corruptions at five severities in the spirit of MNIST-C (Mu & Gilmer 2019) and CIFAR-10-C (Hendrycks &
Dietterich 2019), on images in [0, 1] of any size and channel count. Every parameter sits in `SEVERITY`;
sizes there are pixels of a 28-pixel side and scale with the image's shorter side. A corruption's random
draws depend only on (run seed, corruption, severity), so every rank builds the same set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.config import CORRUPTIONS
from engine.seeding import derive_seed

REFERENCE_SIDE = 28
"""Pixel-sized parameters below are for a 28-pixel side (MNIST) and scale with min(H, W) / 28 — on small images
never below what still changes them (a blur std of 0.5 px, a motion blur of 2 px, a translation of 1 px)."""

SEVERITY: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise std (ImageNet-C's)
    "shot_noise": (60, 25, 12, 5, 3),  # Poisson photons at full intensity: fewer is noisier (ImageNet-C's)
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # share of values set to 0 or 1 (ImageNet-C's)
    "gaussian_blur": (0.5, 0.75, 1.0, 1.5, 2.0),  # kernel std, px
    "motion_blur": (3, 5, 7, 9, 11),  # length of a line kernel at a random angle, px
    "contrast": (0.7, 0.5, 0.35, 0.2, 0.1),  # contrast factor (1 = unchanged)
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added to every value, as MNIST-C and CIFAR-10-C add it to HSV's V
    "rotation": (10, 20, 30, 45, 60),  # degrees, clockwise or anticlockwise at random
    "translation": (2, 3, 4, 6, 8),  # px, towards one of 8 directions at random
    "elastic": (0.6, 1.0, 1.5, 2.0, 2.75),  # RMS displacement by a smooth random field, px
}
ELASTIC_SMOOTHING = 4.0
"""Std (px at 28) of the Gaussian that smooths the elastic field: large enough to bend strokes, not shred them."""


def corrupt(images01: torch.Tensor, corruption: str, severity: int, seed: int) -> torch.Tensor:
    """`images01` (N, C, H, W) in [0, 1] under `corruption` at `severity` 1–5: same shape and dtype, in [0, 1]."""
    if corruption not in SEVERITY:
        raise ValueError(f"unknown corruption {corruption!r}; allowed: {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity {severity} is not one of 1, 2, 3, 4, 5")
    level = SEVERITY[corruption][severity - 1]
    gen = torch.Generator().manual_seed(derive_seed(seed, "shift", corruption, severity))
    x = images01.clamp(0.0, 1.0)
    scale = min(x.shape[-2:]) / REFERENCE_SIDE
    out = _CORRUPT[corruption](x, level, scale, gen)
    return out.clamp_(0.0, 1.0).to(images01.dtype)


# --------------------------------------------------------------------------- each corruption
# Random draws happen on the CPU from `gen` (so they match on every device), then move to the images.


def _rand(gen: torch.Generator, like: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.rand(shape or like.shape, generator=gen, dtype=like.dtype).to(like.device)


def _gaussian_noise(x: torch.Tensor, std: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    # torchvision's gaussian_noise draws from the global RNG and takes no generator, so the noise is drawn here.
    return x + std * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)


def _shot_noise(x: torch.Tensor, photons: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    return torch.poisson(x.cpu() * photons, generator=gen).to(x.device, x.dtype) / photons


def _impulse_noise(x: torch.Tensor, amount: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    hit, salt = _rand(gen, x) < amount, _rand(gen, x) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def _gaussian_blur(x: torch.Tensor, sigma: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    return blur(x, max(sigma * scale, 0.5))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """torchvision's `gaussian_blur` (kernel ±3 std, reflect padding) as two small matrix products per image.

    The same separable Gaussian, but a 1,000-image batch of 28×28 takes milliseconds instead of the tenth of a
    second torchvision's one-channel convolution takes on a CPU.
    """
    h, w = x.shape[-2:]
    return _blur_matrix(h, sigma, x) @ x @ _blur_matrix(w, sigma, x).T


def _blur_matrix(n: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(n, n): row i holds the Gaussian's weights on the pixels it reads, reflected at the borders."""
    size = min(2 * math.ceil(3 * sigma) + 1, 2 * n - 1)  # reflect padding needs the half-kernel < n
    taps = torch.arange(size, dtype=like.dtype) - size // 2
    weights = torch.softmax(-0.5 * (taps / sigma) ** 2, dim=0)
    source = torch.arange(n)[:, None] + taps.long()[None, :]
    source = torch.where(source < 0, -source, torch.where(source >= n, 2 * (n - 1) - source, source))
    matrix = torch.zeros(n, n, dtype=like.dtype).scatter_add_(1, source, weights.expand(n, size).contiguous())
    return matrix.to(like.device)


def _motion_blur(x: torch.Tensor, length: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    """A line kernel of `length` px at a random angle per image, applied as one grouped convolution."""
    n, c, h, w = x.shape
    length = max(length * scale, 2.0)
    k = 2 * math.ceil((length - 1) / 2) + 1
    angle = _rand(gen, x, n) * math.pi
    offsets = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    v, u = torch.meshgrid(offsets, offsets, indexing="ij")
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    along, across = u * cos + v * sin, (v * cos - u * sin).abs()
    kernel = (1 - across).clamp_min(0) * (along.abs() <= length / 2)
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    weight = kernel.repeat_interleave(c, dim=0).unsqueeze(1)
    padded = F.pad(x.reshape(1, n * c, h, w), [k // 2] * 4, mode="replicate")
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def _tf():  # noqa: ANN202 - torchvision's functional module
    """torchvision's transforms, imported on first use: they pull in its model zoo (about a second), which a rank
    that never scores shift should not pay for at start-up."""
    import torchvision.transforms.v2.functional as TF

    return TF


def _contrast(x: torch.Tensor, factor: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    return _tf().adjust_contrast(x, factor)


def _brightness(x: torch.Tensor, amount: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    # torchvision's adjust_brightness multiplies, which leaves a black background black; the C datasets add.
    return x + amount


def _rotation(x: torch.Tensor, degrees: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    clockwise = _rand(gen, x, len(x)) < 0.5
    out = torch.empty_like(x)
    for mask, angle in ((clockwise, -degrees), (~clockwise, degrees)):
        out[mask] = _tf().rotate(x[mask], angle, interpolation=_tf().InterpolationMode.BILINEAR, fill=0.0)
    return out


def _translation(x: torch.Tensor, pixels: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    pixels = max(pixels * scale, 1.0)
    direction = (_rand(gen, x, len(x)) * 8).long().clamp_max(7)
    out = torch.empty_like(x)
    for d in range(8):
        mask = direction == d
        theta = d * math.pi / 4
        shift = [round(pixels * math.cos(theta)), round(pixels * math.sin(theta))]
        out[mask] = _tf().affine(x[mask], angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], fill=0.0)
    return out


def _elastic(x: torch.Tensor, pixels: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    """An elastic warp by one smooth random field per image (torchvision's ElasticTransform: uniform noise
    smoothed by a Gaussian), scaled so its RMS displacement along each axis is `pixels`."""
    n, _, h, w = x.shape
    field = blur(_rand(gen, x, n, 2, h, w) * 2 - 1, ELASTIC_SMOOTHING * scale)
    field = field / field.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    per_pixel = torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device)  # grid units per pixel, (x, y)
    return warp(x, field.permute(0, 2, 3, 1) * (pixels * scale) * per_pixel)


def warp(x: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """torchvision's `elastic` (N, H, W, 2 displacement in [-1, 1] grid units), one field per image in one call.

    torchvision's takes one field per call, 0.5 ms an MNIST image; this samples the same grid for the batch.
    """
    n, _, h, w = x.shape
    grid = torch.empty(n, h, w, 2, dtype=x.dtype, device=x.device)
    grid[..., 0] = torch.linspace((1 - w) / w, (w - 1) / w, w, dtype=x.dtype, device=x.device)
    grid[..., 1] = torch.linspace((1 - h) / h, (h - 1) / h, h, dtype=x.dtype, device=x.device)[:, None]
    return F.grid_sample(x, grid + displacement, mode="bilinear", padding_mode="zeros", align_corners=False)


_CORRUPT = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur, "motion_blur": _motion_blur, "contrast": _contrast, "brightness": _brightness,
    "rotation": _rotation, "translation": _translation, "elastic": _elastic,
}
assert set(_CORRUPT) == set(SEVERITY) == set(CORRUPTIONS), "every configurable corruption has a table row"


# --------------------------------------------------------------------------- the shift sets of a run


def shift_name(corruption: str, severity: int) -> str:
    """The evaluation-set name in predictions.pt: `shift:<corruption>:<severity>`."""
    return f"shift:{corruption}:{severity}"


def shift_sample(n_test: int, size: int, seed: int) -> torch.Tensor:
    """Sorted indices of the min(size, n_test) test images, chosen by the run seed, that every corruption uses."""
    order = torch.randperm(n_test, generator=torch.Generator().manual_seed(derive_seed(seed, "shift-sample")))
    return order[: min(size, n_test)].sort().values


@dataclass
class ShiftSets:
    """The sampled test images under every corruption × severity, each built only when asked for.

    Built one at a time, scored and dropped, a rank holds one corrupted set at once instead of all of them
    (10 × 5 × 1,000 MNIST images would be 157 MB on every rank).
    """

    x_test: torch.Tensor
    """The normalised test split; the sample is taken from it."""
    mean: float
    std: float
    index: torch.Tensor
    corruptions: list[str]
    severities: list[int]
    seed: int

    @property
    def names(self) -> list[str]:
        return [shift_name(c, s) for c in self.corruptions for s in self.severities]

    def build(self, name: str) -> torch.Tensor:
        """The set `shift:<corruption>:<severity>`, normalised like the test split."""
        _, corruption, severity = name.split(":")
        clean = self.x_test[self.index] * self.std + self.mean
        return ((corrupt(clean, corruption, int(severity), self.seed) - self.mean) / self.std).contiguous()
