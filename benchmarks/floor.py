"""The machine's floor for a benchmark's work: its FLOP count and the measured matrix-multiply rate.

Every benchmark states its figure three ways: seconds, "x times plain PyTorch" (the same work
in a plain eager loop, same process) and "y times the floor", where

    floor seconds = FLOP of the work / GFLOP/s that torch.mm reaches on this machine

for matrices shaped like the work (the im2col products of its conv layers, its dense layers)
at the thread count the benchmark uses. FLOPs count the multiply-adds of conv and dense
layers only (2 per multiply-add): the forward pass, plus the input gradient (an ascent step;
`backward="input"`), plus the weight gradient too (a training step; `backward="all"`).
Pooling, activations and the optimizer are free in this count, so the floor is a bound no
real run reaches.

    from floor import Floor
    floor = Floor.measure(model, "Conv2D_3", batch=128, threads=1, backward="input")
    print(floor.describe(flop_per_image_step * images_steps, seconds))
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


def layer_gemms(model, last: str | None = None, batch: int = 1) -> list[tuple[str, int, int, int]]:
    """(layer, M, K, N) of the forward matrix products of the conv and dense layers up to `last`.

    A conv layer with C_in inputs, a kh x kw kernel, C_out filters and an H x W output is the
    product (batch * H * W x C_in * kh * kw) @ (C_in * kh * kw x C_out).
    """
    gemms, channels = [], model.spec.in_channels
    features = None
    names = model.layer_names
    stop = names.index(last) + 1 if last else len(names)
    for layer in model.spec.layers[:stop]:
        shape = model.output_shape(layer.name)
        if layer.kind == "conv":
            gemms.append((layer.name, batch * shape[1] * shape[2], channels * layer.kernel[0] * layer.kernel[1], shape[0]))
        elif layer.kind == "dense":
            gemms.append((layer.name, batch, features, shape[0]))
        if len(shape) == 3:
            channels, features = shape[0], shape[0] * shape[1] * shape[2]
        else:
            features = shape[0]
    return gemms


def work_flop(model, last: str | None = None, backward: str = "input") -> float:
    """FLOP per image of one step: forward, plus "input" gradients, plus "all" (input and weights).

    The first layer's input gradient counts only for "input" (the ascent needs the image's
    gradient; training does not).
    """
    gemms = layer_gemms(model, last, 1)
    forward = sum(2.0 * m * k * n for _, m, k, n in gemms)
    if backward == "none":
        return forward
    if backward == "input":
        return 2 * forward
    first = 2.0 * gemms[0][1] * gemms[0][2] * gemms[0][3]
    return forward + (forward - first) + forward


def matmul_gflops(shapes: list[tuple[int, int, int]], threads: int, repeats: int = 5, seconds: float = 0.2) -> float:
    """GFLOP/s of torch.mm over `shapes` (M, K, N), FLOP-weighted, median of `repeats` rounds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pairs = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
        flop = sum(2.0 * m * k * n for m, k, n in shapes)
        for a, b in pairs:
            torch.mm(a, b)
        rates = []
        for _ in range(repeats):
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds or count == 0:
                for a, b in pairs:
                    torch.mm(a, b)
                count += 1
            rates.append(count * flop / (time.perf_counter() - started) / 1e9)
        return statistics.median(rates)
    finally:
        torch.set_num_threads(before)


@dataclass
class Floor:
    """FLOP per image-step of a benchmark's work and the machine's measured rate for it."""

    flop_per_image: float
    gflops: float  # torch.mm on the work's shapes, at `threads`
    peak_gflops: float  # torch.mm on 1024 x 1024 matrices, at `threads`
    threads: int
    shapes: list[tuple[int, int, int]]

    @classmethod
    def measure(cls, model, last: str | None = None, batch: int = 128, threads: int = 1,
                backward: str = "input") -> Floor:
        shapes = [(m, k, n) for _, m, k, n in layer_gemms(model, last, batch)]
        return cls(work_flop(model, last, backward), matmul_gflops(shapes, threads),
                   matmul_gflops([(1024, 1024, 1024)], threads), threads, shapes)

    def remeasure(self) -> float:
        """The mm rate on the work's shapes now (a shared machine's load changes during a run)."""
        return matmul_gflops(self.shapes, self.threads, repeats=3, seconds=0.1)

    def seconds(self, images: float) -> float:
        """Floor seconds for `images` image-steps (images x steps for an ascent)."""
        return self.flop_per_image * images / (self.gflops * 1e9)

    def header(self) -> str:
        return (f"floor: torch.mm {self.gflops:.1f} GFLOP/s on the work's shapes, {self.peak_gflops:.1f} GFLOP/s "
                f"on 1024^3 ({self.threads} thread{'s' if self.threads != 1 else ''}); "
                f"{self.flop_per_image / 1e6:.2f} MFLOP per image-step")

    def describe(self, images: float, seconds: float, plain_seconds: float | None = None) -> str:
        """'x times plain PyTorch's speed, y times the floor' for a run of `images` image-steps."""
        floor, flop = self.seconds(images), self.flop_per_image * images
        plain = f"{plain_seconds / seconds:.2f}x plain PyTorch's speed, " if plain_seconds else ""
        return (f"{plain}{seconds / floor:.1f}x the floor ({_duration(floor)} for {flop / 1e9:.3g} GFLOP; "
                f"{flop / seconds / 1e9:.1f} GFLOP/s achieved)")


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"

def plain_train_seconds_per_step(model, mnist, batch: int, optimizer: str = "adam", lr: float = 1e-3,
                                 steps: int = 30) -> float:
    """Median seconds of one training step of `model` in a plain eager PyTorch loop (contiguous
    weights, torch.optim, F.cross_entropy, no cnnscope code in the step): the plain baseline."""
    import numpy as np
    import torch.nn.functional as F

    from cnnscope.data.mnist import to_tensor

    x, y = to_tensor(mnist.train_x[:20000]), torch.from_numpy(mnist.train_y[:20000].astype(np.int64))
    factory = {"adam": lambda p: torch.optim.Adam(p, lr=lr),
               "rmsprop": lambda p: torch.optim.RMSprop(p, lr=lr, momentum=0.8)}[optimizer]
    step_optimizer = factory(model.parameters())
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for step in range(steps + 3):  # 3 warm-up steps
        started = time.perf_counter()
        index = torch.randint(0, len(y), (batch,), generator=generator)
        loss = F.cross_entropy(model(x[index]), y[index])
        step_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        step_optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times)
