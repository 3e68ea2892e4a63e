"""The one gradient-ascent loop behind OIPs and dreams. It knows nothing about plots or files.

`ascend(model, images, objective, settings)` changes a batch of images (in the network's
standardised input space) to raise `objective`, one value per image. Its pieces are passed in
as lists (Lucent / tf-keras-vis style) and default to the ones `settings` builds:

    p = parametrization.params(images)                 pixels, Fourier coefficients, a phase
    for each step k:
        x     = parametrization(p)                        the images
        seen  = t_n(... t_1(x))                           transforms (jitter, ...)
        value = objective(model(seen))                    one value per image
        g     = d (value - sum(regularisers(x))) / d p    (total variation, diversity, ...)
        p     = step_rule(p, g, k)                        normalised gradient, Adam, any optimizer
        p     = parametrization.project(p, post-step ops) (blur, standardisation) on the image

The default `AscentSettings()` is the articles' algorithm (VIII/IX): pixel parameters (the
parameters are the image), no transform, no regulariser, the normalised-gradient rule x + 0.01 g / (sqrt(mean(g**2)) + 1e-7), then
per-image standardisation (x - mean) / max(std, 1/sqrt(N)), for 600 steps.

Step numbering: "step k" is the image after k updates; `values[k]` is its objective value,
`snapshots[k]` the image. Step 0 is the start; the last step is `steps_used` (600 by default).
An image stops early (and stays frozen) when
- it "did not react": value and gradient exactly zero for more than `zero_patience` steps in a row
  (marked `reacted=False`), or
- `early_stop` is on and the relative change (v[k] - v[k-1]) / (v[k] + 1e-7) was below
  `tolerance` for `patience` steps in a row (only counted after step 10, as in the articles).
Only moving images go through the network: the batch shrinks as images stop (measured 1.8-2.7x
faster than masking frozen images in a full batch on a model whose silent maps stop early).

`ascend` runs on `optvis.networks.ascent_network(model)`: an eval-mode copy of the model
(channels-last on the CPU, parameters without gradients) that computes a CNN's values and
input gradients with less work (pooling before ReLU, the first layer's input gradient as a
matrix product, only the maps an objective reads), so the caller's model is never changed.
Objectives may name the layer "logits" (`objectives.LOGITS`); `objectives.capture(model, x, obj)`
evaluates one outside this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from cnnscope.errors import UserError, check_choice, check_positive, check_whole
from cnnscope.optvis.callbacks import Callback, SnapshotCollector
from cnnscope.optvis.networks import ascent_network
from cnnscope.optvis.objectives import Objective, validate
from cnnscope.optvis.parametrizations import (
    PARAMETRIZATIONS,
    Parametrization,
    Pixel,
    make_parametrization,
)
from cnnscope.optvis.post_step import Blur, Standardize
from cnnscope.optvis.regularizers import TotalVariation
from cnnscope.optvis.steps import Adam, NormalizedGradient
from cnnscope.optvis.transforms import Jitter, robustness

RULES = ("normalized", "adam")
RACE_STARTS = 2  # starts per target when the settings race and the caller names no number (the --fast preset)

Transform = Callable[[torch.Tensor], torch.Tensor]
Regularizer = Callable[[torch.Tensor], torch.Tensor]
StepRule = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def log_snapshot_steps(steps: int, count: int = 6) -> tuple[int, ...]:
    """The articles' log-spaced snapshot steps: 0, b, 2b, 4b, ... (b = steps // 2**count), last.

    600 steps -> (0, 9, 18, 36, 72, 144, 288, 600).
    """
    base = steps // 2 ** count
    middle = [base * 2 ** k for k in range(count)] if base > 0 else []
    return tuple(sorted({0, *[m for m in middle if 0 < m < steps], steps}))


@dataclass
class AscentPieces:
    """The pluggable parts of one ascent (see the module docstring)."""

    transforms: list[Transform]
    regularizers: list[Regularizer]
    step: StepRule
    post_step: list[Transform]
    parametrization: Parametrization = field(default_factory=Pixel)


@dataclass
class AscentSettings:
    """The loop's length and stopping rules, plus a preset for its pieces (`pieces()`).

    The defaults are the articles' algorithm.
    """

    steps: int = 600
    epsilon: float = 0.01
    epsilon_end: float | None = None  # normalized rule: step falls from epsilon to this on a half cosine (None: constant)
    rule: str = "normalized"  # or "adam"
    standardize: bool = True  # per-image standardisation after every step (articles)
    jitter: int = 0  # random roll of up to this many pixels each step (undone by the roll's gradient)
    blur: float = 0.0  # Gaussian blur sigma in pixels after each step
    tv_weight: float = 0.0  # total-variation penalty subtracted from the objective
    early_stop: bool = False
    tolerance: float = 5e-4  # relative loss change counted as converged (article VIII's default)
    patience: int = 4  # successive converged steps before an early stop
    zero_patience: int = 10  # "did not react": value and gradient zero for more than this many steps
    race: int = 0  # starts of one target race: after this many steps only the best keeps moving (0, or >= steps: off)
    snapshot_steps: tuple[int, ...] | None = None  # None -> log_snapshot_steps(steps, snapshot_count)
    snapshot_count: int = 6  # log-spaced snapshots between the start and the end (the articles' 6)
    seed: int = 0  # for jitter
    adam_betas: tuple[float, float] = (0.9, 0.999)
    param: str = "pixel"  # parametrisation: pixel (articles), fourier or maco (optvis.parametrizations)
    valid_pixels: bool = False  # squash every image into the range of real pixels (sigmoid, model's normalisation)
    fourier_decay: float = 1.0  # fourier: coefficients scaled by 1 / frequency**decay
    shift: float = 0.0  # random roll of up to this fraction of the image side each step (0.07: 2 px at 28)
    zoom: float = 0.0  # random rescaling by 1 +- this fraction each step
    rotate: float = 0.0  # random turn of up to this many degrees each step

    @classmethod
    def fast(cls, **changes) -> AscentSettings:
        """The time-to-quality preset (`cnnscope oip --fast`): two starts per target race for 15
        steps, and the better one goes on to 95 normalised steps in all, whose length falls from
        0.8 to 0.01 on a half cosine, with per-target early stopping (relative change below 1e-4
        for 4 steps) and the articles' standardisation. `find_oips` gives it `RACE_STARTS` starts
        per target unless told otherwise; other `steps` move the race to a sixth of them.
        Measured in benchmarks/oip_fast.py (README: `--fast`)."""
        preset = dict(steps=95, epsilon=0.8, epsilon_end=0.01, early_stop=True, tolerance=1e-4, patience=4, race=15)
        if "steps" in changes and "race" not in changes:
            preset["race"] = max(1, int(changes["steps"]) // 6)
        return cls(**{**preset, **changes})

    def check(self) -> AscentSettings:
        """Raise UserError on a bad value (non-positive steps/epsilon, NaN, unknown rule)."""
        check_whole("steps", self.steps, minimum=1)
        check_positive("epsilon", self.epsilon)
        if self.epsilon_end is not None:
            check_positive("epsilon end", self.epsilon_end)
        check_choice("step rule", self.rule, RULES)
        check_choice("parametrization", self.param, PARAMETRIZATIONS)
        check_positive("fourier decay", self.fourier_decay, allow_zero=True)
        check_whole("jitter", self.jitter, minimum=0)
        for name, value, below in (("shift", self.shift, 0.5), ("zoom", self.zoom, 1.0), ("rotate", self.rotate, 180.0)):
            check_positive(name, value, allow_zero=True)
            if not float(value) < below:
                raise UserError(f"{name} must be below {below:g}, got {value!r}", name)
        check_positive("blur", self.blur, allow_zero=True)
        check_positive("tv weight", self.tv_weight, allow_zero=True)
        check_positive("tolerance", self.tolerance, allow_zero=True)
        check_whole("patience", self.patience, minimum=1)
        check_whole("zero patience", self.zero_patience, minimum=0)
        check_whole("race", self.race, minimum=0)
        check_whole("snapshots", self.snapshot_count, minimum=0)
        for step in self.snapshot_steps or ():
            if not 0 <= int(step) <= self.steps:
                raise UserError(f"snapshot step {step} outside 0..{self.steps}", "snapshot steps")
        return self

    def snapshots(self) -> tuple[int, ...]:
        if self.snapshot_steps is None:
            return log_snapshot_steps(int(self.steps), int(self.snapshot_count))
        return tuple(sorted({int(s) for s in self.snapshot_steps}))

    def pieces(self, model=None) -> AscentPieces:
        """Fresh pieces for one ascent (seeded transforms, a step rule without state); `model`
        gives valid pixels its input normalisation."""
        step = (NormalizedGradient(self.epsilon, self.epsilon_end, int(self.steps)) if self.rule == "normalized"
                else Adam(self.epsilon, self.adam_betas))
        return AscentPieces(
            transforms=[*([Jitter(self.jitter, self.seed)] if self.jitter else []),
                        *robustness(self.shift, self.zoom, self.rotate, self.seed)],
            regularizers=[TotalVariation(self.tv_weight)] if self.tv_weight else [],
            step=step,
            post_step=[*([Blur(self.blur)] if self.blur > 0 else []), *([Standardize()] if self.standardize else [])],
            parametrization=make_parametrization(self.param, self.valid_pixels, model, self.fourier_decay),
        )


@dataclass
class AscentResult:
    images: torch.Tensor  # N x 1 x H x W final images
    values: torch.Tensor  # (steps_run + 1) x N objective value per step (row 0 = start)
    reacted: torch.Tensor  # bool (N,)
    steps_used: torch.Tensor  # int (N,) updates applied to each image
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> N x 1 x H x W
    converged: torch.Tensor | None = None  # bool (N,): stopped by the early-stop rule
    start: torch.Tensor | None = None  # N x 1 x H x W: the images at step 0 (the starts as parametrised)

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


class _Stopping:
    """Per-image bookkeeping of the stopping rules: values so far, who is still moving, and why not."""

    def __init__(self, n: int, settings: AscentSettings, groups: torch.Tensor | None = None):
        self.settings = settings
        self.groups = groups  # (n,) race groups (None: no race)
        self.values = torch.zeros(int(settings.steps) + 1, n)
        self.active = torch.ones(n, dtype=torch.bool)
        self.reacted = torch.ones(n, dtype=torch.bool)
        self.converged = torch.zeros(n, dtype=torch.bool)
        self.steps_used = torch.full((n,), int(settings.steps), dtype=torch.long)
        self.zero_run = torch.zeros(n, dtype=torch.long)
        self.conv_run = torch.zeros(n, dtype=torch.long)

    def record(self, step: int, index: torch.Tensor, value: torch.Tensor) -> None:
        """Values of step `step`: `value` for the moving images `index`, the last one for frozen ones."""
        if step > 0:
            self.values[step] = self.values[step - 1]
        self.values[step, index] = value

    def update(self, step: int, index: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Apply the rules to the moving images `index` after step `step`'s value and gradient
        (checked before its update, as in the articles); returns which of them stop here."""
        s = self.settings
        silent = (value == 0) & (grad.detach().flatten(1).abs().amax(dim=1).cpu() == 0)
        self.zero_run[index] = torch.where(silent, self.zero_run[index] + 1, torch.zeros_like(self.zero_run[index]))
        dead = self.zero_run[index] > s.zero_patience
        done = dead.clone()
        if s.early_stop and step > 10:
            change = (value - self.values[step - 1, index]) / (value + 1e-7)
            hit = change < s.tolerance
            self.conv_run[index] = torch.where(hit, self.conv_run[index] + 1, torch.zeros_like(self.conv_run[index]))
            stop = self.conv_run[index] >= s.patience
            self.converged[index[stop & ~dead]] = True
            done |= stop
        if self.groups is not None and s.race and step == s.race:
            done |= self._race_losers()[index]
        self.steps_used[index[done]] = step
        self.reacted[index[dead]] = False
        self.active[index[done]] = False
        return done

    def _race_losers(self) -> torch.Tensor:
        """(n,) True for every image that is not the best of its group at the race step (values
        now; an image that did not react never wins, ties go to the first)."""
        score = torch.where(self.reacted, self.values[self.settings.race], torch.tensor(-float("inf")))
        _, groups = torch.unique(self.groups, return_inverse=True)
        best = torch.full((int(groups.max()) + 1,), -float("inf")).scatter_reduce(0, groups, score, "amax")
        leading = score == best[groups]
        first = torch.full_like(best, len(score), dtype=torch.long).scatter_reduce(
            0, groups, torch.where(leading, torch.arange(len(score)), len(score)), "amin")
        return torch.arange(len(score)) != first[groups]


def ascend(
    model,
    images: torch.Tensor,
    objective: Objective,
    settings: AscentSettings | None = None,
    callbacks: Sequence[Callback] = (),
    *,
    transforms: Sequence[Transform] | None = None,
    regularizers: Sequence[Regularizer] | None = None,
    step: StepRule | None = None,
    post_step: Sequence[Transform] | None = None,
    parametrization: Parametrization | None = None,
    groups: torch.Tensor | None = None,
) -> AscentResult:
    """Gradient ascent of `objective` on a batch of images (N x C x H x W, standardised space).

    Args:
        model: a `CNN` (any module with the `activations` interface); never changed.
        images: the starts, on the device the loop runs on.
        objective: one value per image (see `cnnscope.optvis.objectives`).
        settings: length, stopping rules and the preset pieces (default: the articles' algorithm).
        callbacks: called at every step (progress bars, snapshots, animation frames).
        transforms, regularizers, step, post_step, parametrization: replace the preset's pieces
            when given (`optvis.parametrizations`: Pixel, Fourier, Maco, ValidPixels).
        groups: N numbers; with `settings.race`, images of the same number race (the starts of
            one target): after `race` steps only the best of each group keeps moving.

    Returns:
        An `AscentResult` with the final images, the value of every image at every step, and
        which images reacted, converged and how many updates each received.
    """
    settings = (settings or AscentSettings()).check()
    validate(objective, model)
    if images.dim() != 4:
        raise UserError(f"images must be N x C x H x W, got shape {tuple(images.shape)}", "images")
    preset = settings.pieces(model)
    pieces = AscentPieces(
        transforms=list(preset.transforms if transforms is None else transforms),
        regularizers=list(preset.regularizers if regularizers is None else regularizers),
        step=preset.step if step is None else step,
        post_step=list(preset.post_step if post_step is None else post_step),
        parametrization=preset.parametrization if parametrization is None else parametrization,
    )
    x = pieces.parametrization.params(images.detach().to(torch.float32).clone()).detach()
    collector = SnapshotCollector(settings.snapshots())
    hooks = [collector, *callbacks]
    if groups is not None and len(groups) != x.shape[0]:
        raise UserError(f"{len(groups)} race groups for {x.shape[0]} images", "groups")
    state = _Stopping(x.shape[0], settings, None if groups is None else torch.as_tensor(groups).cpu())
    network = ascent_network(model, x.device)
    start = _images(pieces.parametrization, x).clone()
    for hook in hooks:
        hook.on_begin(settings, start)
    last_row = _run_steps(network, x, objective, settings, pieces, state, hooks)
    result = AscentResult(images=_images(pieces.parametrization, x), values=state.values[: last_row + 1],
                          reacted=state.reacted, steps_used=torch.minimum(state.steps_used, torch.tensor(last_row)),
                          converged=state.converged, start=start)
    for hook in hooks:
        hook.on_end(result)
    result.snapshots = dict(sorted(collector.snapshots.items()))
    return result


