"""The one gradient-ascent loop behind OIPs and dreams. It knows nothing about plots or files.

`ascend(model, images, objective, settings, callbacks)` changes a batch of images (in the
network's standardised input space) to raise `objective`, one value per image. The default
settings are the articles' algorithm (VIII/IX):

    for each step:  loss, g = objective(x), d objective / d x        (per image)
                    g = g / (sqrt(mean(g**2)) + 1e-7)                 ("normalized" rule)
                    x = x + epsilon * g
                    x = (x - mean) / max(std, 1/sqrt(N))             (per image)

Step numbering: "step k" is the image after k updates; `values[k]` is its objective value,
`snapshots[k]` the image. Step 0 is the start; the last step is `steps_used` (600 by default).
An image stops early (and stays frozen) when
- it "did not react": value and gradient exactly zero for more than `zero_patience` steps in a row
  (marked `reacted=False`), or
- `early_stop` is on and the relative change (v[k] - v[k-1]) / (v[k] + 1e-7) was below
  `tolerance` for `patience` steps in a row (only counted after step 10, as in the articles).

Callbacks are called once per step k = 0 .. steps_used with (k, images after k updates, values[k]).

Notes for users of the contract (issue 4): `ascend` runs on an eval-mode copy of the model
(channels-last on the CPU, parameters without gradients), so the caller's model is never
changed and callers need not switch modes. `Objective`s may name the layer "logits"
(`objectives.LOGITS`); use `objectives.capture(model, x, obj)` to evaluate an objective outside
this loop. The loop runs only on the images still moving, so `per_element` objectives are
narrowed with `Objective.select(index)` -- custom objectives that depend on the batch
position must pass a `select` function.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cnnscope.errors import UserError, check_choice, check_positive
from cnnscope.nn.model import per_image_standardize
from cnnscope.optvis.objectives import Objective, capture, validate

RULES = ("normalized", "adam")


def log_snapshot_steps(steps: int, count: int = 6) -> tuple[int, ...]:
    """The articles' log-spaced snapshot steps: 0, b, 2b, 4b, ... (b = steps // 2**count), last.

    600 steps -> (0, 9, 18, 36, 72, 144, 288, 600).
    """
    base = steps // 2 ** count
    middle = [base * 2 ** k for k in range(count)] if base > 0 else []
    return tuple(sorted({0, *[m for m in middle if 0 < m < steps], steps}))


@dataclass
class AscentSettings:
    """Knobs of the ascent loop; the defaults are the articles' algorithm."""

    steps: int = 600
    epsilon: float = 0.01
    rule: str = "normalized"  # or "adam"
    standardize: bool = True  # per-image standardisation after every step (articles)
    jitter: int = 0  # random roll of up to this many pixels each step (undone by the roll's gradient)
    blur: float = 0.0  # Gaussian blur sigma in pixels after each step
    tv_weight: float = 0.0  # total-variation penalty subtracted from the objective
    early_stop: bool = False
    tolerance: float = 5e-4  # relative loss change counted as converged (article VIII's default)
    patience: int = 4  # successive converged steps before an early stop
    zero_patience: int = 10  # "did not react": value and gradient zero for more than this many steps
    snapshot_steps: tuple[int, ...] | None = None  # None -> log_snapshot_steps(steps)
    seed: int = 0  # for jitter
    adam_betas: tuple[float, float] = (0.9, 0.999)

    def check(self) -> AscentSettings:
        """Raise UserError on a bad value (non-positive steps/epsilon, NaN, unknown rule)."""
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1:
            raise UserError(f"steps must be a whole number >= 1, got {self.steps!r}")
        check_positive("epsilon", self.epsilon)
        check_choice("step rule", self.rule, RULES)
        if int(self.jitter) != self.jitter or self.jitter < 0:
            raise UserError(f"jitter must be a whole number of pixels >= 0, got {self.jitter!r}")
        check_positive("blur", self.blur, allow_zero=True)
        check_positive("tv weight", self.tv_weight, allow_zero=True)
        check_positive("tolerance", self.tolerance, allow_zero=True)
        if int(self.patience) != self.patience or self.patience < 1:
            raise UserError(f"patience must be a whole number >= 1, got {self.patience!r}")
        if int(self.zero_patience) != self.zero_patience or self.zero_patience < 0:
            raise UserError(f"zero patience must be a whole number >= 0, got {self.zero_patience!r}")
        if self.snapshot_steps is not None:
            for step in self.snapshot_steps:
                if not 0 <= int(step) <= self.steps:
                    raise UserError(f"snapshot step {step} outside 0..{self.steps}")
        return self

    def snapshots(self) -> tuple[int, ...]:
        if self.snapshot_steps is None:
            return log_snapshot_steps(int(self.steps))
        return tuple(sorted({int(s) for s in self.snapshot_steps}))


@dataclass
class AscentResult:
    images: torch.Tensor  # N x 1 x H x W final images
    values: torch.Tensor  # (steps_run + 1) x N objective value per step (row 0 = start)
    reacted: torch.Tensor  # bool (N,)
    steps_used: torch.Tensor  # int (N,) updates applied to each image
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> N x 1 x H x W
    converged: torch.Tensor | None = None  # bool (N,): stopped by the early-stop rule

    @property
    def final(self) -> torch.Tensor:
        """Final objective value per image (N,)."""
        return self.values[-1]

    @property
    def steps_run(self) -> int:
        return self.values.shape[0] - 1


def relative_change(values: torch.Tensor) -> torch.Tensor:
    """The articles' convergence measure per step: (v[k] - v[k-1]) / (v[k] + 1e-7); row 0 is NaN."""
    out = torch.full_like(values, float("nan"))
    out[1:] = (values[1:] - values[:-1]) / (values[1:] + 1e-7)
    return out


# ---- callbacks ----------------------------------------------------------------------------
class Callback:
    """Hooks into the loop (tf-keras-vis style). Subclasses override what they need."""

    def on_begin(self, settings: AscentSettings, images: torch.Tensor) -> None:
        pass

    def __call__(self, step: int, images: torch.Tensor, values: torch.Tensor) -> None:
        pass

    def on_end(self, result: AscentResult) -> None:
        pass


class ProgressBar(Callback):
    """A tqdm bar over the steps, showing the mean objective value."""

    def __init__(self, description: str = "ascent", leave: bool = False, disable: bool | None = None):
        self.description, self.leave, self.disable = description, leave, disable
        self.bar = None

    def on_begin(self, settings, images):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=int(settings.steps), desc=self.description, leave=self.leave,
                        disable=self.disable, unit="step")

    def __call__(self, step, images, values):
        if self.bar is not None and step > 0:
            self.bar.update(step - self.bar.n)
            if step % 20 == 0:
                self.bar.set_postfix(value=f"{float(values.mean()):.4g}")

    def on_end(self, result):
        if self.bar is not None:
            self.bar.close()


class SnapshotCollector(Callback):
    """Keeps copies of the images at the given steps (and always the final ones)."""

    def __init__(self, steps: Sequence[int]):
        self.steps = set(int(s) for s in steps)
        self.snapshots: dict[int, torch.Tensor] = {}

    def __call__(self, step, images, values):
        if step in self.steps:
            self.snapshots[step] = images.detach().to("cpu", copy=True)

    def on_end(self, result):
        self.snapshots.setdefault(result.steps_run, result.images.detach().to("cpu", copy=True))


class GifWriter(Callback):
    """Collects uint8 frames of image `index` every `every` steps; write them with `save_gif`."""

    def __init__(self, index: int = 0, every: int = 5, cmap: str = "viridis", scale: int = 8):
        self.index, self.every, self.cmap, self.scale = int(index), max(1, int(every)), cmap, int(scale)
        self.frames: list = []

    def __call__(self, step, images, values):
        if step % self.every == 0:
            self.frames.append(self.frame(images[self.index, 0]))

    def on_end(self, result):
        if result.steps_run % self.every != 0:
            self.frames.append(self.frame(result.images[self.index, 0]))

    def frame(self, image: torch.Tensor):
        from cnnscope.figures.render import colorize, upscale

        return upscale(colorize(image, self.cmap), self.scale)


def save_gif(path, frames: Sequence, duration_ms: int = 60, loop: int = 0):
    """Write frames (H x W x 3 uint8 arrays) as an animated GIF, atomically."""
    from PIL import Image

    from cnnscope.files import atomic_path

    if not frames:
        raise UserError("no frames to write; the GIF writer collected nothing")
    pictures = [Image.fromarray(frame) for frame in frames]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(duration_ms), loop=loop)
    return path


