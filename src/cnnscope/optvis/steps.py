"""Step rules: how an image moves along its gradient. A rule is called as
`rule(images, gradient, step) -> new images` for the whole batch (N x C x H x W) at step k
(0-based) and may keep state between calls (Adam's moments); build a new rule per ascent.

- `NormalizedGradient(epsilon)`: the articles' rule, x + epsilon * g / (rms(g) + 1e-7) per image;
- `Adam(epsilon, betas)`: Adam ascent with per-pixel moments;
- `TorchOptimizer(factory)`: any `torch.optim.Optimizer`, e.g.
  `TorchOptimizer(lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9))`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnscope.errors import check_positive


def rms(g: torch.Tensor) -> torch.Tensor:
    """Root mean square per image, shaped to broadcast over the image (N x 1 x 1 x 1)."""
    return g.pow(2).flatten(1).mean(dim=1).sqrt().view(-1, *([1] * (g.dim() - 1)))


class NormalizedGradient:
    """The articles' rule: a step of length `epsilon` (in RMS pixels) along the gradient."""

    def __init__(self, epsilon: float = 0.01):
        self.epsilon = float(check_positive("epsilon", epsilon))

    def __call__(self, images: torch.Tensor, gradient: torch.Tensor, step: int) -> torch.Tensor:
        return images + self.epsilon * gradient / (rms(gradient) + 1e-7)


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