def _run_steps(network, x: torch.Tensor, objective: Objective, settings: AscentSettings, pieces: AscentPieces,
               state: _Stopping, hooks: Sequence[Callback]) -> int:
    """The loop itself; changes `x` in place and returns the last step that was run.

    Only the images still moving go through the network (the batch shrinks as images stop, and
    a `per_element` objective is narrowed to them with `Objective.select`); the step rule sees
    the whole batch, with zero gradients for the frozen images, and only moving images change.
    """
    steps, n = int(settings.steps), x.shape[0]
    parametrization = pieces.parametrization
    for k in range(steps + 1):
        index = state.active.nonzero().squeeze(1)
        if index.numel() == 0:
            return k - 1
        obj = objective if index.numel() == n else objective.select(index)
        step_pieces = pieces if index.numel() == n else _narrowed(pieces, index)
        moving = x[index.to(x.device)].requires_grad_(k < steps)
        if k == steps:  # final image: value only
            with torch.no_grad():
                state.record(k, index, network.values(parametrization(moving), obj).float().cpu())
            images = _images(parametrization, x)
            for hook in hooks:
                hook(k, images, state.values[k])
            return k
        grad, value = _gradient(network, moving, obj, step_pieces)
        state.record(k, index, value)
        images = _images(parametrization, x)
        for hook in hooks:
            hook(k, images, state.values[k])
        done = state.update(k, index, value, grad)
        if not done.all():
            _update(x, index, grad, done, k, pieces)
    return steps


