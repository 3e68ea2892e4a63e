"""What a dream returns: `DreamResult` (the dreamed luminance, its frames and notes, and every
round's or octave's `Stage`), the objective's values along the way and the summary that goes
into the JSON sidecar (`DreamResult.summary`). `optvis.dream` runs dreams and makes these;
this module only holds and summarises them. Both names are importable from `optvis.dream`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from cnnscope.optvis.dream_settings import DreamSettings


@dataclass
class Stage:
    """One round or octave: its size, and the objective's value before and after the ascent."""

    name: str
    size: tuple[int, int]  # (height, width) the network saw
    steps: int
    value_start: float
    value_end: float
    seconds: float
    tiles: int = 1


@dataclass
class DreamResult:
    luminance: torch.Tensor  # 1 x 1 x H x W in [0, 1]: the dream, after the final adjustment (1 x 3: RGB)
    raw: torch.Tensor  # 1 x 1 (or 3) x H x W: the dream before the adjustment (not clipped)
    stages: list[Stage]
    frames: list[torch.Tensor]  # H x W (or 3 x H x W) in [0, 1] (adjusted): the photo, then after each stage
    settings: DreamSettings
    objective: str
    seconds: float
    tile: int = 0  # tile side used by the native mode (0 = whole photo)
    pattern: torch.Tensor | None = None  # downscale: the last dreamed 28 x 28 image (standardised)
    blurred: torch.Tensor | None = None  # downscale: that image upscaled to the photo, photo units
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        """The objective's value at the start, then after each round / octave."""
        return [self.stages[0].value_start, *(s.value_end for s in self.stages)] if self.stages else []

    def summary(self) -> dict:
        """Everything worth a JSON sidecar (no tensors)."""
        return {
            "objective": self.objective,
            "settings": asdict(self.settings),
            "tile": self.tile,
            "values": self.values,
            "stages": [asdict(s) for s in self.stages],
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }
