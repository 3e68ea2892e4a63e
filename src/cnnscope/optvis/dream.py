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

What a dream is asked to do and the checks before it (`DreamSettings`, the per-mode
defaults, the sizes) live in `optvis.dream_settings`; what a dream returns (`DreamResult`, its
`Stage`s and the summary for the JSON sidecar) in `optvis.dream_run`. Both are importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cnnscope.data.photos import Photo
from cnnscope.errors import UserError
from cnnscope.optvis.ascent import AscentSettings, ascend
from cnnscope.optvis.callbacks import Callback, ProgressBar
from cnnscope.optvis.dream_run import (  # what a dream returns, also importable from here
    DreamResult as DreamResult,
    Stage as Stage,
)
from cnnscope.optvis.dream_settings import (  # what a dream is asked to do and the checks, also importable from here
    DEFAULT_MAP as DEFAULT_MAP,
    MAX_BATCH_PIXELS as MAX_BATCH_PIXELS,
    MAX_OCTAVE_PIXELS as MAX_OCTAVE_PIXELS,
    MODE_DEFAULTS as MODE_DEFAULTS,
    MODES as MODES,
    NETWORK_SIZE as NETWORK_SIZE,
    DreamSettings as DreamSettings,
    auto_tile as auto_tile,
    check_normalization as check_normalization,
    check_objective as check_objective,
    check_sizes as check_sizes,
    default_map as default_map,
    network_affine as network_affine,
    octave_sizes as octave_sizes,
    tile_layout as tile_layout,
)
from cnnscope.optvis.objectives import Objective, objective_values
from cnnscope.optvis.parametrizations import ImageValidPixels, ValidPixels
from cnnscope.runtime import device_of, using_threads


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
    A colour network (3 input channels, `from_torch`) dreams on the photo's RGB instead (a
    `Photo`, or a 1 x 3 x H x W tensor) in the octaves and native modes; `result.luminance` is
    then that 1 x 3 x H x W RGB dream, which `photo.compose` shows as it is.
    `threads`: torch CPU threads during the dream (restored afterwards); None leaves torch's
    setting. The default 1 is deliberate: a dream's images are small (28 x 28 up to a few
    hundred pixels) and gain little from intra-op threads, while on a busy machine more
    threads are slower (benchmarks/dream_speed.py on 2 shared cores: 1.1-1.3x with the
    package's OMP_WAIT_POLICY=PASSIVE, 4-70x without it).
    """
    started = time.perf_counter()
    settings = (settings or DreamSettings()).resolved()
    check_normalization(model, settings.mode)
    channels = model.spec.in_channels
    if isinstance(photo, Photo):
        luminance = photo.luminance if channels == 1 else photo.rgb()
    else:
        luminance = photo[None, None] if photo.dim() == 2 else photo
    if luminance.dim() != 4 or luminance.shape[:2] != (1, channels):
        what = "luminance" if channels == 1 else "RGB image (for this colour network)"
        raise UserError(f"a photo's {what} must be 1 x {channels} x H x W, got shape {tuple(luminance.shape)}")
    height, width = int(luminance.shape[-2]), int(luminance.shape[-1])
    check_objective(model, objective, settings.mode)
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


def _frame(image: torch.Tensor) -> torch.Tensor:
    """1 x C x H x W -> H x W (grey) or 3 x H x W (colour) on the CPU."""
    return (image[0, 0] if image.shape[1] == 1 else image[0]).cpu()


class _Record:
    """The stages, frames and notes of a dream as it goes."""

    def __init__(self, run: _Runner, original: torch.Tensor):
        self.run = run
        self.frames = [_frame(adjust_distribution(original, run.settings.width))]
        self.stages: list[Stage] = []
        self.notes: list[str] = []

    def finish(self, stage: Stage, image: torch.Tensor) -> None:
        self.stages.append(stage)
        self.frames.append(_frame(adjust_distribution(image, self.run.settings.width)))
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
        settings = self.ascent_settings(seed)
        parametrization = settings.pieces(self.model).parametrization
        if isinstance(parametrization, ValidPixels) and not settings.standardize:
            # the start is the photo: read it back exactly (a standardised ascent, the downscale
            # mode, standardises the pattern before the sigmoid at every step, so it keeps reading
            # the photo as that pattern)
            parametrization = ImageValidPixels(parametrization.inner, parametrization.normalize, parametrization.gain)
        result = ascend(self.model, x, self.objective, settings, callbacks=hooks, parametrization=parametrization)
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


