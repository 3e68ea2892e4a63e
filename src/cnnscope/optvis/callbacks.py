"""Callbacks of the ascent loop (tf-keras-vis style): `on_begin(settings, images)` once,
`callback(step, images, values)` at every step k = 0 .. steps_used with the images after k
updates and their objective values, `on_end(result)` once. Subclasses override what they need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from cnnscope.errors import check_whole

if TYPE_CHECKING:
    from cnnscope.optvis.ascent import AscentResult, AscentSettings


class Callback:
    """Does nothing; override the hooks you need."""

    def on_begin(self, settings: AscentSettings, images: torch.Tensor) -> None:
        pass

    def __call__(self, step: int, images: torch.Tensor, values: torch.Tensor) -> None:
        pass

    def on_end(self, result: AscentResult) -> None:
        pass


class ProgressBar(Callback):
    """A tqdm bar over the steps, showing the mean objective value (only on a terminal by default)."""

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
    """Keeps CPU copies of the images at the given steps (and always the final ones)."""

    def __init__(self, steps: Sequence[int]):
        self.steps = {int(s) for s in steps}
        self.snapshots: dict[int, torch.Tensor] = {}

    def __call__(self, step, images, values):
        if step in self.steps:
            self.snapshots[step] = images.detach().to("cpu", copy=True)

    def on_end(self, result):
        self.snapshots.setdefault(result.steps_run, result.images.detach().to("cpu", copy=True))


class FrameCollector(Callback):
    """Keeps image `index` every `every` steps and at the end (H x W CPU tensors), for an
    animation: `figures.oip.animation_frames(collector.images)` colours them."""

    def __init__(self, index: int = 0, every: int = 5):
        self.index = check_whole("frame index", index, minimum=0)
        self.every = max(1, check_whole("frame interval", every, minimum=1))
        self.images: list[torch.Tensor] = []

    def __call__(self, step, images, values):
        if step % self.every == 0:
            self.images.append(images[self.index, 0].detach().to("cpu", copy=True))

    def on_end(self, result):
        if result.steps_run % self.every != 0:
            self.images.append(result.images[self.index, 0].detach().to("cpu", copy=True))
