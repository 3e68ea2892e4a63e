"""Pictures of attribution maps: each method's map over the digit, one row per image.

`explanation_figure` takes the maps of `cnnscope.analysis.attribution` and returns an RGB
array; it writes no files (the `explain` command and the demo report do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnscope.analysis.attribution import ink_share
from cnnscope.data.images import DigitImage
from cnnscope.figures import render
from cnnscope.figures.activations import image_caption

METHOD_TITLES = {"saliency": "saliency |d logit/d x|", "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM",
                 "occlusion": "occlusion (logit drop)"}


def explanation_figure(images: Sequence[DigitImage], maps: dict[str, np.ndarray], targets: Sequence[int],
                       probabilities: np.ndarray, cmap: str = "jet", titles: dict[str, str] | None = None,
                       factor: int = 5) -> np.ndarray:
    """One row per image: the digit, then each method's map (scaled to its max) over the digit."""
    titles = titles or {}
    header = [render.text_block("input", size=13, width=28 * factor)]
    header += [render.text_block(titles.get(m, METHOD_TITLES.get(m, m)), size=13, width=28 * factor) for m in maps]
    rows = [render.stack(header, axis="h", gap=10)[0]]
    for i, image in enumerate(images):
        digit = render.gray_image(image.pixels, factor)
        cells = [render.stack([digit, render.text_block(image_caption(image, probabilities[i]), size=11, width=digit.shape[1])],
                              axis="v", gap=2)[0]]
        for attribution in maps.values():
            values = np.clip(np.asarray(attribution[i], dtype=np.float64), 0, None)
            peak = values.max()
            heat = values / peak if peak > 0 else values
            picture = render.overlay(image.pixels / 255.0, heat, cmap, factor=factor)
            text = render.text_block(f"for class {int(targets[i])}; {ink_share(values, image.pixels):.0%} on ink",
                                     size=11, width=picture.shape[1])
            cells.append(render.stack([picture, text], axis="v", gap=2)[0])
        rows.append(render.stack(cells, axis="h", gap=10)[0])
    picture, _ = render.stack(rows, axis="v", gap=10)
    legend = render.text_block("Colours: each map scaled to its own maximum (red = most responsible); "
                               "\"on ink\" = share of the map's total on pixels with >= 30% ink.", size=11)
    picture, _ = render.stack([picture, legend], axis="v", gap=6)
    return render.pad(picture, 8, 8, 8, 8)
