"""Transforms: image-to-image callables applied to the images before each forward pass.

The network sees `transform(images)`, the ascent changes `images`: gradients flow back through
the transform (plain differentiable torch operations), so a random roll, for example, is
undone in the gradient by construction. Each transform keeps its own seeded random generator;
`AscentSettings.pieces()` builds fresh ones for every `ascend` call, so runs reproduce. One
random draw per step serves the whole batch.

Transformation robustness (Olah et al. 2017, Lucid's `standard_transforms`) sized to the image:
`Shift(fraction)` rolls by up to `fraction` of the image side in whole pixels (no blur);
`Zoom(fraction)` rescales by a factor in [1 - fraction, 1 + fraction] and `Rotate(degrees)`
turns by up to that angle, both by bilinear resampling with reflected borders. An angle does not
grow with the image, so it is given in degrees. `robustness()` is the list sized for 28 x 28
digits: 2 pixels of shift, 5% zoom, 5 degrees (Lucid's ImageNet values, 8-16 pixels, would move
a digit by half its width).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnscope.errors import check_positive, check_whole

ROBUST_SHIFT = 0.07  # of the image side: 2 pixels at 28
ROBUST_ZOOM = 0.05
ROBUST_ROTATE = 5.0  # degrees


class Jitter:
    """Roll the batch by a random whole-pixel shift of up to `pixels` in y and x (one shift per step)."""

    def __init__(self, pixels: int, seed: int = 0):
        self.pixels = check_whole("jitter", pixels, minimum=0)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not self.pixels:
            return images
        shift = torch.randint(-self.pixels, self.pixels + 1, (2,), generator=self.generator).tolist()
        return torch.roll(images, shifts=shift, dims=(-2, -1))

    def __repr__(self) -> str:
        return f"Jitter({self.pixels})"


class Shift:
    """Roll by a random whole-pixel shift of up to `fraction` x the image side in y and x."""

    def __init__(self, fraction: float, seed: int = 0):
        self.fraction = float(check_positive("shift", fraction, allow_zero=True))
        if self.fraction >= 0.5:
            raise ValueError(f"shift {fraction} must be below half the image (0.5)")
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        pixels = [round(self.fraction * int(side)) for side in images.shape[-2:]]
        shift = [int(torch.randint(-p, p + 1, (1,), generator=self.generator)) for p in pixels]
        return torch.roll(images, shifts=shift, dims=(-2, -1)) if any(shift) else images

    def __repr__(self) -> str:
        return f"Shift({self.fraction:g})"


def affine(images: torch.Tensor, zoom: float = 1.0, degrees: float = 0.0) -> torch.Tensor:
    """Images zoomed by `zoom` and turned by `degrees` about their centre (bilinear, reflected borders)."""
    angle = math.radians(float(degrees))
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class Zoom:
    """Rescale by a random factor in [1 - fraction, 1 + fraction] about the centre."""

    def __init__(self, fraction: float, seed: int = 0):
        self.fraction = float(check_positive("zoom", fraction, allow_zero=True))
        if self.fraction >= 1:
            raise ValueError(f"zoom {fraction} must be below 1")
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        factor = 1.0 + self.fraction * (2 * float(torch.rand((), generator=self.generator)) - 1)
        return affine(images, zoom=factor)

    def __repr__(self) -> str:
        return f"Zoom({self.fraction:g})"


class Rotate:
    """Turn by a random angle of up to `degrees` either way about the centre."""

    def __init__(self, degrees: float, seed: int = 0):
        self.degrees = float(check_positive("rotate", degrees, allow_zero=True))
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        angle = self.degrees * (2 * float(torch.rand((), generator=self.generator)) - 1)
        return affine(images, degrees=angle)

    def __repr__(self) -> str:
        return f"Rotate({self.degrees:g})"


def robustness(shift: float = ROBUST_SHIFT, zoom: float = ROBUST_ZOOM, rotate: float = ROBUST_ROTATE,
               seed: int = 0) -> list:
    """The transforms for the given sizes (zero leaves one out), each with its own seed."""
    return [*([Shift(shift, seed + 3)] if shift else []), *([Zoom(zoom, seed + 1)] if zoom else []),
            *([Rotate(rotate, seed + 2)] if rotate else [])]
