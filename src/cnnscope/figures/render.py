"""Turning tensors into pictures. Pure functions: arrays in, uint8 RGB arrays / PIL images out.

Shared by every view: colour mapping, contrast enhancement, grids of tiles with separator
lines, nearest-neighbour upscaling, labels, colour bars, markers, overlays and the small
layout helpers (`stack`, `pad`, `text_block`) that put pictures side by side.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnscope.errors import UserError, check_choice

CMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "jet", "gray", "binary", "hot", "coolwarm", "seismic")
# How the values of a layer become colours: one range for all maps, each map its own
# min..max, or the articles' "standardise and clip" (per map, +-2 standard deviations).
SCALES = ("shared", "per_map", "standardize")
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
SEPARATOR = (235, 235, 235)


def as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


@functools.cache
def colormap_lut(cmap: str) -> np.ndarray:
    """The colour map as an N x 3 uint8 table (N = the map's own number of colours, 256)."""
    import matplotlib

    check_choice("colour map", cmap, CMAPS)
    colormap = matplotlib.colormaps[cmap]
    rgba = colormap(np.arange(colormap.N))
    lut = (rgba[:, :3] * 255 + 0.5).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colorize_unit(values, cmap: str = "viridis") -> np.ndarray:
    """Values already scaled to [0, 1] (any shape) -> shape + (3,) uint8 colours."""
    lut = colormap_lut(cmap)
    scaled = np.nan_to_num(np.clip(as_numpy(values), 0.0, 1.0))
    index = np.minimum((scaled * len(lut)).astype(np.intp), len(lut) - 1)
    return lut[index]


def colorize(array, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """2-D values -> H x W x 3 uint8 through a matplotlib colour map (vmin/vmax default to min/max)."""
    if cmap not in CMAPS:
        raise UserError(f"unknown colour map {cmap!r}; allowed: {', '.join(CMAPS)}")
    values = as_numpy(array)
    lo = float(values.min()) if vmin is None else float(vmin)
    hi = float(values.max()) if vmax is None else float(vmax)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return colorize_unit(scaled, cmap)


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


# ---- scaling a layer's maps to colours ---------------------------------------------------------


@dataclass(frozen=True)
class ColorScale:
    """What the colours of a picture mean: `vmin`..`vmax` in `unit` (for the colour bar)."""

    mode: str
    vmin: float
    vmax: float
    unit: str


def scale_maps(maps, scale: str = "shared", vmin: float | None = None, vmax: float | None = None,
               clip: float = 2.0) -> tuple[np.ndarray, ColorScale]:
    """Scale a layer's output (C x H x W maps, or C dense nodes) to [0, 1] for colouring.

    `shared`: one range for all maps (`vmin`/`vmax`, default the values' min and max; pass the
    same range for several images to compare them). `per_map`: every map its own min..max
    (dense nodes: the layer's min..max for this image). `standardize`: the articles' view,
    (x - mean) / std per map clipped to +-`clip` std (dense nodes: over the layer's nodes).
    """
    check_choice("scale", scale, SCALES)
    values = as_numpy(maps)
    if values.ndim not in (1, 3):
        raise ValueError(f"expected C x H x W maps or C nodes, got shape {values.shape}")
    dense = values.ndim == 1
    if scale == "shared":
        lo = float(values.min()) if vmin is None else float(vmin)
        hi = float(values.max()) if vmax is None else float(vmax)
        scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        return np.clip(scaled, 0.0, 1.0), ColorScale("shared", lo, hi, "activation")
    if scale == "per_map":
        if dense:
            scaled, _ = scale_maps(values, "shared")
            return scaled, ColorScale("per_map", 0.0, 1.0, "layer min..max")
        lo = values.min(axis=(1, 2), keepdims=True)
        span = values.max(axis=(1, 2), keepdims=True) - lo
        scaled = np.divide(values - lo, span, out=np.zeros_like(values), where=span > 0)
        return scaled, ColorScale("per_map", 0.0, 1.0, "map min..max")
    if dense:
        standardized = standardize_clip(values, clip)
    else:
        mean = values.mean(axis=(1, 2), keepdims=True)
        std = values.std(axis=(1, 2), keepdims=True)
        standardized = np.clip(np.divide(values - mean, std, out=np.zeros_like(values), where=std > 0), -clip, clip)
    return (standardized + clip) / (2 * clip), ColorScale("standardize", -clip, clip, "std. dev. from the map mean")


def tile_factor(size: int, target: int = 56) -> int:
    """Integer upscaling that makes a `size`-pixel map about `target` pixels wide."""
    return max(1, int(round(target / max(1, size))))


@dataclass(frozen=True)
class GridLayout:
    """Where the tiles of a `map_grid` picture are: tile `i` starts at `origin(i)`."""

    count: int
    tile_shape: tuple[int, int]  # (height, width) of one map in source pixels
    factor: int  # source pixel -> factor x factor picture pixels
    columns: int
    separator: int

    @property
    def rows(self) -> int:
        return -(-self.count // self.columns)

    @property
    def shape(self) -> tuple[int, int]:
        h, w = (s * self.factor for s in self.tile_shape)
        return (self.rows * h + (self.rows - 1) * self.separator, self.columns * w + (self.columns - 1) * self.separator)

    def origin(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} out of range 0..{self.count - 1}")
        h, w = (s * self.factor for s in self.tile_shape)
        return tile_origin(index, (h, w), self.columns, self.separator)

    def pixel_box(self, index: int, y: int = 0, x: int = 0) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) picture pixels showing pixel (y, x) of map `index`."""
        top, left = self.origin(index)
        top, left = top + y * self.factor, left + x * self.factor
        return top, left, top + self.factor, left + self.factor

    def pixel_center(self, index: int, y: int = 0, x: int = 0) -> tuple[int, int]:
        top, left, bottom, right = self.pixel_box(index, y, x)
        return (top + bottom) // 2, (left + right) // 2


def map_grid(scaled, cmap: str = "viridis", factor: int | None = None, columns: int = 8, separator: int = 1,
             separator_color: tuple[int, int, int] = SEPARATOR, numbers: bool = False,
             first_number: int = 0, number_list: Sequence[int] | None = None) -> tuple[np.ndarray, GridLayout]:
    """All maps (C x H x W, already scaled to [0, 1]) or dense nodes (C values) as one picture.

    Tiles go row by row from the top left, `columns` per row; the last row may be partial, so
    every map or node is shown. Dense nodes become coloured squares of `factor` pixels.
    `numbers` writes each tile's number (`first_number + i`, or `number_list[i]`) in its corner.
    """
    values = as_numpy(scaled)
    if values.ndim == 1:
        values = values[:, None, None]
        factor = factor or 28
    if values.ndim != 3 or len(values) == 0:
        raise ValueError(f"expected C x H x W maps or C nodes, got shape {np.shape(scaled)}")
    count, height, width = values.shape
    factor = factor or tile_factor(max(height, width))
    columns = max(1, min(columns, count))
    layout = GridLayout(count, (height, width), factor, columns, separator)
    colored = colorize_unit(values, cmap)  # C x H x W x 3
    canvas = np.empty(layout.shape + (3,), dtype=np.uint8)
    canvas[:] = separator_color
    th, tw = height * factor, width * factor
    for index in range(count):
        y, x = layout.origin(index)
        canvas[y:y + th, x:x + tw] = upscale(colored[index], factor)
    if count % columns:  # leave the unused end of the last row blank
        y, x = tile_origin(count, (th, tw), columns, separator)
        canvas[y:, x:] = WHITE
    if numbers:
        labels = list(number_list) if number_list is not None else [first_number + i for i in range(count)]
        canvas = number_tiles(canvas, layout, labels)
    return canvas, layout


@functools.lru_cache(maxsize=16)
def font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's bundled font at `size` pixels (the fixed bitmap font if FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # pragma: no cover - very old Pillow / no FreeType
        return ImageFont.load_default()


def number_tiles(image: np.ndarray, layout: GridLayout, labels: Sequence[object],
                 size: int | None = None) -> np.ndarray:
    """Write `labels[i]` into the top-left corner of tile i (white on a dark box)."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    tile_h = layout.tile_shape[0] * layout.factor
    face = font(size or max(8, min(12, tile_h // 3)))
    for index, text in enumerate(labels[:layout.count]):
        y, x = layout.origin(index)
        box = draw.textbbox((x + 1, y), str(text), font=face)
        draw.rectangle(box, fill=BLACK)
        draw.text((x + 1, y), str(text), fill=WHITE, font=face)
    return np.asarray(picture)


# ---- layout --------------------------------------------------------------------------------


def text_block(text: str, size: int = 13, color: tuple[int, int, int] = BLACK,
               background: tuple[int, int, int] = WHITE, padding: int = 2, width: int | None = None) -> np.ndarray:
    """A picture of (multi-line) text; `width` pads it to at least that many pixels."""
    face = font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), text, font=face, spacing=2)
    w = max(right - left + 2 * padding, width or 0, 1)
    h = bottom - top + 2 * padding
    picture = Image.new("RGB", (w, h), background)
    ImageDraw.Draw(picture).multiline_text((padding - left, padding - top), text, fill=color, font=face, spacing=2)
    return np.asarray(picture)


def pad(image: np.ndarray, top: int = 0, right: int = 0, bottom: int = 0, left: int = 0,
        color: tuple[int, int, int] = WHITE) -> np.ndarray:
    h, w = image.shape[:2]
    canvas = np.empty((h + top + bottom, w + left + right, 3), dtype=np.uint8)
    canvas[:] = color
    canvas[top:top + h, left:left + w] = image
    return canvas


def stack(images: Sequence[np.ndarray], axis: str = "h", gap: int = 8, align: str = "start",
          background: tuple[int, int, int] = WHITE) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Put RGB pictures side by side (`h`) or one below the other (`v`).

    Returns the picture and each part's top-left (y, x), so callers can find things in it.
    `align` is `start` (top / left), `center` or `end`.
    """
    check_choice("axis", axis, ("h", "v"))
    check_choice("align", align, ("start", "center", "end"))
    if not images:
        raise ValueError("stack needs at least one picture")
    along = 1 if axis == "h" else 0
    across = 1 - along
    total = sum(im.shape[along] for im in images) + gap * (len(images) - 1)
    thick = max(im.shape[across] for im in images)
    shape = (thick, total) if axis == "h" else (total, thick)
    canvas = np.empty(shape + (3,), dtype=np.uint8)
    canvas[:] = background
    offsets: list[tuple[int, int]] = []
    position = 0
    for im in images:
        spare = thick - im.shape[across]
        shift = {"start": 0, "center": spare // 2, "end": spare}[align]
        y, x = (shift, position) if axis == "h" else (position, shift)
        canvas[y:y + im.shape[0], x:x + im.shape[1]] = im[..., :3]
        offsets.append((y, x))
        position += im.shape[along] + gap
    return canvas, offsets


def colorbar(color_scale: ColorScale, cmap: str = "viridis", length: int = 200, thickness: int = 14,
             ticks: int = 5, size: int = 11) -> np.ndarray:
    """A vertical colour bar (high values on top) with tick labels and the scale's unit."""
    ramp = np.linspace(1.0, 0.0, length)[:, None].repeat(thickness, axis=1)
    bar = pad(colorize_unit(ramp, cmap), 1, 1, 1, 1, color=(120, 120, 120))
    labels = np.linspace(color_scale.vmax, color_scale.vmin, max(2, ticks))
    face = font(size)
    text_w = max(int(face.getlength(_tick(v))) for v in labels) + 6
    canvas = Image.new("RGB", (bar.shape[1] + text_w, bar.shape[0] + size), WHITE)
    canvas.paste(Image.fromarray(bar), (0, size // 2))
    draw = ImageDraw.Draw(canvas)
    for i, value in enumerate(labels):
        y = size // 2 + 1 + int(round(i * (length - 1) / (len(labels) - 1)))
        draw.line([(bar.shape[1], y), (bar.shape[1] + 3, y)], fill=BLACK)
        draw.text((bar.shape[1] + 5, y), _tick(value), fill=BLACK, font=face, anchor="lm")
    title = text_block(color_scale.unit, size=size)
    out, _ = stack([title, np.asarray(canvas)], axis="v", gap=2)
    return out


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def draw_circles(image: np.ndarray, centers: Sequence[tuple[float, float]], radius: float,
                 color: tuple[int, int, int] = (255, 0, 0), width: int = 2) -> np.ndarray:
    """Circles (the articles' hand-drawn markers) around (y, x) centres on a copy of `image`."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for y, x in centers:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=color, width=width)
    return np.asarray(picture)


def gray_image(image, factor: int = 1, cmap: str = "binary") -> np.ndarray:
    """A [0, 1] (or uint8) grey image as RGB; `binary` shows ink dark on white like the articles."""
    values = as_numpy(image)
    if values.max() > 1.0:
        values = values / 255.0
    return upscale(colorize_unit(values, cmap), factor)


def overlay(image, heat, cmap: str = "jet", alpha: float = 0.8, factor: int = 1) -> np.ndarray:
    """A heat map (values in [0, 1]) over a grey image of the same H x W (ink dark on white).

    Each pixel's colour weight is `alpha` x its heat, so where the heat is 0 the plain digit shows.
    """
    base = as_numpy(image)
    if base.max() > 1.0:
        base = base / 255.0
    heat = np.clip(as_numpy(heat), 0.0, 1.0)
    if base.shape != heat.shape:
        raise ValueError(f"image {base.shape} and heat map {heat.shape} differ in shape")
    gray = np.repeat(((1.0 - base) * 255.0)[..., None], 3, axis=2)
    weight = (alpha * heat)[..., None]
    mixed = (1.0 - weight) * gray + weight * colorize_unit(heat, cmap).astype(np.float64)
    return upscale(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), factor)
