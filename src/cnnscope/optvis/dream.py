"""DeepDream with the MNIST network, on the one gradient-ascent engine (`cnnscope.optvis.ascent`).

Three ways to let an objective (a map, several maps, a layer, a weighted mix of layers)
"dream" on the luminance of a photo; the photo's colours are put back afterwards
(`Photo.compose`). All three carry the detail the network cannot see in the same way: only
the *change* the ascent makes is resized, and it is added to the full-resolution photo. So
with zero steps every mode gives back the photo bit for bit.

`downscale` (the articles' single-map dream, part I of the DeepDream series):
    repeat `rounds` times (default 4):
        s = bicubic, antialiased downscale of the image to 28 x 28
        x = per-image standardisation of s            (the network saw standardised digits)
        x' = ascend(x, `steps` steps, default 40)       (the articles' OIP step rule)
        image += upscale(x' - x) * std(s)              = upscale(dreamed) + the lost detail
    finish with the articles' adjustment of the value distribution: standardise the image and
    give it the standard deviation `width` (default 0.25 of the grey range) around mid-grey.
    The articles re-add the detail lost by the first downscale (photo - up(down(photo))); for
    the first round that is the same image, for later rounds ours keeps the earlier rounds'
    changes sharp instead of passing them through another down-up blur.

`octaves` (the DeepDream notebook / Keras example): the image at `octaves` sizes, each
    `octave_scale` times the next smaller, the finest with one network pixel per `px` photo
    pixels. At each size, from the smallest: start = photo at this size + the change so far
    (upscaled), ascend `steps` steps with gradient normalisation and random roll jitter,
    keep the change. The conv layers run on the whole image at each size.

`native`: the photo at full resolution (one network pixel per photo pixel), `rounds`
    times `steps` steps; optionally cut into `tile` x `tile` tiles (a multiple of 28) on a
    grid shifted by a random offset each round, so tile borders never stay in one place.
    Photos above `MAX_BATCH_PIXELS` are always tiled, to bound memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from cnnscope.data.photos import Photo
from cnnscope.errors import UserError, check_choice, check_positive, check_whole
from cnnscope.optvis.ascent import AscentSettings, ascend
from cnnscope.optvis.callbacks import Callback, ProgressBar
from cnnscope.optvis.objectives import Objective, objective_values, resolve_layer, validate
from cnnscope.optvis.parametrizations import PARAMETRIZATIONS
from cnnscope.runtime import device_of, using_threads

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


@dataclass
class Stage:
    """One round or octave: its size, and the objective's value before and after the ascent."""

    name: str
    size: tuple[int, int]  # (height, width) the network saw
    steps: int
    value_start: float
    value_end: float
    seconds: float
    tiles: int = 1