# ---- the loop -----------------------------------------------------------------------------
def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    pad_mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=pad_mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels, per image (N,)."""
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(dim=1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).mean(dim=1)
    return dy + dx


def _rms(g: torch.Tensor) -> torch.Tensor:
    return g.pow(2).flatten(1).mean(dim=1).sqrt().view(-1, *([1] * (g.dim() - 1)))


def _fast_copy(model, device: torch.device):
    """An eval-mode copy of the model for the loop; on the CPU in channels-last layout.

    Channels-last makes the CPU max-pooling about 10x and a whole ascent step about 1.7x
    faster (benchmarks/oip_speed.py); the copy leaves the caller's model as it was.
    """
    fast = copy.deepcopy(model).eval()
    for parameter in fast.parameters():
        parameter.requires_grad_(False)
    if device.type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def ascend(
    model,
    images: torch.Tensor,
    objective: Objective,
    settings: AscentSettings | None = None,
    callbacks: Sequence[Callback] = (),
) -> AscentResult:
    """Gradient ascent of `objective` on a batch of images (N x C x H x W, standardised space).

    The loop runs an eval-mode copy of the model, so the caller's model (mode, weights,
    gradients) is not touched. Runs on the device of `images`.
    """
    settings = (settings or AscentSettings()).check()
    validate(objective, model)
    if images.dim() != 4:
        raise UserError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    steps, eps = int(settings.steps), float(settings.epsilon)
    device = images.device
    n = images.shape[0]
    x = images.detach().to(torch.float32).clone()
    collector = SnapshotCollector(settings.snapshots())
    hooks = [collector, *callbacks]
    generator = torch.Generator().manual_seed(int(settings.seed))

    values = torch.zeros(steps + 1, n)
    active = torch.ones(n, dtype=torch.bool)
    reacted = torch.ones(n, dtype=torch.bool)
    converged = torch.zeros(n, dtype=torch.bool)
    steps_used = torch.full((n,), steps, dtype=torch.long)
    zero_run = torch.zeros(n, dtype=torch.long)
    conv_run = torch.zeros(n, dtype=torch.long)
    adam_m = torch.zeros_like(x) if settings.rule == "adam" else None
    adam_v = torch.zeros_like(x) if settings.rule == "adam" else None

    model = _fast_copy(model, device)
    for hook in hooks:
        hook.on_begin(settings, x)
    last_row = steps
    for step in range(steps + 1):
        index = active.nonzero().squeeze(1)
        if index.numel() == 0:
            last_row = step - 1
            break
        if step > 0:
            values[step] = values[step - 1]
        obj = objective if index.numel() == n else objective.select(index)
        xa = x[index.to(device)].requires_grad_(step < steps)
        if step == steps:  # final image: value only
            with torch.no_grad():
                values[step, index] = obj(capture(model, xa, obj)).float().cpu()
            for hook in hooks:
                hook(step, x, values[step])
            break
        seen = xa
        if settings.jitter:
            shift = torch.randint(-settings.jitter, settings.jitter + 1, (2,), generator=generator).tolist()
            seen = torch.roll(xa, shifts=shift, dims=(-2, -1))
        value = obj(capture(model, seen, obj))
        target = value.sum()
        if settings.tv_weight:
            target = target - settings.tv_weight * total_variation(xa).sum()
        (grad,) = torch.autograd.grad(target, xa)
        value = value.detach().float()
        values[step, index] = value.cpu()
        for hook in hooks:
            hook(step, x, values[step])

        # stopping rules, checked before this step's update (as in the articles)
        value_cpu = value.cpu()
        silent = (value_cpu == 0) & (grad.detach().flatten(1).abs().amax(dim=1).cpu() == 0)
        zero_run[index] = torch.where(silent, zero_run[index] + 1, torch.zeros_like(zero_run[index]))
        dead = zero_run[index] > settings.zero_patience
        done = dead.clone()
        if settings.early_stop and step > 10:
            change = (value_cpu - values[step - 1, index]) / (value_cpu + 1e-7)
            hit = change < settings.tolerance
            conv_run[index] = torch.where(hit, conv_run[index] + 1, torch.zeros_like(conv_run[index]))
            stop = conv_run[index] >= settings.patience
            converged[index[stop & ~dead]] = True
            done |= stop
        if done.any():
            stopped = index[done]
            active[stopped] = False
            steps_used[stopped] = step
            reacted[index[dead]] = False

        # the update, for the images still moving
        moving = ~done
        if not moving.any():
            continue
        rows = index[moving].to(device)
        g = grad[moving.to(device)]
        xm = xa.detach()[moving.to(device)]
        if settings.rule == "normalized":
            xm = xm + eps * g / (_rms(g) + 1e-7)
        else:
            beta1, beta2 = settings.adam_betas
            m = adam_m[rows] * beta1 + (1 - beta1) * g
            v = adam_v[rows] * beta2 + (1 - beta2) * g * g
            adam_m[rows], adam_v[rows] = m, v
            t = step + 1
            xm = xm + eps * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + 1e-8)
        if settings.blur > 0:
            xm = _gaussian_blur(xm, float(settings.blur))
        if settings.standardize:
            xm = per_image_standardize(xm)
        x[rows] = xm

    values = values[: last_row + 1]
    steps_used = torch.minimum(steps_used, torch.tensor(last_row))
    result = AscentResult(images=x, values=values, reacted=reacted, steps_used=steps_used,
                          converged=converged)
    for hook in hooks:
        hook.on_end(result)
    result.snapshots = dict(sorted(collector.snapshots.items()))
    return result
