"""Transforms: image-to-image callables applied to the images before each forward pass.

The network sees `transform(images)`, the ascent changes `images`: gradients flow back through
the transform (plain differentiable torch operations), so a random roll, for example, is
undone in the gradient by construction. Each transform keeps its own seeded random generator;
`AscentSettings.pieces()` builds fresh ones for every `ascend` call, so runs reproduce.
"""

from __future__ import annotations

import torch

from cnnscope.errors import check_whole


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
