"""OIPs ("optimal input patterns"): the picture that drives one map, node or logit to its maximum.

`find_oips(model, objectives, ...)` runs the shared ascent engine on every target at once
(chunked batches), with `restarts` starts per target (best kept) and an optional `precursor`
screening: K long-range noise starts per target are ascended for a few steps and the best one
is run in full -- so maps that ignore short-range noise (the articles' "loss stayed at zero")
still react. `dataset_max` measures each target on the test images in the same space, and
`quality` turns both into the coverage figures. The run record and its readers (`OipRun`,
`subset`, `quality`, `run_to_json`, ...) live in `optvis.oip_run` and are importable from here.

Every start is seeded by (seed, target name, restart[, candidate]) -- not by the position in
the batch -- so `--maps 56` reproduces tile 56 of the zoo, and chunking never changes a result.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import replace

import torch

from cnnscope.errors import UserError
from cnnscope.nn.model import map_batches, per_image_standardize
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import RACE_STARTS, AscentResult, AscentSettings
from cnnscope.optvis.networks import ascent_network
from cnnscope.optvis.oip_run import (  # the run record and its readers, also importable from here
    OipRun as OipRun,
    StartRecord as StartRecord,
    convergence as convergence,
    convergence_line as convergence_line,
    quality as quality,
    run_to_json as run_to_json,
    strongest as strongest,
    subset as subset,
    tile_text as tile_text,
)
from cnnscope.optvis.regularizers import Diversity
from cnnscope.optvis.starts import (
    DEFAULT_FACTORS,
    DEFAULT_SCALES,
    check_noise_parameters,
    multiscale_noise,
    noise_components,
    noise_seed,
)
from cnnscope.optvis.strategies import Superposition, run_batched
from cnnscope.runtime import device_of

PRECURSOR_SCALES = (2, 3, 4, 7)  # long-range grids for precursor candidates
PRECURSOR_THRESHOLDS = (0.0, 0.5, 1.0, 1.5)  # 0: plain noise; t > 0: bright blobs where noise > t
PRECURSOR_TAG = 7919  # separates precursor seeds from ordinary starts
DIVERSITY_WEIGHT = 1.0  # diversity term: weight x mean cosine similarity of Gram matrices (in [0, 1])


def target_key(objective: O.Objective) -> int:
    """A stable integer for an objective's name (part of its start seeds)."""
    return zlib.crc32(objective.name.encode("utf-8"))


def start_seed(seed: int, objective: O.Objective, restart: int) -> int:
    return noise_seed(seed, target_key(objective), restart)


def precursor_candidates(seed: int, objective: O.Objective, restart: int, count: int,
                         size: tuple[int, int], scales: Sequence[int], factors: Sequence[float],
                         channels: int = 1) -> torch.Tensor:
    """`count` starts for one target: the ordinary start first, then long-range noise.

    Candidate k >= 1 is noise on PRECURSOR_SCALES; every fourth is plain, the others keep only
    the bright blobs above a threshold (0.5, 1.0, 1.5 std) -- stroke-like pictures on a dark
    background, closer to what MNIST maps were trained on. All standardised per image.
    """
    first = multiscale_noise(1, size, scales, factors, seeds=[start_seed(seed, objective, restart)], channels=channels)
    if count <= 1:
        return first
    usable = tuple(s for s in PRECURSOR_SCALES if s <= min(size))
    seeds = [noise_seed(seed, target_key(objective), restart, PRECURSOR_TAG, k) for k in range(1, count)]
    noise = multiscale_noise(count - 1, size, usable, (0.5,) * len(usable), seeds=seeds, channels=channels)
    thresholds = torch.tensor([PRECURSOR_THRESHOLDS[k % len(PRECURSOR_THRESHOLDS)] for k in range(1, count)])
    blobs = torch.where(thresholds.view(-1, 1, 1, 1) > 0,
                        torch.relu(noise - thresholds.view(-1, 1, 1, 1)), noise)
    return torch.cat([first, per_image_standardize(blobs)])


# ---- targets -------------------------------------------------------------------------------
def map_objectives(model, layer: str, maps: Sequence[int] | None = None) -> list[O.Objective]:
    """`channel(layer, m)` for the given maps (None: all maps / units of the layer)."""
    model.check_layer(layer)
    count = model.output_shape(layer)[0]
    maps = range(count) if maps is None else maps
    objectives = [O.channel(layer, int(m)) for m in maps]
    for objective in objectives:
        O.validate(objective, model)
    return objectives