@dataclass
class DreamResult:
    luminance: torch.Tensor  # 1 x 1 x H x W in [0, 1]: the dream, after the final adjustment
    raw: torch.Tensor  # 1 x 1 x H x W: the dream before the adjustment (not clipped)
    stages: list[Stage]
    frames: list[torch.Tensor]  # H x W in [0, 1] (adjusted): the photo, then after each stage
    settings: DreamSettings
    objective: str
    seconds: float
    tile: int = 0  # tile side used by the native mode (0 = whole photo)
    pattern: torch.Tensor | None = None  # downscale: the last dreamed 28 x 28 image (standardised)
    blurred: torch.Tensor | None = None  # downscale: that image upscaled to the photo, photo units
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        """The objective's value at the start, then after each round / octave."""
        return [self.stages[0].value_start, *(s.value_end for s in self.stages)] if self.stages else []

    def summary(self) -> dict:
        """Everything worth a JSON sidecar (no tensors)."""
        return {
            "objective": self.objective,
            "settings": asdict(self.settings),
            "tile": self.tile,
            "values": self.values,
            "stages": [asdict(s) for s in self.stages],
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


# ---- small pure helpers ------------------------------------------------------------------
def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic, antialiased resize of N x C x H x W to `size`; the same size returns `x` itself."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def adjust_distribution(image: torch.Tensor, width: float) -> torch.Tensor:
    """The articles' final step: standardise, give the values std `width` around 0.5, clip to [0, 1].

    `width` 0 only clips. (Their gray-level view: (x - mean) / std * 64 + 128, clipped to 0..255,
    is width 0.25.)
    """
    if width == 0:
        return image.clamp(0.0, 1.0)
    std = image.std(unbiased=False)
    if float(std) < 1e-6:  # a flat image (up to float rounding) stays flat, at mid-grey
        return torch.full_like(image, 0.5)
    return ((image - image.mean()) / std * width + 0.5).clamp(0.0, 1.0)


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
    """UserError if the model's input normalisation cannot be applied to a photo in this mode:
    `per_pixel` standardises each of the 28x28 pixels by its own mean and std, which has no
    meaning for a photo of another size (octaves and native); downscale works at 28x28 with
    the articles' per-image standardisation and takes any normalisation."""
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


# ---- the dream -----------------------------------------------------------------------------
def dream(
    model,
    photo: Photo | torch.Tensor,
    objective: Objective,
    settings: DreamSettings | None = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    on_stage: Callable[[Stage], None] | None = None,
    threads: int | None = 1,
) -> DreamResult:
    """Let `objective` dream on a photo's luminance; returns the new luminance and its history.

    `photo` is a `Photo` or a luminance tensor (1 x 1 x H x W or H x W, values in [0, 1]).
    The photo's colours are not touched here: `photo.compose(result.luminance)` adds them.
    `threads`: torch CPU threads during the dream (restored afterwards); None leaves torch's
    setting. The default 1 is deliberate: a dream's images are small (28 x 28 up to a few
    hundred pixels) and gain little from intra-op threads, while on a busy machine more
    threads are slower (benchmarks/dream_speed.py on 2 shared cores: 1.1-1.3x with the
    package's OMP_WAIT_POLICY=PASSIVE, 4-70x without it).
    """
    started = time.perf_counter()
    settings = (settings or DreamSettings()).resolved()
    luminance = photo.luminance if isinstance(photo, Photo) else photo
    if luminance.dim() == 2:
        luminance = luminance[None, None]
    if luminance.dim() != 4 or luminance.shape[:2] != (1, 1):
        raise UserError(f"a photo's luminance must be 1 x 1 x H x W, got shape {tuple(luminance.shape)}")
    height, width = int(luminance.shape[-2]), int(luminance.shape[-1])
    check_objective(model, objective, settings.mode)
    check_normalization(model, settings.mode)
    sizes = check_sizes(settings, height, width)
    device = device_of(model)
    original = luminance.detach().to(device=device, dtype=torch.float32)
    run = _Runner(model, objective, settings, progress, callbacks, on_stage)
    with using_threads(threads if device.type == "cpu" else None):
        return _dream(run, original, sizes, started)


def _dream(run: _Runner, original: torch.Tensor, sizes: list[tuple[int, int]], started: float) -> DreamResult:
    settings = run.settings
    record = _Record(run, original)
    if settings.mode == "downscale":
        raw, pattern, blurred = _dream_downscale(run, original, sizes, record)
        tile = 0
    elif settings.mode == "octaves":
        raw, tile, pattern, blurred = _dream_octaves(run, original, sizes, record), 0, None, None
    else:
        raw, tile = _dream_native(run, original, record)
        pattern = blurred = None
    final = adjust_distribution(raw, settings.width)
    return DreamResult(
        luminance=final.cpu(), raw=raw.cpu(), stages=record.stages, frames=record.frames, settings=settings,
        objective=run.objective.name, seconds=time.perf_counter() - started, tile=tile,
        pattern=pattern, blurred=blurred, notes=record.notes,
    )


class _Record:
    """The stages, frames and notes of a dream as it goes."""

    def __init__(self, run: _Runner, original: torch.Tensor):
        self.run = run
        self.frames = [adjust_distribution(original, run.settings.width)[0, 0].cpu()]
        self.stages: list[Stage] = []
        self.notes: list[str] = []

    def finish(self, stage: Stage, image: torch.Tensor) -> None:
        self.stages.append(stage)
        self.frames.append(adjust_distribution(image, self.run.settings.width)[0, 0].cpu())
        if self.run.on_stage is not None:
            self.run.on_stage(stage)


def _dream_downscale(run: _Runner, original: torch.Tensor, sizes: list[tuple[int, int]], record: _Record):
    """The articles' rounds at 28 x 28: (raw dream, last 28 x 28 pattern, that pattern upscaled)."""
    settings = run.settings
    height, width = int(original.shape[-2]), int(original.shape[-1])
    image = original
    for index, size in enumerate(sizes):
        clock = time.perf_counter()
        small = resize(image, size)
        mean = small.mean()
        std = small.std(unbiased=False).clamp_min(1.0 / math.sqrt(small.numel()))
        x = (small - mean) / std
        dreamed, v0, v1 = run.ascend(x, f"round {index + 1}/{len(sizes)}", seed=settings.seed + index)
        image = image + resize((dreamed - x) * std, (height, width))
        pattern = dreamed
        record.finish(Stage(f"round {index + 1}", size, settings.steps, v0, v1, time.perf_counter() - clock), image)
    blurred = resize(pattern * std + mean, (height, width))[0, 0].cpu()
    return image, pattern[0, 0].cpu(), blurred


def _dream_octaves(run: _Runner, original: torch.Tensor, sizes: list[tuple[int, int]], record: _Record):
    """The image at each octave size, smallest first, the change carried up; returns the raw dream."""
    settings = run.settings
    height, width = int(original.shape[-2]), int(original.shape[-1])
    shift, scale = network_affine(run.model, original)
    base = (original - shift) / scale
    change = torch.zeros_like(base)
    for index, size in enumerate(sizes):
        clock = time.perf_counter()
        carried = resize(change, size)
        start = resize(base, size) + carried
        dreamed, v0, v1 = run.ascend(start, f"octave {index + 1}/{len(sizes)} {size[1]}x{size[0]}",
                                     seed=settings.seed + index)
        change = carried + (dreamed - start)
        image = original + resize(change, (height, width)) * scale
        record.finish(Stage(f"octave {index + 1}", size, settings.steps, v0, v1, time.perf_counter() - clock), image)
    return original + resize(change, (height, width)) * scale


def _dream_native(run: _Runner, original: torch.Tensor, record: _Record):
    """Rounds at full resolution, tiled on a randomly shifted grid when needed; (raw dream, tile)."""
    settings = run.settings
    height, width = int(original.shape[-2]), int(original.shape[-1])
    shift, scale = network_affine(run.model, original)
    base = (original - shift) / scale
    change = torch.zeros_like(base)
    tile = auto_tile(height, width, settings.tile)
    if tile and not settings.tile:
        record.notes.append(f"photo larger than {MAX_BATCH_PIXELS:,} pixels: dreamed in {tile}x{tile} tiles")
    generator = torch.Generator().manual_seed(settings.seed)
    for index in range(settings.rounds):
        clock = time.perf_counter()
        start = base + change
        name = f"round {index + 1}/{settings.rounds}"
        if tile:
            offset = tuple(torch.randint(0, tile, (2,), generator=generator).tolist())
            dreamed, v0, v1, count = run.ascend_tiled(start, tile, offset, name, seed=settings.seed + index)
        else:
            (dreamed, v0, v1), count = run.ascend(start, name, seed=settings.seed + index), 1
        change = change + (dreamed - start)
        image = original + change * scale
        record.finish(Stage(f"round {index + 1}", (height, width), settings.steps, v0, v1,
                            time.perf_counter() - clock, tiles=count), image)
    return original + change * scale, tile


class _Runner:
    """Calls the engine with this dream's settings (zero steps: no ascent, values only)."""

    def __init__(self, model, objective: Objective, settings: DreamSettings, progress: bool,
                 callbacks: Sequence[Callback], on_stage: Callable[[Stage], None] | None = None):
        self.model, self.objective, self.settings = model, objective, settings
        self.progress, self.callbacks, self.on_stage = progress, tuple(callbacks), on_stage

    def ascent_settings(self, seed: int) -> AscentSettings:
        s = self.settings
        return AscentSettings(
            steps=int(s.steps), epsilon=float(s.epsilon), rule="normalized",
            standardize=s.mode == "downscale",  # the articles' OIP loop; octaves/native keep the photo's scale
            jitter=int(s.jitter), snapshot_steps=(), seed=int(seed), param=s.param, valid_pixels=bool(s.valid_pixels),
        )

    def ascend(self, x: torch.Tensor, name: str, seed: int) -> tuple[torch.Tensor, float, float]:
        """(dreamed batch, mean value before, mean value after)."""
        if self.settings.steps == 0:
            value = float(objective_values(self.objective, self.model, x).float().mean())
            return x, value, value
        hooks = [*self.callbacks]
        if self.progress:
            hooks.append(ProgressBar(description=name))
        result = ascend(self.model, x, self.objective, self.ascent_settings(seed), callbacks=hooks)
        dreamed = result.images
        if not torch.equal(result.start, x):  # another parametrisation: only the ascent's change is the dream's
            dreamed = x + (result.images - result.start)
        return dreamed, float(result.values[0].mean()), float(result.values[-1].mean())

    def ascend_tiled(self, x: torch.Tensor, tile: int, offset: tuple[int, int], name: str, seed: int
                     ) -> tuple[torch.Tensor, float, float, int]:
        """Ascend the tiles of a shifted grid, batched up to MAX_BATCH_PIXELS; reassemble."""
        height, width = x.shape[-2:]
        (top, bottom, left, right), origins = tile_layout(height, width, tile, offset)
        padded = F.pad(x, (left, right, top, bottom), mode="reflect")
        tiles = torch.cat([padded[..., y:y + tile, x0:x0 + tile] for y, x0 in origins])
        per_batch = max(1, MAX_BATCH_PIXELS // (tile * tile))
        dreamed, before, after = [], [], []
        for number, first in enumerate(range(0, len(origins), per_batch)):
            batch = tiles[first:first + per_batch]
            out, v0, v1 = self.ascend(batch, f"{name} tiles {first + 1}-{first + len(batch)}", seed * 1000 + number)
            dreamed.append(out)
            before.append(v0 * len(batch))
            after.append(v1 * len(batch))
        dreamed_tiles = torch.cat(dreamed)
        out = padded.clone()
        for (y, x0), piece in zip(origins, dreamed_tiles, strict=True):
            out[..., y:y + tile, x0:x0 + tile] = piece
        out = out[..., top:top + height, left:left + width]
        count = len(origins)
        return out, sum(before) / count, sum(after) / count, count


# ---- pictures ------------------------------------------------------------------------------


# ---- which maps dream well ----------------------------------------------------------------
def screen_maps(model, photo: Photo | torch.Tensor, layer_name: str, steps: int = 40,
                epsilon: float = 0.01) -> torch.Tensor:
    """How far each map of `layer_name` can raise itself on the photo squeezed to 28 x 28.

    One batched ascent (every map at once, the downscale mode's settings); returns each map's
    objective value after `steps` steps minus its value at the start (maps x 1).
    """
    from cnnscope.nn.model import per_image_standardize
    from cnnscope.optvis.objectives import channel, per_element

    luminance = photo.luminance if isinstance(photo, Photo) else photo
    device = device_of(model)
    count = model.output_shape(layer_name)[0]
    small = per_image_standardize(resize(luminance.to(device=device, dtype=torch.float32), (NETWORK_SIZE, NETWORK_SIZE)))
    objective = per_element([channel(layer_name, i) for i in range(count)])
    settings = AscentSettings(steps=int(steps), epsilon=float(epsilon), snapshot_steps=())
    with using_threads(1 if device.type == "cpu" else None):
        result = ascend(model, small.repeat(count, 1, 1, 1), objective, settings)
    return (result.values[-1] - result.values[0]).cpu()


