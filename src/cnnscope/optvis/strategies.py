"""How a batch of OIP starts is ascended: `run_batched` sends image i against objective i
through the one engine in chunks, and the articles' two strategies decide when the noise
scales enter (`Superposition`: all in the start, strategy 0; `CoarseToFine`: stage by stage,
strategy 1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from cnnscope.errors import UserError, check_whole
from cnnscope.nn.model import per_image_standardize
from cnnscope.optvis import objectives as O
from cnnscope.optvis.ascent import AscentResult, AscentSettings, ascend
from cnnscope.optvis.callbacks import Callback, ProgressBar
from cnnscope.runtime import device_of, using_threads

CPU_CHUNK_PER_THREAD = 128  # images per batch and torch thread on the CPU (benchmarks/README: chunk size)
GPU_CHUNK = 512


IMAGES_PER_THREAD = 32  # below this many images per CPU thread, fewer threads are faster (benchmarks/README)


def chunk_threads(images: int, device: torch.device) -> int | None:
    """Torch CPU threads for a batch of `images`: torch's setting, but at most one per
    IMAGES_PER_THREAD images (32 maps took 0.62 s on one thread, 0.86 s on two); None on a GPU."""
    if device.type != "cpu":
        return None
    return max(1, min(torch.get_num_threads(), images // IMAGES_PER_THREAD))


def default_chunk_size(device: torch.device) -> int:
    """Images per batch: on the CPU 128 per torch thread (a batch of 256 on one thread falls out of
    the cache: 138 against 132 microseconds per image-step), 512 on a GPU."""
    return CPU_CHUNK_PER_THREAD * torch.get_num_threads() if device.type == "cpu" else GPU_CHUNK


def _pad_result(result: AscentResult, steps: int, snapshot_steps: Sequence[int]) -> AscentResult:
    """Extend a result that stopped early to steps + 1 rows (frozen images keep their value)."""
    values = result.values
    if values.shape[0] < steps + 1:
        values = torch.cat([values, values[-1:].expand(steps + 1 - values.shape[0], -1)])
    snapshots = dict(result.snapshots)
    for step in snapshot_steps:
        if step not in snapshots and step > result.steps_run:
            snapshots[step] = result.images.detach().cpu()
    return replace(result, values=values, snapshots=snapshots)


def run_batched(model, starts: torch.Tensor, objectives: Sequence[O.Objective], settings: AscentSettings,
                chunk_size: int | None = None, device: torch.device | str | None = None,
                callbacks: Sequence[Callback] = (), progress: bool = False,
                description: str = "ascent", regularizers: Sequence = (),
                groups: torch.Tensor | None = None) -> AscentResult:
    """`ascend` image i against objectives[i] for all i, in chunks; results merged in order.

    `regularizers` are added to the settings' own, narrowed to each chunk by their `select`
    (e.g. `regularizers.Diversity`, whose groups then only meet within a chunk). `groups` are
    the race groups of `ascend` (the starts of one target); a chunk holds whole groups.
    `chunk_size`: images per chunk (default `default_chunk_size` of the device).
    """
    if len(objectives) != starts.shape[0]:
        raise ValueError(f"{len(objectives)} objectives for {starts.shape[0]} starts")
    device = torch.device(device) if device is not None else device_of(model)
    chunk_size = default_chunk_size(device) if chunk_size is None else chunk_size
    steps = int(settings.steps)
    snapshot_steps = settings.snapshots()
    parts = []
    chunks = _chunks(len(objectives), chunk_size, groups)
    for number, chunk in enumerate(chunks):
        hooks = list(callbacks)
        if progress:
            label = description if len(chunks) == 1 else f"{description} {number + 1}/{len(chunks)}"
            hooks.append(ProgressBar(label))
        objective = O.per_element([objectives[i] for i in chunk.tolist()])
        extra = [r.select(chunk) for r in regularizers]
        penalties = [*settings.pieces(model).regularizers, *extra] if extra else None
        with using_threads(chunk_threads(len(chunk), device)):
            result = ascend(model, starts[chunk].to(device), objective, settings, hooks, regularizers=penalties,
                            groups=None if groups is None else groups[chunk])
        parts.append(_pad_result(result, steps, snapshot_steps))
    return _merge(chunks, parts)


def _chunks(count: int, chunk_size: int, groups: torch.Tensor | None) -> list[torch.Tensor]:
    """The image indices of each chunk: consecutive runs of `chunk_size`, or, with `groups`, whole
    groups in order of their first image until a chunk is full (one group larger than a chunk
    gets a chunk of its own)."""
    if groups is None:
        return [torch.arange(begin, min(begin + chunk_size, count)) for begin in range(0, count, chunk_size)]
    groups = torch.as_tensor(groups).cpu()
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    chunks, current = [], []
    for indices in members.values():
        if current and len(current) + len(indices) > chunk_size:
            chunks.append(current)
            current = []
        current = current + indices
    chunks.append(current)
    return [torch.tensor(sorted(chunk)) for chunk in chunks]


def _merge(chunks: Sequence[torch.Tensor], parts: Sequence[AscentResult]) -> AscentResult:
    """One result from the chunks' results, every image back at its own index."""
    if len(parts) == 1 and torch.equal(chunks[0], torch.arange(len(chunks[0]))):
        part = parts[0]
        return AscentResult(images=part.images.cpu(), values=part.values, reacted=part.reacted,
                            steps_used=part.steps_used, snapshots=part.snapshots, converged=part.converged)
    order = torch.cat(list(chunks)).argsort()  # position in the concatenated parts of image i

    def joined(tensors, dim=0):
        return torch.cat(list(tensors), dim=dim).index_select(dim, order)

    snapshots = {step: joined(p.snapshots[step] for p in parts) for step in parts[0].snapshots
                 if all(step in p.snapshots for p in parts)}
    converged = joined(p.converged for p in parts) if all(p.converged is not None for p in parts) else None
    return AscentResult(images=joined(p.images.cpu() for p in parts), values=joined((p.values for p in parts), dim=1),
                        reacted=joined(p.reacted for p in parts), steps_used=joined(p.steps_used for p in parts),
                        snapshots=snapshots, converged=converged)


