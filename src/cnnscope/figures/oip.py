"""OIP pictures: the zoo (every target as a labelled tile), a target's evolution strip over the
log-spaced snapshots, and animation frames. Pure functions returning RGB uint8 arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cnnscope.data.photos import to_uint8
from cnnscope.figures.render import (
    colorize,
    enhance_contrast,
    grid,
    label,
    stack,
    text_block,
    upscale,
)
from cnnscope.optvis.oip import OipRun, convergence, tile_text
from cnnscope.optvis.quality import marker

TILE_SCALE = 3


HEADER = 12


NOT_REACTED = (200, 40, 40)


def _header(width: int, text: str, color=(255, 255, 255), background=(0, 0, 0)) -> np.ndarray:
    strip = np.zeros((HEADER, width, 3), dtype=np.uint8)
    strip[:] = background
    return label(strip, text, position=(1, 0), color=color, background=None)


def oip_pair(image, scale: int = TILE_SCALE, cmap: str = "viridis") -> np.ndarray:
    """The articles' two renderings side by side: plain colour map | contrast-enhanced (1-99 percentile).

    A 3-channel image (a `from_torch` model of colour images) is shown in its own colours, both
    stretches over all channels at once; other channel counts as the mean of their channels."""
    values = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    values = values.reshape(-1, *values.shape[-2:])
    if values.shape[0] == 3:
        low, high = float(values.min()), float(values.max())
        stretched = (values - low) / (high - low) if high > low else np.zeros_like(values)
        plain = upscale(to_uint8(stretched.transpose(1, 2, 0)), scale)
        strong = upscale(to_uint8(enhance_contrast(values).transpose(1, 2, 0)), scale)
    else:
        values = values.mean(axis=0)
        plain = upscale(colorize(values, cmap), scale)
        strong = upscale(colorize(enhance_contrast(values), cmap, 0.0, 1.0), scale)
    gap = np.full((plain.shape[0], 1, 3), 255, dtype=np.uint8)
    return np.concatenate([plain, gap, strong], axis=1)


def oip_tile(image, text: str, reacted: bool = True, scale: int = TILE_SCALE, cmap: str = "viridis") -> np.ndarray:
    """One zoo tile: a label strip ("56  412.3") over the OIP pair; red and crossed if it did not react."""
    pair = oip_pair(image, scale, cmap)
    if not reacted:
        pair = (pair.astype(np.float32) * 0.35 + 90).astype(np.uint8)
        h, w = pair.shape[:2]
        for t in range(-1, 2):  # a red cross
            rows = np.arange(h)
            for cols in (rows * (w - 1) // max(h - 1, 1), (w - 1) - rows * (w - 1) // max(h - 1, 1)):
                pair[rows, np.clip(cols + t, 0, w - 1)] = NOT_REACTED
    header = _header(pair.shape[1], text, background=NOT_REACTED if not reacted else (0, 0, 0))
    return np.concatenate([header, pair], axis=0)


def zoo_picture(run: OipRun, columns: int = 8, scale: int = TILE_SCALE, cmap: str = "viridis",
                examples: torch.Tensor | None = None) -> np.ndarray:
    """All OIPs of a run as a labelled grid (top-down, `columns` per row).

    With a quality report (`optvis.quality.add_quality`) each tile gets a marker line below it
    (ratio to the dataset max, M = majority success, np = natural-path similarity, o = pixels
    outside the valid range; green when the target is its layer's argmax). With `examples`, the
    raw test images, and `run.examples`, each tile shows its top 9 test images (and the middle
    and bottom 9 when the run has them) as 3 x 3 grids to its right, each under its rank's name.
    """
    tiles = []
    for i in range(len(run.objectives)):
        tile = oip_tile(run.images[i], tile_text(run, i), bool(run.reacted[i]), scale, cmap)
        if run.report is not None:
            row = run.report["targets"][i]
            color = (20, 110, 40) if row.get("majority") else (90, 90, 90)
            tile = np.concatenate([tile, _header(tile.shape[1], marker(row), background=color)], axis=0)
        if examples is not None and run.examples is not None:
            grids = [example_grid(examples, run.examples.index[rank][i], scale) for rank in run.examples.index]
            labelled = [np.concatenate([_header(g.shape[1], rank), g], axis=0)  # "top", "middle", "bottom"
                        for rank, g in zip(run.examples.index, grids, strict=True)]
            tile = stack([tile, *labelled], axis="h", gap=2)[0]
        tiles.append(tile)
    return grid(tiles, columns=columns, separator=2)


def example_grid(images: torch.Tensor, index: torch.Tensor, scale: int = TILE_SCALE) -> np.ndarray:
    """Test images `index` (up to 9) as a grey 3 x 3 grid as high as an OIP tile's picture."""
    size = max(1, scale // 3) if len(index) > 1 else scale
    pictures = [upscale(colorize(images[int(j)].reshape(images.shape[-2:]).numpy(), "gray", 0.0, 1.0), size)
                for j in index]
    return grid(pictures, columns=3 if len(pictures) > 1 else 1, separator=1)


def evolution_strip(run: OipRun, index: int, scale: int = 4, cmap: str = "viridis") -> np.ndarray:
    """One target's image at every snapshot step, labelled "step k: value" and, below, the
    articles' convergence figures: the step's change of the value and change / value."""
    tiles = []
    for row, (step, images) in zip(convergence(run, index), sorted(run.snapshots.items()), strict=True):
        picture = upscale(colorize(images[index, 0].numpy(), cmap), scale)
        change = "start" if row["step_change"] is None else f"d {row['step_change']:.2g}"
        if row["relative"] is not None:
            change += f" ({row['relative']:.1g})"
        header = _header(picture.shape[1], f"{step}: {row['value']:.3g}")
        footer = _header(picture.shape[1], change, color=(40, 40, 40), background=(235, 235, 235))
        tiles.append(np.concatenate([header, picture, footer], axis=0))
    gap = np.full((tiles[0].shape[0], 2, 3), 255, dtype=np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def evolution_gif_frames(run: OipRun, index: int, scale: int = 8, cmap: str = "viridis") -> list[np.ndarray]:
    """Frames for a GIF of one target's snapshots."""
    return animation_frames([images[index, 0] for _, images in sorted(run.snapshots.items())], scale, cmap)


def animation_frames(images: Sequence[torch.Tensor], scale: int = 8, cmap: str = "viridis") -> list[np.ndarray]:
    """Coloured, upscaled RGB frames of H x W images (e.g. `FrameCollector.images`)."""
    return [upscale(colorize(image.numpy(), cmap), scale) for image in images]


def gallery_picture(run: OipRun, summary: dict | None = None, targets: Sequence[int] | None = None,
                    scale: int = TILE_SCALE, cmap: str = "viridis") -> np.ndarray:
    """Every start of each target side by side, one row per target (the articles' series).

    Args:
        run: an `OipRun` with `starts` (from `find_oips(..., restarts=S)`).
        summary: `optvis.gallery.gallery_summary(run)`, for the similarity and verdict per row.
        targets: which targets (indices into the run), default all.

    Returns:
        An RGB array; the kept start of each row is labelled "best".
    """
    if run.starts is None:
        raise ValueError("the run has no record of its starts (use restarts >= 2)")
    rows = []
    for i in (range(len(run.objectives)) if targets is None else targets):
        tiles = []
        for r in range(run.starts.images.shape[0]):
            value, reacted = float(run.starts.final[r, i]), bool(run.starts.reacted[r, i])
            text = f"start {r + 1}  {value:.3g}" if reacted else f"start {r + 1}  no reaction"
            if r == int(run.restart[i]):
                text += "  best"
            tiles.append(oip_tile(run.starts.images[r, i], text, reacted, scale, cmap))
        title = run.objectives[i].name
        if summary is not None:
            similarity = summary["similarity"][i]
            title += (f"   similarity {similarity:.2f}: {summary['verdict'][i]}" if similarity is not None
                      else f"   {summary['verdict'][i]}")
        strip = grid(tiles, columns=len(tiles), separator=2)
        rows.append(stack([text_block(title, size=12, width=strip.shape[1]), strip], axis="v", gap=1)[0])
    return stack(rows, axis="v", gap=6)[0]


def methods_picture(rows: Sequence[tuple[str, OipRun]], targets: Sequence[int]) -> np.ndarray:
    """One labelled row per method: the contrast-enhanced OIPs of the same targets (indices into
    each run), so the methods compare map by map."""
    strips = []
    for name, run in rows:
        tiles = [upscale(colorize(enhance_contrast(run.images[i, 0].numpy()), "viridis", 0.0, 1.0), 2)
                 for i in targets]
        strip = stack(tiles, axis="h", gap=2)[0]
        strips.append(stack([text_block(name, size=12, width=strip.shape[1]), strip], axis="v", gap=1)[0])
    return stack(strips, axis="v", gap=4)[0]
