"""The optimizers of a training run, with Keras's constants where the articles used Keras."""

from __future__ import annotations

import torch

from cnnscope.training.settings import TrainSettings


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop exactly as TensorFlow 2 / Keras applies it (rho 0.9, epsilon 1e-7):

        ms  = rho * ms + (1 - rho) * g**2
        mom = momentum * mom + lr * g / sqrt(ms + eps);   w -= mom      (momentum > 0)
        w  -= lr * g / (sqrt(ms) + eps)                                 (momentum = 0)

    PyTorch's RMSprop differs: epsilon outside the square root (a floor of 1e-7 instead of
    Keras's 3e-4 on the denominator), rho 0.99, and the learning rate outside the momentum.
    """

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, momentum: float = 0.0, eps: float = 1e-7):
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho, momentum, eps = group["lr"], group["rho"], group["momentum"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["ms"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["mom"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                ms, mom = state["ms"], state["mom"]
                ms.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                if momentum > 0:
                    mom.mul_(momentum).addcdiv_(grad, (ms + eps).sqrt_(), value=lr)
                    param.sub_(mom)
                else:
                    param.addcdiv_(grad, ms.sqrt().add_(eps), value=-lr)
        return None


def make_optimizer(settings: TrainSettings, parameters) -> torch.optim.Optimizer:
    """The optimizer the settings name, at their initial learning rate (the loop sets it per step).

    Args:
        settings: `optimizer`, `lr` and `momentum` are used (momentum is beta1 for the Adam family).
        parameters: the parameters to optimise.

    Returns:
        A Keras-compatible RMSprop, or torch's SGD, NAdam, Adamax or Adam (epsilon 1e-7 like Keras).
    """
    params = list(parameters)
    m = settings.momentum
    if settings.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=settings.lr, momentum=m or 0.0)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=m or 0.0)
    betas = (0.9 if m is None else m, 0.999)
    if settings.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=settings.lr, betas=betas, eps=1e-7)
    if settings.optimizer == "adamax":
        return torch.optim.Adamax(params, lr=settings.lr, betas=betas, eps=1e-7)
    return torch.optim.Adam(params, lr=settings.lr, betas=betas, eps=1e-7)
