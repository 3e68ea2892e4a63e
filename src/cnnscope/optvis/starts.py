"""Starting images for gradient ascent, in the network's standardised input space.

`multiscale_noise` is article VIII's initial image: uniform [-1, 1] noise on coarse grids
(default 3, 7, 14, 28 cells), each upscaled bicubically (with antialiasing) to the image size,
weighted by factors (default 0.5 each), summed and standardised per image. Image i of a call
depends only on (seed, i) -- or on `seeds[i]` -- never on the batch size, so batched and
one-at-a-time runs start from the same pictures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cnnscope.errors import UserError
from cnnscope.nn.model import per_image_standardize

DEFAULT_SCALES = (3, 7, 14, 28)
DEFAULT_FACTORS = (0.5, 0.5, 0.5, 0.5)


def noise_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys, e.g. (seed, map, restart); stable across runs."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    height, width = (int(s) for s in size)
    if height < 1 or width < 1:
        raise UserError(f"image size must be positive, got {height}x{width}")
    return height, width


def check_noise_parameters(scales: Sequence[int], factors: Sequence[float],
                           size: int | tuple[int, int] = 28) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Validated (scales, factors): positive whole scales no larger than the image, one finite factor per scale."""
    height, width = _size(size)
    scales, factors = tuple(scales), tuple(factors)
    if not scales:
        raise UserError("need at least one noise scale (e.g. 3,7,14,28)")
    clean_scales = []
    for s in scales:
        if isinstance(s, float) and not float(s).is_integer():
            raise UserError(f"noise scale {s} must be a whole number of cells")
        s = int(s)
        if s < 1:
            raise UserError(f"noise scale {s} must be positive (1..{min(height, width)})")
        if s > min(height, width):
            raise UserError(f"noise scale {s} is larger than the {height}x{width} image; allowed 1..{min(height, width)}")
        clean_scales.append(s)
    if len(factors) != len(scales):
        raise UserError(f"got {len(factors)} noise factors for {len(scales)} scales; give one factor per scale")
    clean_factors = []
    for f in factors:
        f = float(f)
        if math.isnan(f) or math.isinf(f):
            raise UserError(f"noise factor {f} must be a finite number")
        clean_factors.append(f)
    if all(f == 0 for f in clean_factors):
        raise UserError("noise factors are all zero; at least one scale must contribute")
    return tuple(clean_scales), tuple(clean_factors)


def multiscale_noise(
    n: int,
    size: int | tuple[int, int] = 28,
    scales: Sequence[int] = DEFAULT_SCALES,
    factors: Sequence[float] = DEFAULT_FACTORS,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    channels: int = 1,
) -> torch.Tensor:
    """N x C x H x W noise on several length scales, standardised per image (C = `channels`).

    Image i uses the seed `seeds[i]` when given, else `noise_seed(seed, i)`.
    A scale s is an s x s grid stretched over the whole image.
    """
    height, width = _size(size)
    scales, factors = check_noise_parameters(scales, factors, (height, width))
    images = torch.zeros(int(n), int(channels), height, width)
    parts = noise_components(n, (height, width), scales, seed, seeds, channels)
    for factor, component in zip(factors, parts, strict=True):
        if factor != 0:
            images += factor * component
    return per_image_standardize(images)


def noise_components(
    n: int,
    size: int | tuple[int, int] = 28,
    scales: Sequence[int] = DEFAULT_SCALES,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    channels: int = 1,
) -> list[torch.Tensor]:
    """The unweighted parts of `multiscale_noise`, one N x C x H x W tensor per scale.

    Part s of image i is uniform [-1, 1] noise on an s x s grid per channel, upscaled bicubically
    (with antialiasing) to the image size; every scale's cells are drawn from image i's generator
    in order (a scale's grids of all channels at once), so a part is the same whichever factors
    are used (OIP strategy 1 adds them one by one).
    """
    height, width = _size(size)
    if seeds is None:
        seeds = [noise_seed(seed, i) for i in range(int(n))]
    elif len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} images")
    parts = [torch.zeros(int(n), int(channels), height, width) for _ in scales]
    for i, image_seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(int(image_seed))
        for part, scale in zip(parts, scales, strict=True):
            cells = 2.0 * torch.rand(1, int(channels), int(scale), int(scale), generator=generator) - 1.0
            if (scale, scale) != (height, width):
                cells = F.interpolate(cells, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
            part[i] = cells[0]
    return parts


def from_images(images: torch.Tensor) -> torch.Tensor:
    """Raw images (N x 1 x H x W in [0, 1], e.g. `data.to_tensor(...)`) -> standardised starts."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise UserError(f"start images must be N x 1 x H x W, got shape {tuple(images.shape)}")
    return per_image_standardize(images.float())


def from_dataset(mnist, index: int, which: str = "test") -> torch.Tensor:
    """Image `index` of the test (or train) set as a 1 x 1 x 28 x 28 standardised start."""
    from cnnscope.data.mnist import to_tensor

    images, _ = mnist.images(which)
    if not 0 <= int(index) < len(images):
        raise UserError(f"image index {index} out of range for the {which} set: 0..{len(images) - 1}")
    return from_images(to_tensor(images[int(index):int(index) + 1]))


def from_file(path: str | os.PathLike, size: int | tuple[int, int] | None = 28) -> torch.Tensor:
    """A picture file as a grey 1 x 1 x H x W standardised start; resized to `size` (None keeps its size).

    The file is opened by `data.images.load_image_file`, with its size and safety checks.
    """
    from PIL import Image

    from cnnscope.data.images import load_image_file

    grey = load_image_file(path).convert("L")
    if size is not None:
        height, width = _size(size)
        grey = grey.resize((width, height), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)
    return from_images(pixels[None, None])