def logit_objectives(model, classes: Sequence[int] | None = None) -> list[O.Objective]:
    """`logit(k)` for the given classes (None: all)."""
    classes = range(model.num_classes) if classes is None else classes
    objectives = [O.logit(int(k)) for k in classes]
    for objective in objectives:
        O.validate(objective, model)
    return objectives


# ---- running -------------------------------------------------------------------------------
def _check_run_options(restarts: int, precursor: int, precursor_steps: int, chunk_size: int | None) -> None:
    checked = (("restarts", restarts, 1), ("precursor", precursor, 0), ("precursor steps", precursor_steps, 1),
               *((("chunk size", chunk_size, 1),) if chunk_size is not None else ()))
    for what, value, low in checked:
        if isinstance(value, bool) or int(value) != value or value < low:
            raise UserError(f"{what} must be a whole number >= {low}, got {value!r}")


def find_oips(
    model,
    objectives: Sequence[O.Objective],
    settings: AscentSettings | None = None,
    *,
    scales: Sequence[int] = DEFAULT_SCALES,
    factors: Sequence[float] = DEFAULT_FACTORS,
    restarts: int | None = None,
    precursor: int = 0,
    precursor_steps: int = 12,
    seed: int = 0,
    size: int | tuple[int, int] | None = None,
    start: torch.Tensor | None = None,
    chunk_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    strategy: Superposition | None = None,
    diverse: int = 0,
    diversity_weight: float = DIVERSITY_WEIGHT,
    diversity_layer: str | None = None,
) -> OipRun:
    """One OIP per objective: batched ascent from multi-scale noise (or `start`), best of `restarts`.

    `strategy`: how the noise enters (default `Superposition()`, the articles' strategy 0;
    `CoarseToFine(stage_steps)` is their strategy 1, whose steps replace `settings.steps`).
    `restarts`: starts per target, the best kept (default 1; `RACE_STARTS` when the settings
    race, as the `--fast` preset does: then the starts of a target race, see `ascend`).
    `precursor=K` screens K starts per target and restart (the ordinary one plus K-1 long-range
    noise images) for `precursor_steps` steps and runs the best one in full.
    `chunk_size`: images per batch (default: 128 per torch thread on the CPU, 512 on a GPU).
    `start`: a 1 x 1 x H x W (or M x 1 x H x W) standardised image every target starts from
    instead of noise (no restarts or precursor then).
    `diverse=K`: K starts per target in one batch (all kept in `run.starts`, the best as the OIP),
    pushed apart by Olah et al. (2017)'s diversity term: `diversity_weight` x the mean cosine
    similarity of the Gram matrices of `diversity_layer`'s activations (default: the conv layer
    before the target's, the deepest conv layer for dense targets and logits).
    """
    strategy = strategy or Superposition()
    settings = (settings or AscentSettings()).check()
    if restarts is None:
        restarts = RACE_STARTS if settings.race and not diverse and start is None else 1
    if settings.race and diverse:
        raise UserError("a race cannot be combined with diverse starts (those keep every start)", "race")
    if settings.race and strategy.name != Superposition.name:
        raise UserError(f"a race cannot be combined with the {strategy.name} strategy (its stages restart "
                        "every start)", "race")
    restarts, extra = _diversity(model, objectives, diverse, restarts, diversity_weight, diversity_layer)
    settings = replace(settings, steps=strategy.total_steps(settings)).check()
    objectives = list(objectives)
    size = _check_find_options(model, objectives, strategy, restarts, precursor, precursor_steps, chunk_size,
                               start, size)
    scales, factors = check_noise_parameters(scales, factors, size)
    m, channels = len(objectives), model.spec.in_channels
    run_kw = dict(chunk_size=chunk_size, device=device, progress=progress)
    if start is not None:
        starts = per_image_standardize(start.float()).expand(m, -1, -1, -1).clone()
        result = run_batched(model, starts, objectives, settings, description="OIPs", **run_kw)
        return OipRun(objectives, result.images, result.values, result.reacted, result.steps_used, result.snapshots,
                      restart=torch.zeros(m, dtype=torch.long), start_seeds=[-1] * m, start_kind=["image"] * m,
                      settings=settings, scales=scales, factors=factors, seed=seed)
    pairs = [(r, i) for r in range(restarts) for i in range(m)]  # one start per (restart, target)
    first_scales, first_factors = strategy.start_noise(scales, factors)
    if precursor > 1:
        starts, seeds, kinds = _precursor_starts(model, objectives, pairs, settings, seed, precursor, precursor_steps,
                                                 size, first_scales, first_factors, run_kw)
    else:
        seeds = [start_seed(seed, objectives[i], r) for r, i in pairs]
        starts = multiscale_noise(len(pairs), size, first_scales, first_factors, seeds=seeds, channels=channels)
        kinds = ["noise"] * len(pairs)
    own = [start_seed(seed, objectives[i], r) for r, i in pairs]  # later stages add the target's own scales
    result = strategy.ascend(model, starts, [objectives[i] for r, i in pairs], settings,
                             lambda: noise_components(len(pairs), size, scales, seeds=own, channels=channels), factors,
                             {**run_kw, "regularizers": extra, "groups": _race_groups(settings, pairs)})
    return OipRun(objectives=objectives, **_best_starts(result, restarts, m, seeds, kinds), settings=settings,
                  scales=scales, factors=factors, restarts=restarts, precursor=precursor,
                  precursor_steps=int(precursor_steps) if precursor > 1 else 0, seed=seed,
                  strategy=strategy.describe(), diverse=int(diverse),
                  extra={"diversity": {"layer": extra[0].layer, "weight": extra[0].weight}} if extra else {})


