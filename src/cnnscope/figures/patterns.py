"""Pictures of class patterns: the mean grids of two digits with their common points circled,
the maps that separate them best, and the most confusable images.

They take the results of `cnnscope.analysis.patterns` and return RGB arrays; they write no
files (the `patterns` command and the demo report do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnscope.analysis.patterns import ClassPatterns, Confusable
from cnnscope.data.images import DigitImage
from cnnscope.figures import render
from cnnscope.figures.activations import NODE_CELL, grid_options

RED = (235, 30, 30)
YELLOW = (255, 220, 0)


def pattern_figure(result: ClassPatterns, cmap: str = "viridis", numbers: bool = True, split: str = "test") -> np.ndarray:
    """Mean grid of each digit side by side with its common points circled, and a colour bar."""
    vmin = float(min(result.means[0].min(), result.means[1].min()))
    vmax = float(max(result.means[0].max(), result.means[1].max()))
    columns, factor = grid_options(result.means[0].shape)
    panels = []
    color_scale = None
    for which, digit in enumerate(result.digits):
        scaled, color_scale = render.scale_maps(result.means[which], "shared", vmin, vmax)
        picture, layout = render.map_grid(scaled, cmap, factor, columns, numbers=numbers)
        picture = mark_points(picture, layout, result.shared_points(which), YELLOW)
        picture = mark_points(picture, layout, result.distinctive_points(which), RED)
        n_common = int(result.common_points(which).sum())
        n_distinct = int(result.distinctive_points(which).sum())
        caption = render.text_block(f"mean of {result.counts[which]} \"{digit}\"s ({split} split): "
                                    f"{n_common} common points, {n_distinct} distinctive", size=13)
        panel, _ = render.stack([caption, picture], axis="v", gap=4)
        panels.append(panel)
    row, _ = render.stack(panels, axis="h", gap=28)
    bar = render.colorbar(render.ColorScale("shared", vmin, vmax, "mean activation"), cmap, length=200)
    body, _ = render.stack([row, bar], axis="h", gap=16)
    a, b = result.digits
    title = render.text_block(f"{result.layer}: what the \"{a}\"s and the \"{b}\"s have in common", size=14)
    legend = render.text_block(
        f"{result.unit} = tile{' (numbered)' if numbers else ''}; a point is active when >= {result.level:g} x the layer's largest value for that image.\n"
        f"Circled: active in >= {result.min_share:.0%} of the digit's images. Red: distinctive (active in <= {1 - result.min_share:.0%} "
        f"of the other digit's images); yellow: common to both.", size=12)
    picture, _ = render.stack([title, body, legend], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)


def mark_points(picture: np.ndarray, layout: render.GridLayout, mask: np.ndarray, color) -> np.ndarray:
    """Circle the nodes where `mask` is True (mask: C x H x W, or C for dense nodes)."""
    points = np.argwhere(mask.reshape(len(mask), -1))
    if not len(points):
        return picture
    width = layout.tile_shape[1]
    centers = [layout.pixel_center(int(c), int(p) // width, int(p) % width) for c, p in points]
    radius = max(3.0, 0.42 * layout.factor)
    picture = render.draw_circles(picture, centers, radius + 1, color=(0, 0, 0), width=1)
    return render.draw_circles(picture, centers, radius, color=color, width=2)


def separating_figure(result: ClassPatterns, top: int = 16, cmap: str = "viridis") -> np.ndarray:
    """The `top` best separating maps (nodes): the two class means side by side, rank order."""
    a, b = result.digits
    vmin = float(min(result.means[0].min(), result.means[1].min()))
    vmax = float(max(result.means[0].max(), result.means[1].max()))
    shape = result.means[0].shape
    factor = render.tile_factor(max(shape[1:]), 40) if len(shape) == 3 else NODE_CELL
    tiles = []
    for row in result.top(top):
        index = row[result.unit]
        pair = []
        for which in (0, 1):
            scaled, _ = render.scale_maps(result.means[which][index:index + 1], "shared", vmin, vmax)
            tile, _ = render.map_grid(scaled, cmap, factor, 1)
            pair.append(tile)
        both, _ = render.stack(pair, axis="h", gap=2)
        measure = f"AUC {row['auc']:.2f}" if result.measure == "auc" else f"d {row['smd']:+.2f}"
        text = render.text_block(f"#{index} {measure}\nhigher for {row['higher_for']}", size=11, width=both.shape[1])
        tile, _ = render.stack([both, text], axis="v", gap=1)
        tiles.append(tile)
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    tiles = [render.pad(t, 0, width - t.shape[1], height - t.shape[0], 0) for t in tiles]
    picture = render.grid(tiles, columns=8, separator=6)
    title = render.text_block(
        f"{result.layer}: the {len(tiles)} {result.unit}s that separate \"{a}\" from \"{b}\" best "
        f"(left: mean over \"{a}\"s, right: over \"{b}\"s; same colours as the mean grids)\n"
        f"ranked by {_measure_text(result.measure)}", size=13)
    picture, _ = render.stack([title, picture], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)


def _measure_text(measure: str) -> str:
    if measure == "auc":
        return "max(AUC, 1-AUC) of the per-image map mean (AUC = P(a random first-digit image gives a higher value))"
    return "|standardised mean difference| (Cohen's d) of the per-image map mean"


def confusable_figure(rows: Sequence[tuple[str, Sequence[DigitImage], Sequence[Confusable], int]]) -> np.ndarray:
    """Rows of the most confusable images: (title, images, confusables, other digit) each."""
    parts = []
    for title, images, confusables, other in rows:
        cells = []
        for image, item in zip(images, confusables, strict=True):
            digit = render.gray_image(image.pixels, 3)
            text = render.text_block(f"{image.name}\np({other}) = {item.probability_other:.3f}\npredicted {item.predicted}",
                                     size=11, width=digit.shape[1])
            cell, _ = render.stack([digit, text], axis="v", gap=2)
            cells.append(cell)
        strip, _ = render.stack(cells, axis="h", gap=8) if cells else (render.text_block("(none)"), None)
        block, _ = render.stack([render.text_block(title, size=13), strip], axis="v", gap=4)
        parts.append(block)
    picture, _ = render.stack(parts, axis="v", gap=14)
    return render.pad(picture, 8, 8, 8, 8)
