"""Post-step operations: image-to-image callables applied after every update (the articles'
per-image standardisation, a Gaussian blur). Unlike transforms they change the images kept."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnscope.errors import check_positive
from cnnscope.nn.model import per_image_standardize


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of N x C x H x W with standard deviation `sigma` pixels."""
    radius = max(1, int(math.ceil(2 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    pad_mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=pad_mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


class Blur:
    """Gaussian blur with `sigma` pixels after each step."""

    def __init__(self, sigma: float):
        self.sigma = float(check_positive("blur", sigma))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(images, self.sigma)


class Standardize:
    """The articles' per-image standardisation: (x - mean) / max(std, 1/sqrt(N)) per image."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return per_image_standardize(images)