def default_diversity_layer(model, objectives: Sequence[O.Objective]) -> str:
    """The conv layer before the (first) target's layer; the deepest conv layer for dense targets."""
    convs = model.layers_of_kind("conv")
    if not convs:
        raise UserError("diversity needs a conv layer for its Gram matrices; this model has none", "diverse")
    target = O.resolve_layer(objectives[0].layers[0], model)
    if target not in convs:
        before = [c for c in convs if model.layer_names.index(c) < model.layer_names.index(target)]
        return before[-1] if before else convs[0]
    position = convs.index(target)
    return convs[max(position - 1, 0)]


def _diversity(model, objectives, diverse, restarts, weight, layer) -> tuple[int, list]:
    """(starts per target, [the Diversity term]) for `diverse` (0: (restarts, []))."""
    if isinstance(diverse, bool) or int(diverse) != diverse or diverse < 0 or diverse == 1:
        raise UserError(f"diverse must be 0 (off) or a whole number of starts >= 2, got {diverse!r}", "diverse")
    if not diverse:
        return restarts, []
    if restarts not in (1, diverse):
        raise UserError(f"diverse {diverse} and restarts {restarts} disagree; give one of them", "diverse")
    layer = model.check_layer(layer) if layer is not None else default_diversity_layer(model, objectives)
    groups = torch.arange(len(objectives)).repeat(int(diverse))  # start r of target i at r * M + i
    return int(diverse), [Diversity(ascent_network(model, device_of(model)), layer, groups, weight)]


def _check_find_options(model, objectives, strategy, restarts, precursor, precursor_steps, chunk_size, start,
                        size) -> tuple[int, int]:
    """UserError for a bad option of `find_oips`; the image size the targets are ascended at."""
    if not objectives:
        raise UserError("no targets to find OIPs for", "objectives")
    _check_run_options(restarts, precursor, precursor_steps, chunk_size)
    for objective in objectives:
        O.validate(objective, model)
    if start is not None:
        if strategy.name != Superposition.name:
            raise UserError(f"a start image cannot be combined with the {strategy.name} strategy", "start")
        if restarts != 1 or precursor:
            raise UserError("a start image cannot be combined with restarts or precursor (they need noise starts)",
                            "start")
        channels = model.spec.in_channels
        if start.dim() != 4 or start.shape[1] != channels or start.shape[0] not in (1, len(objectives)):
            raise UserError(f"start image must be 1 x {channels} x H x W, got shape {tuple(start.shape)}", "start")
        size = tuple(start.shape[-2:])
    return _image_size(model, objectives, size)


def _race_groups(settings: AscentSettings, pairs: Sequence[tuple[int, int]]) -> torch.Tensor | None:
    """Each start's target (the starts of one target race), or None without a race."""
    return torch.tensor([i for _, i in pairs]) if settings.race and len(pairs) > len({i for _, i in pairs}) else None


