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


def gram_similarity(activations: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (N x N) of the Gram matrices of N images' activations (N x C x H x W;
    dense N x C: of the activation vectors themselves)."""
    if activations.dim() == 2:
        flat = activations
    else:
        maps = activations.flatten(2)  # N x C x HW
        flat = (maps @ maps.transpose(1, 2)).flatten(1) / maps.shape[-1]
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return unit @ unit.T


class Diversity:
    """Olah et al. (2017)'s diversity term: `weight` x the mean cosine similarity of an image's Gram
    matrix (of `layer`'s activations) to those of the other images of its group.

    `groups[i]` names the group of batch element i (for OIPs: the target), so K starts of one target
    push each other apart and leave the other targets alone. The activations come from a forward
    pass of their own through `model.activations(images, [layer], normalize=False)`.
    """

    def __init__(self, model, layer: str, groups: torch.Tensor, weight: float = 1.0):
        self.model, self.layer = model, layer
        self.groups = torch.as_tensor(groups, dtype=torch.long)
        self.weight = float(check_positive("diversity weight", weight, allow_zero=True))

    def select(self, index: torch.Tensor) -> Diversity:
        """The term for the batch elements `index` only."""
        return Diversity(self.model, self.layer, self.groups[torch.as_tensor(index).cpu()], self.weight)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[0] != self.groups.shape[0]:
            raise ValueError(f"diversity has {self.groups.shape[0]} groups for {images.shape[0]} images")
        similarity = gram_similarity(self.model.activations(images, [self.layer], normalize=False)[self.layer])
        groups = self.groups.to(images.device)
        others = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=images.device)
        count = others.sum(dim=1).clamp_min(1)
        return self.weight * (similarity * others).sum(dim=1) / count

    def __repr__(self) -> str:
        return f"Diversity({self.layer}, weight={self.weight:g})"
