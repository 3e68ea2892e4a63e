"""Choose where tensors live, at run time (never a module-level global)."""

from __future__ import annotations

import torch

from cnnscope.errors import check_choice


def pick_device(requested: str | None = None) -> torch.device:
    """`None`/"auto" picks CUDA when present, else the CPU; "cpu"/"cuda" force one."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_choice("device", requested, ["auto", "cpu", "cuda"])
    if requested == "cuda" and not torch.cuda.is_available():
        from cnnscope.errors import UserError

        raise UserError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device(requested)