def _best_starts(result: AscentResult, restarts: int, m: int, seeds: list[int], kinds: list[str]) -> dict:
    """The `OipRun` fields of the best start of each of the m targets, and the record of every start."""
    columns = _best_restart(result, restarts, m)
    record = StartRecord(
        images=result.images.view(restarts, m, *result.images.shape[1:]),
        final=result.final.view(restarts, m), reacted=result.reacted.view(restarts, m),
        seeds=[seeds[r * m:(r + 1) * m] for r in range(restarts)],
        kinds=[kinds[r * m:(r + 1) * m] for r in range(restarts)])
    return {"images": result.images[columns], "values": result.values[:, columns],
            "reacted": result.reacted[columns], "steps_used": result.steps_used[columns],
            "snapshots": {k: v[columns] for k, v in result.snapshots.items()}, "restart": columns // m,
            "start_seeds": [seeds[int(c)] for c in columns], "start_kind": [kinds[int(c)] for c in columns],
            "starts": record}


def _reacting_score(result: AscentResult) -> torch.Tensor:
    """Final values, with -inf for images that did not react (so any reacting one wins)."""
    return torch.where(result.reacted, result.final, torch.full_like(result.final, -float("inf")))


def _best_restart(result: AscentResult, restarts: int, m: int) -> torch.Tensor:
    """Column of the best restart of each of the m targets (a reacting one if there is any)."""
    chosen = _reacting_score(result).view(restarts, m).argmax(dim=0)
    return chosen * m + torch.arange(m)


def _precursor_starts(model, objectives, pairs, settings, seed, precursor, precursor_steps, size, scales, factors,
                      run_kw) -> tuple[torch.Tensor, list[int], list[str]]:
    """Screen `precursor` candidates per (restart, target) for a few steps; (starts, seeds, kinds) of the winners."""
    channels = model.spec.in_channels
    candidates = torch.cat([precursor_candidates(seed, objectives[i], r, precursor, size, scales, factors, channels)
                            for r, i in pairs])
    screen = replace(settings, steps=int(precursor_steps), snapshot_steps=(0,), early_stop=False, race=0)
    screened = run_batched(model, candidates, [objectives[i] for r, i in pairs for _ in range(precursor)],
                           screen, description="precursor", **run_kw)
    best = _reacting_score(screened).view(len(pairs), precursor).argmax(dim=1)
    starts = candidates.view(len(pairs), precursor, *candidates.shape[1:])[torch.arange(len(pairs)), best]
    seeds = [start_seed(seed, objectives[i], r) for r, i in pairs]
    kinds = ["noise"] * len(pairs)
    for j, k in enumerate(best.tolist()):
        if k > 0:
            r, i = pairs[j]
            seeds[j] = noise_seed(seed, target_key(objectives[i]), r, PRECURSOR_TAG, k)
            kinds[j] = "precursor"
    return starts, seeds, kinds


def _image_size(model, objectives: Sequence[O.Objective], size) -> tuple[int, int]:
    native = (model.spec.image_size, model.spec.image_size)
    if size is None:
        return native
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if size != native:
        for objective in objectives:
            for name in objective.layers:
                real = O.resolve_layer(name, model)
                if not model.is_spatial(real):
                    raise UserError(f"layer {real} needs {native[0]}x{native[1]} input (it is after Flatten); "
                                    f"got a {size[0]}x{size[1]} image")
    return size


# ---- quality figures -------------------------------------------------------------------------
def dataset_max(model, objectives: Sequence[O.Objective], images: torch.Tensor,
                batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Highest objective value over raw [0, 1] images (N x 1 x H x W) and the index where it occurs.

    The images go through the model's own normalisation, so the values live in the same space
    as the OIPs (which are ascended after that normalisation). Runs on the model's device.
    """
    combined = O.Objective(lambda acts: torch.zeros(0), [n for o in objectives for n in o.layers], "all")

    def values_of(batch: torch.Tensor) -> torch.Tensor:
        acts = O.capture(model, batch.float(), combined, normalize=True)
        return torch.stack([o(acts) for o in objectives], dim=1).float().cpu()

    best = torch.full((len(objectives),), -float("inf"))
    where = torch.zeros(len(objectives), dtype=torch.long)
    for number, values in enumerate(map_batches(model, images, values_of, batch_size)):
        top, arg = values.max(dim=0)
        better = top > best
        best = torch.where(better, top, best)
        where = torch.where(better, arg + number * batch_size, where)
    return best, where


def add_dataset_max(run: OipRun, model, images: torch.Tensor) -> OipRun:
    """Fill `run.dataset_max` / `dataset_argmax` from raw test images; returns the run."""
    run.dataset_max, run.dataset_argmax = dataset_max(model, run.objectives, images)
    return run
