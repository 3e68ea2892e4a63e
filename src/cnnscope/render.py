"""Turning tensors into pictures. Pure functions: arrays in, uint8 RGB arrays / PIL images out.

Shared by every view: colour mapping, contrast enhancement, grids of tiles with separator
lines, nearest-neighbour upscaling, labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import UserError

CMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "jet", "gray", "binary", "hot", "coolwarm", "seismic")


def as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def colorize(array, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """2-D values -> H x W x 3 uint8 through a matplotlib colour map (vmin/vmax default to min/max)."""
    import matplotlib

    if cmap not in CMAPS:
        raise UserError(f"unknown colour map {cmap!r}; allowed: {', '.join(CMAPS)}")
    values = as_numpy(array)
    lo = float(values.min()) if vmin is None else float(vmin)
    hi = float(values.max()) if vmax is None else float(vmax)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0.0, 1.0))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def standardize_clip(array, clip: float = 2.0) -> np.ndarray:
    """The articles' contrast view: (x - mean) / std, clipped to [-clip, clip] standard deviations."""
    values = as_numpy(array)
    std = values.std()
    return np.clip((values - values.mean()) / (std if std > 0 else 1.0), -clip, clip)


def enhance_contrast(array, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch the [low, high] percentile range to [0, 1] (the articles' contrast-enhanced OIPs)."""
    values = as_numpy(array)
    lo, hi = np.percentile(values, [low, high])
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(values)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (keeps pixels crisp)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def grid(tiles: Sequence[np.ndarray], columns: int = 8, separator: int = 1,
         separator_color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Place equally sized H x W x 3 tiles row by row (top-down) with separator lines between them."""
    if not tiles:
        raise ValueError("grid needs at least one tile")
    height, width = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    out_h = rows * height + (rows - 1) * separator
    out_w = columns * width + (columns - 1) * separator
    canvas = np.empty((out_h, out_w, 3), dtype=np.uint8)
    canvas[:] = separator_color
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        y, x = r * (height + separator), c * (width + separator)
        canvas[y:y + height, x:x + width] = tile
    return canvas


def tile_origin(index: int, tile_shape: tuple[int, int], columns: int = 8, separator: int = 1) -> tuple[int, int]:
    """Top-left (y, x) of tile `index` in a `grid` image."""
    r, c = divmod(index, columns)
    return r * (tile_shape[0] + separator), c * (tile_shape[1] + separator)


def label(image: np.ndarray, text: str, position: tuple[int, int] = (1, 0),
          color: tuple[int, int, int] = (255, 255, 255), background: tuple[int, int, int] | None = (0, 0, 0)) -> np.ndarray:
    """Write small text onto a copy of an RGB array (top-left by default)."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    if background is not None:
        box = draw.textbbox(position, text, font=font)
        draw.rectangle(box, fill=background)
    draw.text(position, text, fill=color, font=font)
    return np.asarray(picture)


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image, dtype=np.uint8))