def _narrowed(pieces: AscentPieces, index: torch.Tensor) -> AscentPieces:
    """The pieces for the moving images `index`: regularisers that know batch elements (diversity's
    groups) are narrowed with their `select`."""
    regularizers = [r.select(index) if hasattr(r, "select") else r for r in pieces.regularizers]
    return replace(pieces, regularizers=regularizers)


def _images(parametrization: Parametrization, params: torch.Tensor) -> torch.Tensor:
    """The images of `params` without gradients (for pixels: `params` itself)."""
    with torch.no_grad():
        return parametrization(params)


def _gradient(network, moving: torch.Tensor, objective: Objective, pieces: AscentPieces
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(d (objective - penalties) / d parameters, objective values on the CPU) for the moving images."""
    images = pieces.parametrization(moving)
    seen = images
    for transform in pieces.transforms:
        seen = transform(seen)
    value = network.values(seen, objective)
    target = value.sum()
    for regularizer in pieces.regularizers:
        target = target - regularizer(images).sum()
    (grad,) = torch.autograd.grad(target, moving)
    return grad, value.detach().float().cpu()


def _update(x: torch.Tensor, index: torch.Tensor, grad: torch.Tensor, done: torch.Tensor, step: int,
            pieces: AscentPieces) -> None:
    """One step of the rule, then the post-step operations, for the images that keep moving."""
    full = torch.zeros_like(x)
    full[index.to(x.device)] = grad
    rows = index[~done].to(x.device)
    moved = pieces.step(x, full, step)[rows]
    x[rows] = pieces.parametrization.project(moved, pieces.post_step)
