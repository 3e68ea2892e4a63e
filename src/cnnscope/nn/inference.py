"""`inference_copy`: an eval-mode copy of a model for input-gradient work (OIPs, dreams, the
explorer) that shares the values and leaves the user's hooks and flags behind."""

from __future__ import annotations

import copy

import torch
from torch import nn

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks")


def inference_copy(module: nn.Module, channels_last: bool = False) -> nn.Module:
    """An eval-mode copy of `module` for input-gradient work that never changes the original.

    Unlike `copy.deepcopy` it copies no user state: every submodule is copied shallowly (its
    other attributes are shared), parameters become gradient-free tensors sharing the original
    values (4-D weights and buffers converted to channels-last when asked: ~1.7x faster ascent
    steps on the CPU), buffers are shared, and hooks are left behind (a user's recording hook would
    otherwise collect every step). So modules whose hooks hold tensors, which deepcopy refuses,
    and modules with frozen parameters both work; tied parameters and shared submodules stay
    tied and shared.
    """
    copies: dict[int, object] = {}

    def layout(value: torch.Tensor) -> torch.Tensor:
        # `.to` as `Module.to(memory_format=...)` does: it also restrides 1-channel weights,
        # which `.contiguous` leaves alone, and the conv kernels follow the strides
        if channels_last and value.dim() == 4:
            return value.to(memory_format=torch.channels_last)
        return value

    def parameter(p: nn.Parameter) -> nn.Parameter:
        if id(p) not in copies:
            copies[id(p)] = nn.Parameter(layout(p.detach()), requires_grad=False)
        return copies[id(p)]

    def copy_module(m: nn.Module) -> nn.Module:
        if id(m) in copies:
            return copies[id(m)]
        clone = copy.copy(m)
        copies[id(m)] = clone
        clone._parameters = {name: None if p is None else parameter(p) for name, p in m._parameters.items()}
        clone._buffers = {name: None if b is None else layout(b) for name, b in m._buffers.items()}
        clone._modules = {name: None if child is None else copy_module(child) for name, child in m._modules.items()}
        for hooks in _HOOK_DICTS:
            if hooks in m.__dict__:
                setattr(clone, hooks, type(m.__dict__[hooks])())
        clone.training = False
        return clone

    return copy_module(module)
