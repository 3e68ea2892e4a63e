"""Step rules: how an image moves along its gradient. A rule is called as
`rule(images, gradient, step) -> new images` for the whole batch (N x C x H x W) at step k
(0-based) and may keep state between calls (Adam's moments); build a new rule per ascent.

- `NormalizedGradient(epsilon)`: the articles' rule, x + epsilon * g / (rms(g) + 1e-7) per image;
- `Adam(epsilon, betas)`: Adam ascent with per-pixel moments;
- `TorchOptimizer(factory)`: any `torch.optim.Optimizer`, e.g.
  `TorchOptimizer(lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9))`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from cnnscope.errors import check_positive


def rms(g: torch.Tensor) -> torch.Tensor:
    """Root mean square per image, shaped to broadcast over the image (N x 1 x 1 x 1)."""
    return g.pow(2).flatten(1).mean(dim=1).sqrt().view(-1, *([1] * (g.dim() - 1)))


def cosine_epsilon(start: float, end: float, steps: int, step: int) -> float:
    """A step size falling from `start` (step 0) to `end` (step `steps` and after) on a half cosine."""
    done = min(int(step), int(steps)) / max(int(steps), 1)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * done))


class NormalizedGradient:
    """The articles' rule: a step of length `epsilon` (in RMS pixels) along the gradient.

    With `epsilon_end` the length falls from `epsilon` to `epsilon_end` over `steps` steps on a
    half cosine (`cosine_epsilon`; the `--fast` preset); without it, it is constant (the articles').
    """

    def __init__(self, epsilon: float = 0.01, epsilon_end: float | None = None, steps: int = 1):
        self.epsilon = float(check_positive("epsilon", epsilon))
        self.epsilon_end = None if epsilon_end is None else float(check_positive("epsilon end", epsilon_end))
        self.steps = int(steps)

    def __call__(self, images: torch.Tensor, gradient: torch.Tensor, step: int) -> torch.Tensor:
        epsilon = self.epsilon
        if self.epsilon_end is not None:
            epsilon = cosine_epsilon(self.epsilon, self.epsilon_end, self.steps, step)
        return images + epsilon * gradient / (rms(gradient) + 1e-7)


class Adam:
    """Adam ascent (Kingma & Ba 2015) with step size `epsilon`; moments start at zero."""

    def __init__(self, epsilon: float = 0.01, betas: tuple[float, float] = (0.9, 0.999)):
        self.epsilon = float(check_positive("epsilon", epsilon))
        self.betas = (float(betas[0]), float(betas[1]))
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor, gradient: torch.Tensor, step: int) -> torch.Tensor:
        beta1, beta2 = self.betas
        if self.m is None:
            self.m, self.v = torch.zeros_like(images), torch.zeros_like(images)
        self.m = self.m * beta1 + (1 - beta1) * gradient
        self.v = self.v * beta2 + (1 - beta2) * gradient * gradient
        t = step + 1
        return images + self.epsilon * (self.m / (1 - beta1**t)) / ((self.v / (1 - beta2**t)).sqrt() + 1e-8)


class TorchOptimizer:
    """A `torch.optim.Optimizer` as a step rule: `factory([parameter])` builds it on the first step."""

    def __init__(self, factory: Callable[[list[torch.Tensor]], torch.optim.Optimizer]):
        self.factory = factory
        self.parameter: torch.Tensor | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def __call__(self, images: torch.Tensor, gradient: torch.Tensor, step: int) -> torch.Tensor:
        if self.optimizer is None:
            self.parameter = images.detach().clone().requires_grad_(True)
            self.optimizer = self.factory([self.parameter])
        with torch.no_grad():
            self.parameter.copy_(images)
        self.parameter.grad = -gradient  # optimizers minimise; the ascent maximises
        self.optimizer.step()
        return self.parameter.detach().clone()
