"""Regularisers: per-image penalties subtracted from the objective during the ascent.

A regulariser is a callable `penalty(images) -> Tensor (N,)` on the images being changed (not
on the transformed ones the network sees); the ascent maximises `objective - sum(penalties)`.
"""

from __future__ import annotations

import torch

from cnnscope.errors import check_positive


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels, per image (N,)."""
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(dim=1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).mean(dim=1)
    return dy + dx


class TotalVariation:
    """`weight` x total variation: favours smooth images over pixel noise."""

    def __init__(self, weight: float):
        self.weight = float(check_positive("tv weight", weight, allow_zero=True))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.weight * total_variation(images)

    def __repr__(self) -> str:
        return f"TotalVariation({self.weight:g})"
