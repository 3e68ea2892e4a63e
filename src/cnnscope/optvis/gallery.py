"""Galleries: one target's OIPs from several starts, and how alike they are.

The articles' main evidence that a pattern belongs to a map is that the same pattern emerges
from different random starts (articles VII, IX, the "Hand of MNIST" and DeepDream posts show
such series). `find_oips(..., restarts=S)` keeps every start's final image (`run.starts`);
this module measures their agreement:

- `shift_similarity(a, b)`: the best normalised cross-correlation of two images over small
  whole-pixel shifts (the same stroke one pixel to the left is the same pattern), computed on
  the overlapping part;
- `start_similarity(run)`: per target, the median of that similarity over all pairs of its
  reacting starts (NaN with fewer than two);
- `different_target_similarity(run)`: the same measure between the kept OIPs of *different*
  targets — the baseline a target's own starts must beat; `stable_threshold` is its 95th
  percentile, and a target whose starts agree more than that is "stable".
"""

from __future__ import annotations

import torch

from cnnscope.errors import UserError, check_whole
from cnnscope.optvis.oip import OipRun

MAX_SHIFT = 2  # pixels: small translations of a pattern count as the same pattern
BASELINE_QUANTILE = 0.95


def shift_similarity(a: torch.Tensor, b: torch.Tensor, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Best normalised cross-correlation of a[i] and b[i] over shifts of up to `max_shift` pixels.

    Args:
        a, b: N x 1 x H x W (or N x H x W) image pairs.
        max_shift: largest shift in y and x, in pixels.

    Returns:
        (N,) similarities in [-1, 1]; 1 means b[i] is a[i] shifted (and scaled).
    """
    check_whole("max shift", max_shift, minimum=0)
    a = a.reshape(a.shape[0], *a.shape[-2:]).double()
    b = b.reshape(b.shape[0], *b.shape[-2:]).double()
    height, width = a.shape[-2:]
    if 2 * max_shift >= min(height, width):
        raise UserError(f"max shift {max_shift} is too large for {height}x{width} images", "max shift")
    best = torch.full((a.shape[0],), -1.0, dtype=torch.float64)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            x = a[:, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)].flatten(1)
            y = b[:, max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)].flatten(1)
            x = x - x.mean(dim=1, keepdim=True)
            y = y - y.mean(dim=1, keepdim=True)
            norm = (x.norm(dim=1) * y.norm(dim=1)).clamp_min(1e-12)
            best = torch.maximum(best, (x * y).sum(dim=1) / norm)
    return best


def _pairs(count: int) -> tuple[list[int], list[int]]:
    first, second = torch.triu_indices(count, count, offset=1)
    return first.tolist(), second.tolist()


def raced(run: OipRun) -> bool:
    """True when the run's starts raced (`AscentSettings.race`): only the best of each target ran
    to the end, the others stopped at the race."""
    return 0 < int(run.settings.race) < int(run.settings.steps)


def start_similarity(run: OipRun, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Per target (M,), the median `shift_similarity` over pairs of its reacting starts (NaN if < 2)."""
    if run.starts is None or run.starts.images.shape[0] < 2:
        raise UserError("start similarity needs at least 2 starts per target (restarts >= 2)", "restarts")
    if raced(run):
        raise UserError(f"the starts raced (race {run.settings.race}): only the best of each target ran to the end, "
                        "so they cannot be compared; run the gallery with race 0", "race")
    images, reacted = run.starts.images, run.starts.reacted
    starts, targets = reacted.shape
    first, second = _pairs(starts)
    result = torch.full((targets,), float("nan"), dtype=torch.float64)
    values = shift_similarity(images[first].flatten(0, 1), images[second].flatten(0, 1), max_shift)
    values = values.view(len(first), targets)
    both = reacted[first] & reacted[second]
    for target in range(targets):
        mine = values[both[:, target], target]
        if mine.numel():
            result[target] = mine.median()
    return result


def different_target_similarity(run: OipRun, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """`shift_similarity` between the kept OIPs of every pair of different reacting targets."""
    index = run.reacted.nonzero().squeeze(1)
    if index.numel() < 2:
        return torch.zeros(0, dtype=torch.float64)
    first, second = _pairs(index.numel())
    return shift_similarity(run.images[index[first]], run.images[index[second]], max_shift)


def stable_threshold(run: OipRun, max_shift: int = MAX_SHIFT) -> float | None:
    """The 95th percentile of `different_target_similarity` (None with fewer than 2 reacting targets)."""
    baseline = different_target_similarity(run, max_shift)
    return float(baseline.quantile(BASELINE_QUANTILE)) if baseline.numel() else None


def gallery_summary(run: OipRun, max_shift: int = MAX_SHIFT) -> dict:
    """Similarity per target, the threshold, and which targets are stable / start-dependent."""
    similarity = start_similarity(run, max_shift)
    threshold = stable_threshold(run, max_shift)
    verdicts = []
    for value in similarity.tolist():
        if value != value or threshold is None:  # NaN: fewer than two reacting starts
            verdicts.append("too few reacting starts")
        else:
            verdicts.append("stable" if value > threshold else "start-dependent")
    finite = similarity[~similarity.isnan()]
    return {
        "max_shift": max_shift,
        "threshold": threshold,
        "threshold_rule": f"{BASELINE_QUANTILE:.0%} quantile of the similarity between OIPs of different targets",
        "similarity": [None if v != v else round(v, 4) for v in similarity.tolist()],
        "verdict": verdicts,
        "median_similarity": round(float(finite.median()), 4) if finite.numel() else None,
        "stable": verdicts.count("stable"),
        "start_dependent": verdicts.count("start-dependent"),
    }
