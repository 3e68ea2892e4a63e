"""What a dream is asked to do and whether it can: `DreamSettings` (mode, steps, rounds, octaves,
tiles; the per-mode defaults of `MODE_DEFAULTS`), the sizes each mode shows the network
(`octave_sizes`, `tile_layout`, `auto_tile`) and the checks made before any ascent (the
objective, the model's input normalisation, the sizes). `optvis.dream` runs dreams with them;
every name here is also importable from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from cnnscope.errors import UserError, check_choice, check_positive, check_whole
from cnnscope.optvis.objectives import Objective, resolve_layer, validate
from cnnscope.optvis.parametrizations import PARAMETRIZATIONS

MODES = ("downscale", "octaves", "native")
NETWORK_SIZE = 28  # the MNIST network's own input size
MAX_BATCH_PIXELS = 1024 * 1024  # pixels per ascent call (native tiles are batched up to this): ~0.5-0.75 GB peak
MAX_OCTAVE_PIXELS = 2_500_000  # the finest octave may not be larger (use a larger --px)
DEFAULT_MAP = "Conv2D_3:56"  # the articles' map

# Per-mode defaults; `None` fields of DreamSettings take these.
MODE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "downscale": {"steps": 40, "rounds": 4, "epsilon": 0.01, "jitter": 0, "width": 0.25},
    "octaves": {"steps": 20, "rounds": 1, "epsilon": 0.05, "jitter": 4, "width": 0.0},
    "native": {"steps": 10, "rounds": 4, "epsilon": 0.05, "jitter": 4, "width": 0.0},
}


@dataclass
class DreamSettings:
    """The knobs of a dream. Fields left at None take the mode's default (`MODE_DEFAULTS`)."""

    mode: str = "downscale"
    steps: int | None = None  # ascent steps per round / octave (0: no ascent, for checks)
    rounds: int | None = None  # downscale and native: how often to repeat
    epsilon: float | None = None  # step size of the normalised-gradient rule
    jitter: int | None = None  # random roll (network pixels) each step, undone afterwards
    width: float | None = None  # final value distribution: std around 0.5; 0 = keep values
    octaves: int = 3
    octave_scale: float = 1.4
    px: float = 4.0  # octaves: photo pixels per network pixel at the finest octave
    tile: int = 0  # native: tile side (multiple of 28); 0 = whole photo (tiled above the limit)
    seed: int = 0
    param: str = "pixel"  # parametrisation of the ascent: pixel, fourier or maco (optvis.parametrizations)
    valid_pixels: bool = False  # keep the dreamed images inside the range of real pixels

    def resolved(self) -> DreamSettings:
        """A copy with the mode's defaults filled in, checked (UserError on bad values)."""
        check_choice("dream mode", self.mode, MODES)
        defaults = MODE_DEFAULTS[self.mode]
        filled = replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        return filled.check()

    def check(self) -> DreamSettings:
        check_whole("steps", self.steps, minimum=0)
        check_whole("rounds", self.rounds, minimum=1)
        check_positive("epsilon", self.epsilon)
        check_whole("jitter", self.jitter, minimum=0)
        check_positive("width", self.width, allow_zero=True)
        check_whole("octaves", self.octaves, minimum=1)
        check_positive("octave scale", self.octave_scale)
        if not float(self.octave_scale) > 1.0:
            raise UserError(f"octave scale must be > 1 (each octave larger than the last), got {self.octave_scale!r}")
        check_positive("px", self.px)
        if float(self.px) < 1.0:
            raise UserError(f"px (photo pixels per network pixel) must be >= 1, got {self.px!r}")
        check_whole("tile", self.tile, minimum=0)
        if self.tile and self.tile % NETWORK_SIZE:
            raise UserError(f"tile must be a multiple of {NETWORK_SIZE} pixels (or 0 for none), got {self.tile}")
        check_whole("seed", self.seed, minimum=0)
        check_choice("parametrization", self.param, PARAMETRIZATIONS)
        return self


def octave_sizes(height: int, width: int, octaves: int, scale: float, px: float) -> list[tuple[int, int]]:
    """Sizes the network sees, smallest first; the finest has one network pixel per `px` photo pixels."""
    finest_h, finest_w = height / px, width / px
    sizes = []
    for i in reversed(range(octaves)):
        factor = scale ** i
        sizes.append((max(1, round(finest_h / factor)), max(1, round(finest_w / factor))))
    return sizes


def tile_layout(height: int, width: int, tile: int, offset: tuple[int, int]
                ) -> tuple[tuple[int, int, int, int], list[tuple[int, int]]]:
    """A grid of `tile` x `tile` tiles shifted by `offset` (each in 0..tile-1) that covers the image.

    Returns the padding (top, bottom, left, right) that makes the padded image a whole number of
    tiles, and each tile's top-left (y, x) in the padded image. Every image pixel lies in
    exactly one tile.
    """
    oy, ox = offset
    if not (0 <= oy < tile and 0 <= ox < tile):
        raise ValueError(f"offset {offset} must lie in 0..{tile - 1}")
    top, left = oy, ox
    rows, cols = math.ceil((height + top) / tile), math.ceil((width + left) / tile)
    bottom, right = rows * tile - height - top, cols * tile - width - left
    origins = [(r * tile, c * tile) for r in range(rows) for c in range(cols)]
    return (top, bottom, left, right), origins


def default_map(model) -> str:
    """The map dreamt of when none is given: the articles' Conv2D_3:56 if the model has it, else
    map 0 of its deepest conv layer (another layout)."""
    convs = model.layers_of_kind("conv")
    layer_name, number = DEFAULT_MAP.split(":")
    if layer_name in convs and model.output_shape(layer_name)[0] > int(number):
        return DEFAULT_MAP
    return f"{convs[-1]}:0" if convs else DEFAULT_MAP


def check_normalization(model, mode: str) -> None:
    """UserError if the model cannot dream on a photo (neither 1 nor 3 input channels; a colour
    network in the downscale mode) or its input normalisation cannot be applied to a photo in
    this mode:
    `per_pixel` standardises each of the 28x28 pixels by its own mean and std, which has no
    meaning for a photo of another size (octaves and native); downscale works at 28x28 with
    the articles' per-image standardisation and takes any normalisation."""
    channels = model.spec.in_channels
    if channels not in (1, 3):
        raise UserError(f"dreams paint into a photo's grey luminance (1 channel) or its colours (3); this network "
                        f"takes {channels} channels")
    if channels == 3 and mode == "downscale":
        raise UserError("the downscale mode is the articles' 28x28 grey loop; a colour network dreams with --mode "
                        "octaves or native", "mode")
    if mode != "downscale" and model.spec.normalization.mode == "per_pixel":
        raise UserError(f"--mode {mode} needs one shift and scale for the whole photo, but this model standardises "
                        f"each of its {NETWORK_SIZE}x{NETWORK_SIZE} pixels separately (per_pixel normalisation); "
                        "use --mode downscale", "mode")


def network_affine(model, luminance: torch.Tensor) -> tuple[float, float]:
    """(shift, scale) with network input = (raw - shift) / scale, as the model's own normalisation
    (a UserError for the per_pixel normalisation: see `check_normalization`)."""
    norm = model.spec.normalization
    if norm.mode == "per_pixel":
        check_normalization(model, "octaves")
    if norm.mode == "global":
        return float(norm.mean), float(norm.std)
    if norm.mode == "per_image":
        n = luminance.numel()
        return float(luminance.mean()), max(float(luminance.std(unbiased=False)), 1.0 / math.sqrt(n))
    return 0.0, 1.0


def check_objective(model, objective: Objective, mode: str) -> None:
    """Unknown layer / map out of range -> UserError; dense objectives only at 28 x 28 (downscale)."""
    validate(objective, model)
    if mode == "downscale":
        return
    for name in objective.layers:
        real = resolve_layer(name, model)
        if not model.is_spatial(real):
            raise UserError(f"layer {real} is not a conv/pool layer: it only exists for {NETWORK_SIZE}x{NETWORK_SIZE} "
                            f"images, so --mode {mode} cannot use it; use --mode downscale or a conv layer "
                            f"(e.g. --map {DEFAULT_MAP})")


def check_sizes(settings: DreamSettings, height: int, width: int) -> list[tuple[int, int]]:
    """The sizes the network will see in this mode; UserError if they are too small or too large."""
    if settings.mode == "downscale":
        return [(NETWORK_SIZE, NETWORK_SIZE)] * int(settings.rounds)
    if settings.mode == "native":
        if settings.tile and settings.tile > min(height, width):
            raise UserError(f"tile {settings.tile} is larger than the photo ({width}x{height}); "
                            f"use a tile of at most {min(height, width) // NETWORK_SIZE * NETWORK_SIZE} or 0")
        return [(height, width)] * int(settings.rounds)
    sizes = octave_sizes(height, width, settings.octaves, settings.octave_scale, settings.px)
    smallest = sizes[0]
    if min(smallest) < NETWORK_SIZE:
        raise UserError(f"the smallest octave would be {smallest[1]}x{smallest[0]} network pixels "
                        f"({settings.octaves} octaves, scale {settings.octave_scale:g}, px {settings.px:g} on a "
                        f"{width}x{height} photo); it needs at least {NETWORK_SIZE}x{NETWORK_SIZE}: use fewer "
                        f"octaves, a smaller --octave-scale or a smaller --px")
    finest = sizes[-1]
    if finest[0] * finest[1] > MAX_OCTAVE_PIXELS:
        raise UserError(f"the finest octave would be {finest[1]}x{finest[0]} network pixels, more than "
                        f"{MAX_OCTAVE_PIXELS:,}; use a larger --px or --mode native (tiled)")
    return sizes


def auto_tile(height: int, width: int, tile: int) -> int:
    """The tile side the native mode uses: the requested one, or one that bounds memory."""
    if tile or height * width <= MAX_BATCH_PIXELS:
        return int(tile)
    side = int(math.sqrt(MAX_BATCH_PIXELS)) // NETWORK_SIZE * NETWORK_SIZE
    return min(side, min(height, width) // NETWORK_SIZE * NETWORK_SIZE)