class Superposition:
    """The articles' strategy 0: all noise scales superposed in the start, then one ascent."""

    name = "superposition"

    def start_noise(self, scales: tuple[int, ...], factors: tuple[float, ...]):
        """The scales and factors of the starting noise."""
        return scales, factors

    def total_steps(self, settings: AscentSettings) -> int:
        return int(settings.steps)

    def ascend(self, model, starts: torch.Tensor, objectives: Sequence[O.Objective], settings: AscentSettings,
               components: Callable[[], list[torch.Tensor]], factors: tuple[float, ...], run_kw: dict) -> AscentResult:
        return run_batched(model, starts, objectives, settings, description="OIPs", **run_kw)

    def describe(self) -> dict:
        return {"name": self.name}


class CoarseToFine(Superposition):
    """The articles' strategy 1 (article VIII, "not yet developed" there): start from the longest
    scale's noise only, ascend `stage_steps[0]` steps, add the next shorter scale's fluctuations
    (times its factor) to the partly evolved image, standardise, ascend `stage_steps[1]` steps,
    and so on over all scales. The articles' stage epochs are (20, 40, 80, 400).
    """

    name = "coarse-to-fine"

    def __init__(self, stage_steps: Sequence[int] = (20, 40, 80, 400)):
        self.stage_steps = tuple(check_whole("stage steps", s, minimum=1) for s in stage_steps)
        if not self.stage_steps:
            raise UserError("coarse-to-fine needs at least one stage", "stages")

    def start_noise(self, scales, factors):
        if len(self.stage_steps) != len(scales):
            raise UserError(f"{len(self.stage_steps)} stage steps for {len(scales)} noise scales; "
                            f"give one stage per scale (e.g. 20,40,80,400 for 3,7,14,28)", "stages")
        return scales[:1], factors[:1]

    def total_steps(self, settings: AscentSettings) -> int:
        return sum(self.stage_steps)

    def ascend(self, model, starts, objectives, settings, components, factors, run_kw) -> AscentResult:
        parts = components()
        snapshots = settings.snapshots()
        x, results, offset = starts, [], 0
        for stage, steps in enumerate(self.stage_steps):
            if stage > 0:
                x = per_image_standardize(x + factors[stage] * parts[stage])
            local = tuple(k - offset for k in snapshots if offset <= k <= offset + steps)
            stage_settings = replace(settings, steps=steps, snapshot_steps=local)
            result = run_batched(model, x, objectives, stage_settings, description=f"stage {stage + 1}/"
                                 f"{len(self.stage_steps)}", **run_kw)
            results.append((offset, result))
            x, offset = result.images, offset + steps
        return _chain(results)

    def describe(self) -> dict:
        return {"name": self.name, "stage_steps": list(self.stage_steps)}


def _chain(results: Sequence[tuple[int, AscentResult]]) -> AscentResult:
    """One result from consecutive stages (each stage's row 0 is the previous stage's end, with the
    new fluctuations added; the trajectory keeps the value before they were added)."""
    values = torch.cat([results[0][1].values, *[r.values[1:] for _, r in results[1:]]])
    snapshots: dict[int, torch.Tensor] = {}
    for offset, result in results:
        for step, images in result.snapshots.items():
            snapshots.setdefault(offset + step, images)
    last = results[-1][1]
    return AscentResult(images=last.images, values=values, reacted=last.reacted,
                        steps_used=sum(r.steps_used for _, r in results), snapshots=dict(sorted(snapshots.items())),
                        converged=last.converged)
